"""Encode a dataset once into sharded TA-Tok ids (every scale) and, optionally, pixel-VQ ids, so LM
and de-tokenizer training can read ids instead of re-running the frozen tokenizers.

Layout of the output folder: see :mod:`dialect.data.tokens` (which also reads it back).
Shard i covers source positions [i S, (i + 1) S) in source order (S = `shard_size`); each shard is
written to a temporary file and renamed, then recorded in `index.json`, so an interrupted run
resumes by skipping the shards the index lists. Resuming into a folder made with other settings
(source, sample count, shard size, scales, tokenizers) is refused rather than mixed. The index
records each tokenizer's `fingerprint()`, so a trainer reading the folder can refuse ids made by
another TA-Tok or pixel VQ than its own.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.data.shards import WebDatasetStream
from dialect.data.tokens import FORMAT, INDEX
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.tatok import TATok

SETTINGS = (
    "num_samples", "shard_size", "scales", "tokens", "pixel_shape", "source",
    "tatok_fingerprint", "pixelvq_fingerprint",
)  # fmt: skip


def source_length(dataset: Dataset) -> int:
    """Samples in a map-style dataset or in one pass of a (single-rank) WebDatasetStream."""
    if isinstance(dataset, WebDatasetStream):
        return dataset.num_samples
    if isinstance(dataset, IterableDataset):
        raise DialectError("pretokenize reads map-style datasets or WebDataset shards")
    return len(dataset)


def _entries(dataset: Dataset, start: int, stop: int) -> Iterator[Any]:
    """Source entries (samples or Skipped) at positions [start, stop)."""
    if isinstance(dataset, WebDatasetStream):
        dataset.load_state_dict({"consumed": start})
        return itertools.islice(iter(dataset), stop - start)
    return (dataset[i] for i in range(start, stop))


def _id_dtype(num_codes: int) -> type:
    return np.uint16 if num_codes <= 2**16 else np.int32


@torch.no_grad()
def encode_range(
    dataset: Dataset, start: int, stop: int, tatok: TATok, pixelvq: PixelVQ | None, batch_size: int
) -> dict[str, np.ndarray]:
    """The arrays of one shard: source positions [start, stop), unusable files skipped."""
    device = next(tatok.parameters()).device
    scales = range(tatok.config.num_scales)
    out: dict[str, list] = {f"tatok_s{k}": [] for k in scales} | {"pixel": [], "text": [], "meta": []}
    entries = _entries(dataset, start, stop)
    while chunk := list(itertools.islice(entries, batch_size)):
        batch = collate(chunk)
        if batch["image"].shape[0] == 0:
            continue
        images = batch["image"].to(device)
        for k, ids in zip(scales, tatok.encode_ids_all(images), strict=True):
            out[f"tatok_s{k}"].append(ids.cpu().numpy())
        if pixelvq is not None:
            out["pixel"].append(pixelvq.encode_ids(images).cpu().numpy())
        out["text"] += batch["text"]
        out["meta"] += [json.dumps(m, default=str) for m in batch["meta"]]
    arrays = {
        f"tatok_s{k}": _concat(
            out[f"tatok_s{k}"], (0, tatok.num_tokens(k)), _id_dtype(tatok.config.vq.num_codes)
        )
        for k in scales
    }
    if pixelvq is not None:
        shape = (0, *pixel_shape(pixelvq))
        arrays["pixel"] = _concat(out["pixel"], shape, _id_dtype(pixelvq.config.vq.num_codes))
    arrays["text"] = np.array(out["text"], dtype=np.str_)
    arrays["meta"] = np.array(out["meta"], dtype=np.str_)
    return arrays


def _concat(parts: list[np.ndarray], empty: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty, dtype=dtype)


def pixel_shape(pixelvq: PixelVQ) -> tuple[int, int]:
    probe = torch.zeros(1, 3, pixelvq.config.image_size, pixelvq.config.image_size)
    return tuple(pixelvq.encode_ids(probe.to(next(pixelvq.parameters()).device)).shape[1:])


def pretokenize(
    dataset: Dataset,
    out: str | Path,
    tatok: TATok,
    pixelvq: PixelVQ | None = None,
    shard_size: int = 1000,
    batch_size: int = 32,
    source: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write (or finish) the pretokenized folder `out`; returns its index. `source` describes the
    data and tokenizers (recorded; a resume must describe the same)."""
    if shard_size < 1 or batch_size < 1:
        raise DialectError(f"shard_size and batch_size must be >= 1, got {shard_size}, {batch_size}")
    out = Path(out)
    n = source_length(dataset)
    scales = list(range(tatok.config.num_scales))
    settings = {
        "num_samples": n, "shard_size": shard_size, "scales": scales,
        "tokens": [tatok.num_tokens(k) for k in scales],
        "pixel_shape": list(pixel_shape(pixelvq)) if pixelvq is not None else None,
        "source": source or {},
        "tatok_fingerprint": tatok.fingerprint(),
        "pixelvq_fingerprint": pixelvq.fingerprint() if pixelvq is not None else None,
    }  # fmt: skip
    index = _start_index(out, settings)
    done = {s["file"] for s in index["shards"]}
    for i in range(math.ceil(n / shard_size)):
        name = f"shard-{i:05d}.npz"
        if name in done and (out / name).is_file():
            continue
        start, stop = i * shard_size, min(n, (i + 1) * shard_size)
        arrays = encode_range(dataset, start, stop, tatok, pixelvq, batch_size)
        _atomic_write(out / name, lambda f, a=arrays: np.savez(f, **a))
        entry = {"file": name, "start": start, "samples": len(arrays["text"])}
        others = [s for s in index["shards"] if s["file"] != name]  # a listed shard whose file was lost
        index["shards"] = sorted([*others, entry], key=lambda s: s["start"])
        _atomic_write(out / INDEX, lambda f: f.write(json.dumps(index, indent=1).encode()))
        log(f"[pretokenize] {name}: {len(arrays['text'])} of positions {start}..{stop - 1}")
    return index


def _start_index(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if (out / INDEX).is_file():
        index = json.loads((out / INDEX).read_text())
        changed = [k for k in SETTINGS if index.get(k) != settings[k]]
        if changed:
            raise DialectError(
                f"{out} was pretokenized with other settings ({', '.join(changed)}); "
                "use a new folder or the same settings to resume"
            )
        return index
    out.mkdir(parents=True, exist_ok=True)
    return {"format": FORMAT, **settings, "shards": []}


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)
