"""Recipe for TA-Tok (`dialect train tatok`): quantize a frozen teacher's features into
text-aligned codes and learn to reconstruct them. The teacher is a trained contrastive encoder
folder (`teacher=`, the output of `dialect train encoder`) or a local HF vision tower
(`model.hf_teacher=`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig
from dialect.encoders.contrastive import ContrastiveEncoder
from dialect.tokenizers.tatok import TATok, TATokConfig
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import image_dataset, run_training
from dialect.world import WorldConfig


@dataclass
class TATokRun:
    model: TATokConfig = field(default_factory=TATokConfig)
    teacher: str = "runs/tiny/encoder/model"  # trained ContrastiveEncoder folder (ignored with hf_teacher)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/tatok"))


def build_tatok(cfg: TATokRun) -> TATok:
    """A fresh TA-Tok whose teacher carries the trained encoder's vision weights."""
    if cfg.model.hf_teacher:
        return TATok(cfg.model)
    if not Path(cfg.teacher, "config.json").is_file():
        raise DialectError(
            f"teacher encoder not found at {cfg.teacher}: train one with `dialect train encoder "
            "--preset tiny`, or point teacher= at a ContrastiveEncoder folder"
        )
    encoder = ContrastiveEncoder.from_pretrained(cfg.teacher)
    cfg.model.teacher = encoder.config.vision
    model = TATok(cfg.model)
    model.teacher.load_state_dict(encoder.vision.state_dict())
    return model


def train(cfg: TATokRun) -> dict:
    return run_training(cfg, lambda: (build_tatok(cfg), image_dataset(cfg)))
