"""Fully sharded data parallel (FSDP2, `torch.distributed.fsdp.fully_shard`) for the one Trainer.

`train.parallel=fsdp` under `torchrun`: every trainable transformer `Block` of the model is its
own shard group and the trainer's root module holds the rest of the trainable weights
(embeddings, heads, norms); frozen parts (tokenizers) stay whole on every rank. Each rank stores
1/N of every trainable parameter, its gradient and its AdamW moments; a group's full
weights exist only while its forward/backward runs (all-gather), and gradients are reduce-scattered
back to their shards, averaged over ranks as DDP does. That is what lets a Tar LM whose weights
and optimizer state do not fit one device train at all (the paper's Qwen2.5-1.5B/7B backbones).

What changes around the shards, and how this module handles it:
- Checkpoints and the exported model stay ordinary full-tensor files, identical in format to a
  one-process run's, so `from_pretrained`, evaluation and resuming with another world size or with
  DDP keep working: `full_state` gathers the model and optimizer state (a collective; rank 0 ends
  up with the full tensors on the CPU, the other ranks with empty dicts), and `load_model_state` /
  `load_optimizer_state` scatter full tensors back into the shards.
- Gradient accumulation: `no_sync` turns off the reduce-scatter for the micro-steps before the
  last one, as DDP's `no_sync` does.
- Parameters stay fp32 (the optimizer's master copy); bf16 compute comes from the trainer's
  autocast, as without FSDP.

Not supported, with a clear error from the trainer: EMA (the shadow copy would need sharding too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from dialect.nn.blocks import Block

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard(root: nn.Module) -> int:
    """Shard every trainable transformer layer inside `root` as its own group, then `root` itself (in place).

    Frozen parameters (Tar's TA-Tok, a de-tokenizer's codec) stay whole on every rank, outside
    FSDP: they have no gradients or optimizer state to shard, and models call frozen parts a
    data-dependent number of times (Tar encodes each TA-Tok scale present in the local batch),
    which sharded modules cannot do, since every gather is a collective all ranks must join.
    `root` must be the module whose `forward` the trainer calls (FSDP gathers the root group's
    parameters in that forward's hook). Returns the number of block groups."""
    frozen = {p for p in root.parameters() if not p.requires_grad}
    blocks = [m for m in root.modules() if _is_layer(m) and not any(p in frozen for p in m.parameters())]
    for block in blocks:
        fully_shard(block)
    fully_shard(root, ignored_params=frozen or None)
    return len(blocks)


def _is_layer(module: nn.Module) -> bool:
    """Our transformer `Block`, or a `transformers` decoder layer (`Qwen2DecoderLayer`, ...) of a
    Hugging Face backbone."""
    return isinstance(module, Block) or type(module).__name__.endswith("DecoderLayer")


@contextlib.contextmanager
def no_sync(root: nn.Module) -> Iterator[None]:
    """Skip the gradient reduce-scatter inside the block (accumulating micro-steps)."""
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """`clip_grad_norm_`'s total norm as a plain tensor (it is a DTensor over sharded grads)."""
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Collective: the model's state as full CPU tensors on rank 0, {} elsewhere."""
    return get_model_state_dict(model, options=_FULL)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Collective: (model state, optimizer state) as full CPU tensors on rank 0, {} elsewhere.

    The optimizer state is keyed by parameter name (not index), as `load_optimizer_state` expects."""
    return (
        full_model_state(model),
        get_optimizer_state_dict(model, optimizer, options=_FULL),
    )


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Collective: scatter full tensors (present on every rank) into the local shards.

    Not strict about keys: a checkpoint written without FSDP stores tied weights once, and the
    caller has already checked that the checkpoint's model config equals this model's."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Collective: the full, name-keyed optimizer state of `full_state` into the local shards."""
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def full_weights(model: nn.Module, state: dict[str, torch.Tensor] | None) -> Iterator[nn.Module]:
    """`model` whose `state_dict()` returns `state` (gathered full tensors) for the duration, so
    its own `save_pretrained` (and any subclass override of it) writes an ordinary checkpoint.
    `state=None` (no FSDP): `model` unchanged."""
    if state is None:
        yield model
        return
    model.state_dict = lambda *args, **kwargs: state  # type: ignore[method-assign]
    try:
        yield model
    finally:
        del model.state_dict
