"""The pixel baseline: a convolutional autoencoder trained with L1 + L2 reconstruction.

It is the simplest representation the project compares against (a continuous latent grid learned
from pixels alone, no text alignment) and the smallest real model the trainer drives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.pretrained import Pretrained
from dialect.encoders.conv import ConvDecoder, ConvEncoder


@dataclass
class PixelAutoencoderConfig:
    image_size: int = 64  # input side in pixels; must be divisible by the downsampling factor
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # widths per level
    num_res_blocks: int = 1  # residual blocks per level
    latent_dim: int = 16  # channels of the latent grid
    l1_weight: float = 1.0  # weight of the mean absolute error
    l2_weight: float = 1.0  # weight of the mean squared error

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)


class PixelAutoencoder(nn.Module, Pretrained):
    """(B, 3, H, W) in [-1, 1] -> latent (B, latent_dim, H/f, W/f) -> (B, 3, H, W)."""

    config_class = PixelAutoencoderConfig

    def __init__(self, config: PixelAutoencoderConfig) -> None:
        super().__init__()
        if config.image_size % config.downsample:
            raise ValueError(f"image_size {config.image_size} is not divisible by {config.downsample}")
        self.config = config
        self.encoder = ConvEncoder(config.channels, config.latent_dim, config.num_res_blocks)
        self.decoder = ConvDecoder(config.channels, config.latent_dim, config.num_res_blocks)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["image"]
        recon = self(x).float()
        l1 = F.l1_loss(recon, x)
        l2 = F.mse_loss(recon, x)
        return {"loss": self.config.l1_weight * l1 + self.config.l2_weight * l2, "l1": l1, "l2": l2}

    @torch.no_grad()
    def training_samples(self, batch: dict) -> torch.Tensor:
        """Inputs and reconstructions, interleaved: (2N, 3, H, W) in [-1, 1]."""
        x = batch["image"]
        return torch.stack([x, self(x).clamp(-1, 1).to(x.dtype)], dim=1).flatten(0, 1)
