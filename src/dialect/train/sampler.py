"""A resumable, rank-aware index sampler: the trainer's "data position".

The stream is a sequence of global batches. Global batch g covers positions
[g * B, (g + 1) * B) of an endless index stream (B = global batch size); rank r of W takes the
r-th contiguous slice of B / W of them. With shuffling, the stream is one seeded permutation per
epoch, so the position alone (global batches consumed) resumes the exact same order. Very large
datasets (procedural streams such as ShapeWorld, where every index is already an independent draw)
are read in order instead of permuted. A dataset stored in shards passes `blocks` (samples per
shard): each epoch then permutes the shards and the samples within windows of a few shards
(`dialect.data.order.shuffled_order`), so a reader keeping those shards loads each once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dialect.data.order import MAX_SHUFFLE, shuffled_order


class ResumableSampler(Sampler[int]):
    def __init__(
        self,
        length: int,
        global_batch: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        start_batch: int = 0,
        shuffle: bool | None = None,
        blocks: Sequence[int] | None = None,
    ) -> None:
        if length <= 0:
            raise ValueError("the dataset is empty")
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} does not split evenly over {world_size} ranks")
        self.length, self.global_batch = length, global_batch
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.start_batch = start_batch
        self.shuffle = length <= MAX_SHUFFLE if shuffle is None else shuffle
        self.local_batch = global_batch // world_size
        self.blocks = list(blocks) if blocks else None  # samples per shard, in index order

    def _epoch_order(self, epoch: int) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        return shuffled_order(self.length, self.seed, epoch, self.blocks)

    def __iter__(self) -> Iterator[int]:
        g = self.start_batch
        epoch, order = -1, None
        while True:
            first = g * self.global_batch + self.rank * self.local_batch
            for pos in range(first, first + self.local_batch):
                e, i = divmod(pos, self.length)
                if e != epoch:
                    epoch, order = e, self._epoch_order(e)
                yield int(order[i]) if order is not None else i
            g += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for len(loader)
        return 1 << 62
