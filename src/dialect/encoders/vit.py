"""A small ViT image encoder (the SigLIP-vision analogue at our scale).

(B, 3, H, W) in [-1, 1] -> patch grid (B, H/p, W/p, dim) from any block (the paper's TA-Tok reads
SigLIP2's penultimate layer; `grid_features(layer=-2)` does the same), and a pooled embedding
(B, dim) (mean over patches, then the final norm). Positions are 2-D RoPE, so any image size
divisible by the patch size works without interpolating position tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dialect.core.pretrained import Pretrained
from dialect.nn.blocks import Stack
from dialect.nn.rope import rope_2d


@dataclass
class ViTConfig:
    image_size: int = 64  # training resolution (other multiples of patch_size also work)
    patch_size: int = 8  # 64 / 8 -> an 8x8 grid of patch features
    dim: int = 192  # width
    depth: int = 4  # blocks
    heads: int = 4  # attention heads (head_dim = dim / heads, divisible by 4 for 2-D RoPE)


class ViT(nn.Module, Pretrained):
    config_class = ViTConfig

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch = nn.Conv2d(3, config.dim, config.patch_size, stride=config.patch_size)
        self.stack = Stack(config.dim, config.depth, config.heads)

    @property
    def feature_dim(self) -> int:
        return self.config.dim

    def grid_size(self, image_size: int | None = None) -> int:
        return (image_size or self.config.image_size) // self.config.patch_size

    def _tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple, int, int]:
        x = self.patch(images)  # (B, dim, h, w)
        h, w = x.shape[-2:]
        rope = tuple(t.to(x.device) for t in rope_2d(h, w, self.config.dim // self.config.heads))
        return x.flatten(2).transpose(1, 2), rope, h, w  # (B, h*w, dim)

    def grid_features(self, images: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """(B, 3, H, W) -> (B, h, w, dim). layer=-1: the normed top; layer=i or -k: block i's output."""
        x, rope, h, w = self._tokens(images)
        hidden = None if layer == -1 else layer % self.config.depth
        x = self.stack(x, rope=rope, return_hidden=hidden)
        return x.view(x.shape[0], h, w, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled embedding (B, dim): mean of the top-layer patch features."""
        return self.grid_features(images).mean(dim=(1, 2))
