"""Recipe for the pixel-baseline autoencoder (`dialect train autoencoder`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialect.data.build import DataConfig
from dialect.encoders.pixel import PixelAutoencoder, PixelAutoencoderConfig
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import image_dataset, run_training
from dialect.world import WorldConfig


@dataclass
class AutoencoderRun:
    model: PixelAutoencoderConfig = field(default_factory=PixelAutoencoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)  # used when data.source = shapeworld
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/autoencoder"))


def train(cfg: AutoencoderRun) -> dict:
    return run_training(cfg, lambda: (PixelAutoencoder(cfg.model), image_dataset(cfg)))
