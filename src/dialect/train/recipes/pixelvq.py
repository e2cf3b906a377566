"""Recipe for the pixel VQ tokenizer (`dialect train pixelvq`): LlamaGen-style VQ on pixels, with
optional perceptual (frozen ContrastiveEncoder features) and PatchGAN terms."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialect.data.build import DataConfig
from dialect.tokenizers.pixelvq import PixelVQ, PixelVQConfig
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import image_dataset, run_training
from dialect.world import WorldConfig


@dataclass
class PixelVQRun:
    model: PixelVQConfig = field(default_factory=PixelVQConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)  # used when data.source = shapeworld
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/pixelvq"))


def build_pixelvq(cfg: PixelVQRun) -> PixelVQ:
    """A fresh PixelVQ; with the perceptual term on, its frozen network is loaded now, so a wrong
    `model.perceptual_net` fails before training starts."""
    model = PixelVQ(cfg.model)
    if cfg.model.perceptual_weight > 0:
        model.perceptual()
    return model


def train(cfg: PixelVQRun) -> dict:
    return run_training(cfg, lambda: (build_pixelvq(cfg), image_dataset(cfg)))
