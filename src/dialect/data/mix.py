"""`MixtureDataset`: several sources sampled in fixed ratios as one endless, seeded, resumable stream.

The stream, exactly (S sources with ratios r_s normalised to sum to 1; a *unit* is one sample, or
with `by="batch"` one loader batch of `batch_size` consecutive positions):
- Units come in blocks of M = 1000 (at least S^2). Before block b, source s has had
  A_s(b) = floor(r_s M b) units (the source with the largest ratio takes the rest, M b - the
  others), so every prefix of whole blocks holds each source in its ratio to within one unit;
  block b holds A_s(b + 1) - A_s(b) units of s, in an order permuted from (seed, b).
- The n-th unit of source s covers positions [n u, (n + 1) u) of that source's own stream
  (u: the unit size); stream position k reads item order_e[k mod L_s] in pass e = k div L_s of
  its L_s items, order_e a permutation seeded from (seed, s, e) (shard-aware for sources with
  `blocks`, see `dialect.data.order`; in order for sources with `shuffle` off and for endless ones
  such as ShapeWorld, whose items are independent draws anyway). So every source is read without
  replacement, pass after pass, whatever its ratio.
- Item i is a pure function of (seed, ratios, unit size, i), and the dataset is endless
  (2^31 - 1 items), so the trainer's `ResumableSampler` reads it in order, resumes it from its
  position alone and hands each DDP rank its slice of every global batch. With `by="batch"`,
  `build_loader` sets `batch_size` to the rank's batch size, so each rank's batch is one unit:
  drawn from one source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from dialect.core.errors import DialectError
from dialect.data.order import MAX_SHUFFLE, shuffled_order

MIX_BY = ("sample", "batch")
BLOCK = 1000  # units per block (raised to S^2 for many sources, so no block count goes negative)
ENDLESS = 2**31 - 1


class MixtureDataset(Dataset):
    """Map-style, endless: item i comes from source `locate(i)[0]` (see the module docstring)."""

    def __init__(
        self,
        sources: Sequence[Dataset],
        ratios: Sequence[float],
        seed: int = 0,
        by: str = "sample",
        shuffle: Sequence[bool] | None = None,
        batch_size: int = 1,
    ) -> None:
        if not sources or len(sources) != len(ratios):
            raise DialectError(f"a mixture needs one ratio per source, got {len(sources)} and {len(ratios)}")
        if min(ratios) <= 0 or not all(math.isfinite(r) for r in ratios):
            raise DialectError(f"mixture ratios must be finite and > 0, got {list(ratios)}")
        if by not in MIX_BY:
            raise DialectError(f"data.mix_by must be one of {', '.join(MIX_BY)}; got {by!r}")
        for n, ds in enumerate(sources):
            if isinstance(ds, IterableDataset) or len(ds) < 1:
                raise DialectError(f"mixture source {n} must be a non-empty map-style dataset")
        self.sources = list(sources)
        self.ratios = [r / sum(ratios) for r in ratios]
        self.seed, self.by = int(seed), by
        self.shuffle = list(shuffle) if shuffle is not None else [True] * len(sources)
        self.batch_size = batch_size  # the unit with by="batch"; build_loader sets the loader's
        self.block = max(BLOCK, len(sources) ** 2)
        self._rest = int(np.argmax(self.ratios))  # the source that takes the rounding remainder
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the last block drawn
        self._orders: dict[int, tuple[int, torch.Tensor | None]] = {}  # source -> (pass, its order)

    def __len__(self) -> int:
        return ENDLESS

    @property
    def unit(self) -> int:
        return self.batch_size if self.by == "batch" else 1

    def units_before(self, s: int, b: int) -> int:
        """A_s(b): units of source s in blocks [0, b)."""
        if s != self._rest:
            return math.floor(self.ratios[s] * self.block * b)
        return self.block * b - sum(self.units_before(t, b) for t in range(len(self.sources)) if t != s)

    def _draw_block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(source of each unit of block b, its number among that source's units), each (M,)."""
        if b not in self._blocks:
            S = len(self.sources)
            counts = [self.units_before(s, b + 1) - self.units_before(s, b) for s in range(S)]
            labels = np.repeat(np.arange(S), counts)
            src = labels[np.random.default_rng([self.seed, b]).permutation(self.block)]
            nth = np.empty(self.block, dtype=np.int64)
            for s in range(S):
                where = np.flatnonzero(src == s)
                nth[where] = self.units_before(s, b) + np.arange(len(where))
            self._blocks = {b: (src, nth)}
        return self._blocks[b]

    def locate(self, i: int) -> tuple[int, int]:
        """Item i -> (source, position k in that source's own stream)."""
        if not 0 <= i < ENDLESS:
            raise IndexError(i)
        u = self.unit
        unit, offset = divmod(i, u)
        b, p = divmod(unit, self.block)
        src, nth = self._draw_block(b)
        return int(src[p]), int(nth[p]) * u + offset

    def source_index(self, s: int, k: int) -> int:
        """Position k of source s's stream -> the index of the item it reads in that source."""
        length = len(self.sources[s])
        epoch, j = divmod(k, length)
        if not self.shuffle[s] or length > MAX_SHUFFLE:
            return j
        cached = self._orders.get(s)
        if cached is None or cached[0] != epoch:
            blocks = getattr(self.sources[s], "blocks", None)
            order = shuffled_order(length, self.seed * 1_000 + s, epoch, blocks)
            self._orders[s] = cached = (epoch, order)
        return int(cached[1][j])

    def __getitem__(self, i: int) -> Any:
        s, k = self.locate(i)
        return self.sources[s][self.source_index(s, k)]
