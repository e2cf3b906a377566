"""Exponential moving average of a model's weights (the exported model when enabled)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """`shadow = decay * shadow + (1 - decay) * weights` after every optimizer step.

    Floating-point buffers are copied, not averaged. The shadow model is a full copy of the model,
    so it can be saved with `save_pretrained` and evaluated directly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.model.parameters())
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
