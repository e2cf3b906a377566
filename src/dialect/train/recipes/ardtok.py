"""Recipe for AR-DTok (`dialect train ardtok`): a decoder-only transformer that turns TA-Tok ids
back into pixels by predicting pixel-VQ ids, conditioned on the frozen TA-Tok's decoded features.

Both frozen sub-models come from trained folders, the TA-Tok (`tatok=`, from `dialect train
tatok`) and the pixel VQ (`pixelvq=`, from `dialect train pixelvq`); their configs are copied into
the run config and their weights into the model, so the saved de-tokenizer folder is
self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialect.data.build import DataConfig, build_dataset
from dialect.detok.ar import ARDTok, ARDTokConfig
from dialect.train.config import TrainConfig
from dialect.train.pretokenized import check_tokenizers
from dialect.train.recipes.common import load_detok_inputs, run_training
from dialect.world import WorldConfig


@dataclass
class ARDTokRun:
    model: ARDTokConfig = field(default_factory=ARDTokConfig)
    tatok: str = "runs/tiny/tatok/model"  # trained TATok folder (the condition)
    pixelvq: str = "runs/tiny/pixelvq/model"  # trained PixelVQ folder (the predicted codes)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/ardtok"))


def build_ardtok(cfg: ARDTokRun) -> ARDTok:
    """A fresh AR-DTok carrying the trained TA-Tok and pixel VQ as frozen sub-models."""
    tatok, codec = load_detok_inputs(cfg)
    model = ARDTok(cfg.model)
    model.load_submodels(tatok, codec)
    return model


def train(cfg: ARDTokRun) -> dict:
    def build():
        model = build_ardtok(cfg)
        data = build_dataset(cfg.data, cfg.world)
        check_tokenizers(data, model.condition.tatok, cfg.tatok, model.codec, cfg.pixelvq)
        return model, data

    return run_training(cfg, build)
