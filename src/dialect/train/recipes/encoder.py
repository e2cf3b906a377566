"""Recipe for the contrastive teacher encoder (`dialect train encoder`): a ViT trained on
ShapeWorld image-caption pairs with SigLIP's sigmoid loss against the frozen MiniLM."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dialect.data.build import DataConfig
from dialect.encoders.contrastive import ContrastiveConfig, ContrastiveEncoder
from dialect.eval.retrieval import retrieval_r1
from dialect.train import distributed as D
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import image_dataset, run_training
from dialect.world import WorldConfig


@dataclass
class EncoderRun:
    model: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/encoder"))


def train(cfg: EncoderRun) -> dict:
    result = run_training(cfg, lambda: (ContrastiveEncoder(cfg.model), image_dataset(cfg)))
    if D.launched_as_main():
        out = Path(cfg.train.out_dir)
        model = ContrastiveEncoder.from_pretrained(out / "model")
        scores = {
            f"r1_{split}": retrieval_r1(model, cfg.world, split=split) for split in ("train", "heldout")
        }
        (out / "eval.json").write_text(json.dumps({"retrieval_batch": 256, **scores}, indent=2))
        result = {**result, **scores}
    return result
