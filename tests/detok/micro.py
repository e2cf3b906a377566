"""Micro TA-Tok and pixel-VQ configs shared by the de-tokenizer tests (16x16 images)."""

import torch

from dialect.encoders.vit import ViTConfig
from dialect.quant import VQConfig
from dialect.tokenizers.pixelvq import PixelVQConfig
from dialect.tokenizers.tatok import TATokConfig

SIZE = 16


def tatok_cfg(**kw) -> TATokConfig:
    """A micro TA-Tok: 16x16 images, 4x4 teacher grid, scales 16 / 4 / 1 tokens."""
    base = dict(
        teacher=ViTConfig(image_size=SIZE, patch_size=4, dim=32, depth=1, heads=2),
        pool_scales=[1, 2, 4],
        vq=VQConfig(dim=384, num_codes=64),
        decoder_dim=32, decoder_depth=1, decoder_heads=2,
    )  # fmt: skip
    base.update(kw)
    return TATokConfig(**base)


def codec_cfg() -> PixelVQConfig:
    """A micro pixel VQ: 16x16 images -> 8x8 grid of 8-d unit codes."""
    vq = VQConfig(dim=8, num_codes=32, codebook="learned")
    return PixelVQConfig(image_size=SIZE, channels=[8, 16], vq=vq)


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    """Bright flat-coloured 8x8 squares on black, 16x16 in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    img = -torch.ones(n, 3, SIZE, SIZE)
    for i in range(n):
        y, x = torch.randint(0, 8, (2,), generator=g).tolist()
        img[i, :, y : y + 8, x : x + 8] = torch.rand(3, generator=g)[:, None, None]
    return img
