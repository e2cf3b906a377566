"""Pretokenized datasets: image token ids stored once, read back without re-encoding.

A folder written by `dialect pretokenize` (:mod:`dialect.tokenizers.pretokenize`):

    index.json          {"format": 1, "num_samples": N, "shard_size": S, "scales": [k, ...],
                         "tokens": [n_k, ...], "pixel_shape": [h, w] or null, "source": {...},
                         "tatok_fingerprint": "...", "pixelvq_fingerprint": "..." or null,
                         "shards": [{"file": "shard-00000.npz", "start": 0, "samples": m}, ...]}
    shard-00000.npz     tatok_s{k}: (m, n_k) uint16/int32 TA-Tok ids at scale k, one array per scale
                        pixel: (m, h, w) pixel-VQ ids (only with a pixel VQ)
                        text: (m,) str; meta: (m,) str, one JSON object per sample

Shard i holds the usable samples among source positions [i S, (i + 1) S) (unreadable files are
skipped, so m <= S). :class:`PretokenizedDataset` is map-style over every stored sample in shard
order; `rank` / `world_size` give the strided per-rank view (sample j goes to rank j mod W), which
is disjoint across ranks and covers every sample. Items are
    {"tatok_s{k}": LongTensor (n_k,), "pixel": LongTensor (h, w) (if stored), "text": str, "meta": dict}
batched by :func:`collate_tokens` (or the trainers' `collate`). The fingerprints
(`Pretrained.fingerprint`) name the tokenizers that made the ids: a trainer reading the folder
checks them against its own with `require_tokenizer`. `blocks` (samples per shard of this view)
lets the trainer's sampler shuffle shard-aware; the last `WINDOW` shards read are kept in memory.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.data.order import WINDOW

INDEX = "index.json"
# how to make a missing folder, said wherever one is missing
MAKE_FOLDER = "make one with `dialect pretokenize` (the tiny presets' one: `dialect train ids --preset tiny`)"
FORMAT = 1
PIXEL_KEY = "pixel"  # pixel-VQ ids (h, w) per sample
TOKENIZERS = {"tatok": "TA-Tok", "pixelvq": "pixel VQ"}  # index fingerprint keys -> names


def ids_key(scale: int) -> str:
    """The item / batch key of the TA-Tok ids at `scale`."""
    return f"tatok_s{scale}"


def read_index(folder: str | Path) -> dict[str, Any]:
    """The index of a pretokenized folder; a missing or foreign one is a DialectError."""
    path = Path(folder) / INDEX
    if not path.is_file():
        raise DialectError(f"{folder} is not a pretokenized folder (no {INDEX}); {MAKE_FOLDER}")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise DialectError(f"{path}: unknown pretokenized format {index.get('format')!r} (expected {FORMAT})")
    return index


def _complete(index: dict[str, Any]) -> bool:
    return len(index["shards"]) * index["shard_size"] >= index["num_samples"]


def pretokenized_complete(folder: str | Path) -> bool:
    """Whether `folder` is a pretokenized folder with every shard written (False without an index)."""
    return (Path(folder) / INDEX).is_file() and _complete(read_index(folder))


class PretokenizedDataset(Dataset):
    """Map-style over the stored samples (one rank's strided share when world_size > 1)."""

    def __init__(self, folder: str | Path, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise DialectError(f"rank must be in [0, {world_size}), got {rank}")
        self.folder = Path(folder)
        self.index = read_index(folder)
        if self.index["num_samples"] and not self.complete:
            raise DialectError(
                f"{folder}: pretokenizing is unfinished; run `dialect pretokenize` again to resume"
            )
        counts = [s["samples"] for s in self.index["shards"]]
        self._ends = np.cumsum(counts)  # stored samples up to and including each shard
        self.rank, self.world_size = rank, world_size
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()  # the last WINDOW shards read

    @property
    def complete(self) -> bool:
        return _complete(self.index)

    @property
    def total(self) -> int:
        """Stored samples over all ranks."""
        return int(self._ends[-1]) if len(self._ends) else 0

    def __len__(self) -> int:
        return len(range(self.rank, self.total, self.world_size))

    @property
    def blocks(self) -> list[int]:
        """Items of this view in each shard, in order (they are contiguous runs of indices)."""
        starts = [0, *self._ends.tolist()][:-1]
        return [len(range(a + (self.rank - a) % self.world_size, int(e), self.world_size))
                for a, e in zip(starts, self._ends, strict=True)]  # fmt: skip

    def require_tokenizer(self, name: str, fingerprint: str, path: str) -> None:
        """Refuse (DialectError) ids made by another tokenizer than the run's: `name` is "tatok" or
        "pixelvq", `fingerprint` that of the run's model loaded from `path`."""
        what = TOKENIZERS[name]
        if name == "pixelvq" and self.index.get("pixel_shape") is None:
            raise DialectError(
                f"{self.folder} holds no pixel-VQ ids; pretokenize it again with --pixelvq {path}"
            )
        stored = self.index.get(f"{name}_fingerprint")
        if stored == fingerprint:
            return
        made_from = self.index.get("source", {}).get(name) or "an unrecorded folder"
        if stored is None:
            raise DialectError(f"{self.folder} does not record which {what} made it; pretokenize it again")
        raise DialectError(
            f"{self.folder} was pretokenized with another {what} (from {made_from}, fingerprint {stored}) "
            f"than this run's {name}={path} (fingerprint {fingerprint}); point {name}= at the {what} "
            f"that made it, or run `dialect pretokenize --{name} {path}` into a new folder"
        )

    def global_index(self, i: int) -> int:
        """Position in the whole folder of this rank's item i."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.rank + i * self.world_size

    def _shard(self, s: int) -> dict[str, np.ndarray]:
        if s in self._cache:
            self._cache.move_to_end(s)
        else:
            with np.load(self.folder / self.index["shards"][s]["file"], allow_pickle=False) as f:
                self._cache[s] = {k: f[k] for k in f.files}
            if len(self._cache) > WINDOW:
                self._cache.popitem(last=False)
        return self._cache[s]

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = self.global_index(i)
        s = int(np.searchsorted(self._ends, g, side="right"))
        j = g - (int(self._ends[s - 1]) if s else 0)
        arrays = self._shard(s)
        item: dict[str, Any] = {
            k: torch.from_numpy(v[j].astype(np.int64)) for k, v in arrays.items() if k.startswith("tatok_s")
        }
        if PIXEL_KEY in arrays:
            item[PIXEL_KEY] = torch.from_numpy(arrays[PIXEL_KEY][j].astype(np.int64))
        item["text"] = str(arrays["text"][j])
        item["meta"] = json.loads(str(arrays["meta"][j]))
        return item


def collate_tokens(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items of a PretokenizedDataset -> {tensor keys stacked (B, ...), "text": [...], "meta": [...]}."""
    if not items:
        raise DialectError("collate_tokens needs at least one item")
    return {k: torch.stack([it[k] for it in items]) if torch.is_tensor(v) else [it[k] for it in items]
            for k, v in items[0].items()}  # fmt: skip
