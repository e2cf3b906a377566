"""Process-group set-up for `torchrun` (DDP): gloo on CPU, NCCL on CUDA.

A single process (no `WORLD_SIZE` in the environment) runs with rank 0 of 1 and never touches
`torch.distributed`, so every helper here is a no-op there.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that `torchrun` describes in the environment, if any.

    `device`: "auto" (CUDA if available, else CPU), "cpu" or "cuda".
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def launched_as_main() -> bool:
    """Whether this process is rank 0 of its `torchrun` launch (or runs alone); read from the
    environment, so it holds after `cleanup()` too (recipes use it for post-training work)."""
    return int(os.environ.get("RANK", "0")) == 0


def cleanup(synchronize: bool = True) -> None:
    """Leave the process group. With `synchronize` every rank first waits for the others (pass
    False when leaving on an error, where a peer may never come). Garbage left in reference cycles
    (FSDP-sharded modules, pending gloo work) is collected while the interpreter is whole: freed
    only at interpreter exit, gloo's threads made about 1 run in 15 of the 2-rank test abort
    after it had finished ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistInfo]:
    """`init_distributed(device)` for the body, then `cleanup()`: synchronized on success, at once
    when the body raises (its peers may be stuck in a collective that will never complete)."""
    info = init_distributed(device)
    try:
        yield info
    except BaseException:
        cleanup(synchronize=False)
        raise
    cleanup()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of scalars over ranks (identity in one process).

    Ranks may log different keys (e.g. Tar's `text_loss` only where the batch held text
    targets): every key of any rank is averaged over the ranks that have it."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(set().union(*all_gather_object(sorted(values))))
    t = torch.tensor(
        [[float(values[k]), 1.0] if k in values else [0.0, 0.0] for k in keys],
        dtype=torch.float64,
        device=device,
    )  # (keys, [sum, count])
    dist.all_reduce(t)
    return {k: s / c for k, (s, c) in zip(keys, t.tolist(), strict=True)}


def all_gather_object(obj: Any) -> list[Any]:
    """Gather one picklable object per rank (a one-element list in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
