"""Codebook usage and perplexity over an evaluation pass (summed over DDP ranks).

Definitions (DESIGN.md, "Metrics"), for the code histogram h (K counts) of the whole eval set:
- usage = (number of codes with h_k > 0) / K, in [1/K, 1] (0 for an empty histogram);
- perplexity = 2 ** H, H = -sum_k p_k log2 p_k with p = h / sum(h) (= exp of the entropy in
  nats), in [1, K]: the effective number of equally used codes (1.0 for an empty histogram).
Example: h = [2, 2, 0, 0] -> usage 0.5, perplexity 2.0.

The torch.distributed helpers here are no-ops unless a process group is initialised.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dialect.core.errors import DialectError


def distributed() -> bool:
    """True when running under an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if distributed() else 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over ranks in place (identity in one process); returns `t`."""
    if distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather(t: torch.Tensor) -> torch.Tensor:
    """(world, *t.shape): `t` from every rank in rank order ((1, *t.shape) in one process).

    Every rank must pass a tensor of the same shape and dtype.
    """
    if not distributed():
        return t.unsqueeze(0)
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return torch.stack(out)


def check_ids(ids: torch.Tensor, num_codes: int) -> None:
    """DialectError unless `ids` are integers in [0, K)."""
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise DialectError(f"code ids must be integers, got a {ids.dtype} tensor")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_codes):
        raise DialectError(
            f"code ids must lie in [0, {num_codes - 1}] for a codebook of {num_codes} codes; "
            f"got values from {int(ids.min())} to {int(ids.max())}"
        )


def code_histogram(ids: torch.Tensor, num_codes: int) -> torch.Tensor:
    """(K,) int64 counts of the ids (any shape, values in [0, K)) on this rank."""
    return torch.bincount(ids.reshape(-1), minlength=num_codes)


def usage_from_counts(counts: torch.Tensor) -> float:
    """Distinct codes seen / K, for a (K,) histogram."""
    return float((counts > 0).sum()) / counts.numel()


def entropy_bits(counts: torch.Tensor) -> float:
    """Entropy in bits of the normalised (K,) histogram (0.0 when empty)."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    p = counts.double()[counts > 0] / total
    return float(-(p * torch.log2(p)).sum())


def perplexity_from_counts(counts: torch.Tensor) -> float:
    """2 ** entropy_bits of a (K,) histogram."""
    return 2.0 ** entropy_bits(counts)


class CodeUsage:
    """Accumulates the code histogram of an eval pass; `compute()` sums it over ranks.

    usage = CodeUsage(K); then per batch `usage.update(ids)`; at the end `usage.compute()` on every
    rank (it is a collective when distributed) -> {"usage", "perplexity", "entropy_bits", "count"}.
    `device`: where the histogram lives (must be a CUDA device for NCCL); default: the first ids'.
    """

    def __init__(self, num_codes: int, device: torch.device | str | None = None) -> None:
        if num_codes < 1:
            raise DialectError(f"a codebook needs at least one code, got num_codes={num_codes}")
        self.num_codes = num_codes
        self.device = None if device is None else torch.device(device)
        self.counts: torch.Tensor | None = None

    def reset(self) -> None:
        self.counts = None

    @torch.no_grad()
    def update(self, ids: torch.Tensor) -> None:
        """Add a batch of code ids (any shape, integers in [0, K))."""
        ids = torch.as_tensor(ids)
        check_ids(ids, self.num_codes)
        hist = code_histogram(ids.long(), self.num_codes)
        if self.counts is None:
            self.counts = torch.zeros(self.num_codes, dtype=torch.long, device=self.device or hist.device)
        self.counts += hist.to(self.counts.device)

    def histogram(self) -> torch.Tensor:
        """(K,) int64 counts summed over all ranks (a collective when distributed)."""
        local = self.counts
        if local is None:
            local = torch.zeros(self.num_codes, dtype=torch.long, device=self.device or "cpu")
        return all_reduce_sum(local.clone())

    def compute(self) -> dict[str, float]:
        counts = self.histogram()
        return {
            "usage": usage_from_counts(counts),
            "perplexity": perplexity_from_counts(counts),
            "entropy_bits": entropy_bits(counts),
            "count": float(counts.sum()),
        }
