"""Rotary position embeddings (RoPE), 1-D for sequences and 2-D for image grids.

A table is `(cos, sin)`, each (T, head_dim / 2). 1-D: position t rotates pair i by
t * base^(-2i / head_dim). 2-D (any grid size, so one model serves every TA-Tok scale): the first
half of the pairs encodes the row, the second half the column, each with the 1-D rule.
"""

from __future__ import annotations

import torch


def _freqs(n_pairs: int, base: float) -> torch.Tensor:
    return base ** (-torch.arange(n_pairs, dtype=torch.float32) / n_pairs)


def rope_1d(
    positions: torch.Tensor, head_dim: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """positions (T,) -> (cos, sin), each (T, head_dim / 2), fp32."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    angles = positions.float()[:, None] * _freqs(head_dim // 2, base).to(positions.device)[None]
    return angles.cos(), angles.sin()


def rope_2d(height: int, width: int, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid (height, width), row-major -> (cos, sin), each (height * width, head_dim / 2), fp32."""
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ang_y = ys.reshape(-1, 1).float() * _freqs(quarter, base)[None]
    ang_x = xs.reshape(-1, 1).float() * _freqs(quarter, base)[None]
    angles = torch.cat([ang_y, ang_x], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, heads, T, head_dim) by the table (T, head_dim / 2); pairs are (even, odd) lanes.

    Each pair is a complex number and the rotation one complex product: the same arithmetic as
    (x1 cos - x2 sin, x1 sin + x2 cos) (bit-identical here), in 2 kernels instead of about 10,
    which matters at batch-1 decoding (one token per step) and halves the op's training time.
    Inside `torch.compile` the real form is used: inductor does not generate code for complex
    arithmetic, and fuses the real form into one kernel anyway."""
    if torch.compiler.is_compiling():
        x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).to(x.dtype)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * torch.complex(cos, sin)).flatten(-2).to(x.dtype)
