"""Seeded epoch orders over a dataset's indices, shard-aware where a dataset reads whole shards.

One function serves the trainer's `ResumableSampler` and each source of a `MixtureDataset`, so an
order is a pure function of (length, seed, epoch, blocks) and a run resumes from its position alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MAX_SHUFFLE = 1 << 24  # above this length a permutation would cost too much memory: read in order
WINDOW = 8  # blocks (shards) shuffled together; a dataset that reads whole shards caches this many


def shuffled_order(length: int, seed: int, epoch: int, blocks: Sequence[int] | None = None) -> torch.Tensor:
    """A permutation of range(length) for epoch `epoch`, seeded from (seed, epoch).

    Without `blocks`: a uniform permutation. With `blocks` (sizes of the contiguous runs of indices
    a dataset reads together, e.g. the samples of each stored shard; they sum to `length`): the
    blocks are permuted, then the indices of every `WINDOW` consecutive blocks of that order are
    permuted together, so a reader that keeps `WINDOW` shards loads each shard once per epoch while
    a batch still mixes up to `WINDOW` shards.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if not blocks:
        return torch.randperm(length, generator=g)
    if sum(blocks) != length:
        raise ValueError(f"blocks sum to {sum(blocks)}, not to the length {length}")
    starts = torch.tensor([0, *blocks]).cumsum(0).tolist()
    order = torch.randperm(len(blocks), generator=g).tolist()
    parts = []
    for w in range(0, len(order), WINDOW):
        idx = torch.cat([torch.arange(starts[b], starts[b + 1]) for b in order[w : w + WINDOW]])
        parts.append(idx[torch.randperm(len(idx), generator=g)])
    return torch.cat(parts)
