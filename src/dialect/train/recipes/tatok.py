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
    """A fresh TA-Tok whose teacher carries the trained encoder's vision weights.

    A text codebook always reads E from its language model here, also when the config is a saved
    run's (whose vq.tokens only name the rows; its checkpoint is not loaded): the rows picked again
    must be the recorded ones, or the run would train another codebook than the config names."""
    vq = cfg.model.vq
    recorded, vq.tokens, vq.embed_dim = list(vq.tokens), [], 0
    model = _build(cfg)
    if recorded and vq.codebook == "text" and vq.tokens != recorded:
        raise DialectError(
            f"the config's vq.tokens differ from the {vq.num_codes} rows that rule {vq.rule!r} picks from "
            f"{vq.source or 'MiniLM'} now; point vq.source at the language model the config was made with"
        )
    return model


def _build(cfg: TATokRun) -> TATok:
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
