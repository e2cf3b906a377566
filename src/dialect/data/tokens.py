"""Pretokenized datasets: image token ids stored once, read back without re-encoding.

A folder written by `dialect pretokenize` (:mod:`dialect.tokenizers.pretokenize`):

    index.json          {"format": 1, "num_samples": N, "shard_size": S, "scales": [k, ...],
                         "tokens": [n_k, ...], "pixel_shape": [h, w] or null, "source": {...},
                         "shards": [{"file": "shard-00000.npz", "start": 0, "samples": m}, ...]}
    shard-00000.npz     tatok_s{k}: (m, n_k) uint16/int32 TA-Tok ids at scale k, one array per scale
                        pixel: (m, h, w) pixel-VQ ids (only with a pixel VQ)
                        text: (m,) str; meta: (m,) str, one JSON object per sample

Shard i holds the usable samples among source positions [i S, (i + 1) S) (unreadable files are
skipped, so m <= S). :class:`PretokenizedDataset` is map-style over every stored sample in shard
order; `rank` / `world_size` give the strided per-rank view (sample j goes to rank j mod W), which
is disjoint across ranks and covers every sample. Items are
    {"tatok_s{k}": LongTensor (n_k,), "pixel": LongTensor (h, w) (if stored), "text": str, "meta": dict}
batched by :func:`collate_tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dialect.core.errors import DialectError

INDEX = "index.json"
FORMAT = 1


def read_index(folder: str | Path) -> dict[str, Any]:
    """The index of a pretokenized folder; a missing or foreign one is a DialectError."""
    path = Path(folder) / INDEX
    if not path.is_file():
        raise DialectError(
            f"{folder} is not a pretokenized folder (no {INDEX}); make one with `dialect pretokenize`"
        )
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise DialectError(f"{path}: unknown pretokenized format {index.get('format')!r} (expected {FORMAT})")
    return index


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
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None  # the last shard read

    @property
    def complete(self) -> bool:
        return len(self.index["shards"]) * self.index["shard_size"] >= self.index["num_samples"]

    @property
    def total(self) -> int:
        """Stored samples over all ranks."""
        return int(self._ends[-1]) if len(self._ends) else 0

    def __len__(self) -> int:
        return len(range(self.rank, self.total, self.world_size))

    def global_index(self, i: int) -> int:
        """Position in the whole folder of this rank's item i."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.rank + i * self.world_size

    def _shard(self, s: int) -> dict[str, np.ndarray]:
        if self._cache is None or self._cache[0] != s:
            with np.load(self.folder / self.index["shards"][s]["file"], allow_pickle=False) as f:
                self._cache = (s, {k: f[k] for k in f.files})
        return self._cache[1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = self.global_index(i)
        s = int(np.searchsorted(self._ends, g, side="right"))
        j = g - (int(self._ends[s - 1]) if s else 0)
        arrays = self._shard(s)
        item: dict[str, Any] = {
            k: torch.from_numpy(v[j].astype(np.int64)) for k, v in arrays.items() if k.startswith("tatok_s")
        }
        if "pixel" in arrays:
            item["pixel"] = torch.from_numpy(arrays["pixel"][j].astype(np.int64))
        item["text"] = str(arrays["text"][j])
        item["meta"] = json.loads(str(arrays["meta"][j]))
        return item


def collate_tokens(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items of a PretokenizedDataset -> {tensor keys stacked (B, ...), "text": [...], "meta": [...]}."""
    if not items:
        raise DialectError("collate_tokens needs at least one item")
    return {k: torch.stack([it[k] for it in items]) if torch.is_tensor(v) else [it[k] for it in items]
            for k, v in items[0].items()}  # fmt: skip
