"""Convolutional encoder/decoder stacks (GroupNorm + SiLU residual blocks), the pixel baseline's
body and, later, the pixel VQ tokenizer's.

Encoder: (B, 3, H, W) in [-1, 1] -> (B, latent_dim, H / f, W / f) with f = 2 ** (len(channels) - 1).
Decoder: the mirror image back to (B, 3, H, W). GroupNorm rather than BatchNorm so a sample's
output never depends on the rest of its batch (DDP-equivalent and batch-size independent).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4) if ch >= 8 else 1, ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class ConvEncoder(nn.Module):
    def __init__(self, channels: list[int], latent_dim: int, num_res_blocks: int = 1, in_ch: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, channels[0], 3, padding=1)]
        for i, ch in enumerate(channels):
            cin = channels[max(0, i - 1)]
            if i > 0:  # stride-2 conv halves the grid at every level after the first
                layers.append(nn.Conv2d(cin, cin, 4, stride=2, padding=1))
            for j in range(num_res_blocks):
                layers.append(ResBlock(cin if j == 0 else ch, ch))
        layers += [_norm(channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, latent_dim, H / f, W / f)


class ConvDecoder(nn.Module):
    def __init__(
        self, channels: list[int], latent_dim: int, num_res_blocks: int = 1, out_ch: int = 3
    ) -> None:
        super().__init__()
        rev = list(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, rev[0], 3, padding=1)]
        for i, ch in enumerate(rev):
            cin = rev[max(0, i - 1)]
            if i > 0:  # nearest upsample + conv (no checkerboard from transposed convs)
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cin, 3, padding=1)]
            for j in range(num_res_blocks):
                layers.append(ResBlock(cin if j == 0 else ch, ch))
        layers += [_norm(rev[-1]), nn.SiLU(), nn.Conv2d(rev[-1], out_ch, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, 3, H, W), unbounded; callers clamp to [-1, 1] for images
