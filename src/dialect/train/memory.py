"""Memory arithmetic for one training step: parameters, optimizer state and activations.

Estimates, stated so they can be checked by hand (bytes; GiB = 2^30 bytes):

Weights and optimizer (our trainer: fp32 parameters, bf16 autocast, torch AdamW; DDP replicates
all of it on every GPU):
    weights    4 B x every parameter and buffer (fp32 master copy; frozen parts included)
    grads      4 B x trainable parameter
    AdamW      8 B x trainable parameter (fp32 first and second moments)

Activations kept for backward, per token of one transformer layer, in bf16 (2 B per value),
with a fused (flash / memory-efficient) attention kernel, so no T x T score matrix is stored:
    2 x (6 h + kv + m I)   bytes
    h   the width: norm-1 input and output, q, attention output, norm-2 input and output (6 h)
    kv  the width of keys plus values (2 h for multi-head attention, 2 kv_heads x head_dim for GQA)
    I   the MLP hidden width; m = 4 for a gated MLP (SwiGLU: gate, up, silu(gate), product),
        m = 2 for a plain one (GELU: fc1 output, activation output)
(This is Korthikanti et al. 2022's 34 h per token for a GPT layer, re-derived for pre-norm, no
dropout, fused attention, gated MLP and GQA.)
A stack of L layers over T tokens keeps   T x L x layer   without activation checkpointing, and
T x L x 2 h + T x layer   with per-layer checkpointing (each layer's bf16 input is kept, one
layer is recomputed at a time during backward).
A frozen part run under `no_grad` keeps nothing; its forward needs one layer's working set, T x
layer, transiently (reported, not added: it is freed before the trainable part runs).
LM output head: 10 B x V per predicted token (bf16 logits, their fp32 copy, and the fp32
log-softmax cross-entropy keeps for backward); a chunked or fused loss would remove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

GIB = 2**30
BF16 = 2
WEIGHT_BYTES, GRAD_BYTES, ADAMW_BYTES = 4, 4, 8
LOGIT_BYTES = 10  # per vocabulary entry per predicted token (see the module docstring)


@dataclass(frozen=True)
class LayerShape:
    """The activation-relevant shape of one transformer layer."""

    width: int  # h
    kv_width: int  # keys + values, per token
    mlp_hidden: int  # I
    gated: bool  # SwiGLU (True) or a plain GELU MLP (False)

    def bytes_per_token(self) -> int:
        """Bytes one token keeps for backward in this layer (bf16; see the module docstring)."""
        m = 4 if self.gated else 2
        return BF16 * (6 * self.width + self.kv_width + m * self.mlp_hidden)


def stack_activation_bytes(layer: LayerShape, depth: int, tokens: int, checkpointing: bool) -> int:
    """Bytes `depth` trainable layers keep for backward over `tokens` tokens."""
    if checkpointing:
        return tokens * depth * BF16 * layer.width + tokens * layer.bytes_per_token()
    return tokens * depth * layer.bytes_per_token()


def logits_bytes(tokens: int, vocab: int) -> int:
    """Bytes the output head and cross-entropy keep for `tokens` predicted tokens over `vocab`."""
    return tokens * vocab * LOGIT_BYTES


@dataclass(frozen=True)
class ParamCount:
    total: int  # parameters (tied ones once)
    trainable: int  # parameters with requires_grad
    buffers: int  # persistent and non-persistent buffer elements (e.g. TA-Tok's frozen E)


def count_params(module: nn.Module) -> ParamCount:
    """Element counts of `module` (works on the meta device: nothing is read)."""
    params = list(module.parameters())  # deduplicated, so tied weights count once
    return ParamCount(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        buffers=sum(b.numel() for b in module.buffers()),
    )


def count_by_prefix(module: nn.Module, depth: int = 1) -> dict[str, ParamCount]:
    """`count_params` per group of parameter names cut to their first `depth` components, in
    module order (`model.layers.3.mlp.weight` -> `model.layers` at depth 2)."""
    groups: dict[str, list[torch.Tensor]] = {}
    frozen: dict[str, int] = {}
    for name, p in module.named_parameters():
        groups.setdefault(".".join(name.split(".")[:depth]), []).append(p)
    for name, b in module.named_buffers():
        key = ".".join(name.split(".")[:depth])
        groups.setdefault(key, [])
        frozen[key] = frozen.get(key, 0) + b.numel()
    return {
        key: ParamCount(
            total=sum(p.numel() for p in ps),
            trainable=sum(p.numel() for p in ps if p.requires_grad),
            buffers=frozen.get(key, 0),
        )
        for key, ps in groups.items()
    }


def state_bytes(count: ParamCount) -> dict[str, int]:
    """Per-GPU bytes of fp32 weights (+ buffers), fp32 grads and AdamW moments."""
    return {
        "weights": WEIGHT_BYTES * (count.total + count.buffers),
        "grads": GRAD_BYTES * count.trainable,
        "adamw": ADAMW_BYTES * count.trainable,
    }


def gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"
