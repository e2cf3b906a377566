"""Recipe for the pixel-baseline autoencoder (`dialect train autoencoder`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialect.data.build import DataConfig, build_dataset
from dialect.encoders.pixel import PixelAutoencoder, PixelAutoencoderConfig
from dialect.train import distributed as D
from dialect.train.checkpoint import seed_everything
from dialect.train.config import TrainConfig
from dialect.train.trainer import Trainer
from dialect.world import WorldConfig


@dataclass
class AutoencoderRun:
    model: PixelAutoencoderConfig = field(default_factory=PixelAutoencoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)  # used when data.source = shapeworld
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/autoencoder"))


def train(cfg: AutoencoderRun) -> dict:
    dist = D.init_distributed(cfg.train.device)
    try:
        seed_everything(cfg.train.seed)  # same init on every rank (DDP also broadcasts rank 0's)
        model = PixelAutoencoder(cfg.model)
        dataset = build_dataset(cfg.data, cfg.world)
        seed_everything(cfg.train.seed + dist.rank)
        return Trainer(model, dataset, cfg.train, run_config=cfg, dist=dist).fit()
    finally:
        D.cleanup()
