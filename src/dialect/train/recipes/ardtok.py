"""Recipe for AR-DTok (`dialect train ardtok`): a decoder-only transformer that turns TA-Tok ids
back into pixels by predicting pixel-VQ ids, conditioned on the frozen TA-Tok's decoded features.

Both frozen sub-models come from trained folders, the TA-Tok (`tatok=`, from `dialect train
tatok`) and the pixel VQ (`pixelvq=`, from `dialect train pixelvq`); their configs are copied into
the run config and their weights into the model, so the saved de-tokenizer folder is
self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset
from dialect.detok.ar import ARDTok, ARDTokConfig
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.tatok import TATok
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import require_trained, run_training
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
    require_trained(cfg.tatok, "TA-Tok", "dialect train tatok --preset tiny", "tatok")
    require_trained(cfg.pixelvq, "pixel VQ", "dialect train pixelvq --preset tiny", "pixelvq")
    tatok = TATok.from_pretrained(cfg.tatok)
    codec = PixelVQ.from_pretrained(cfg.pixelvq)
    if codec.config.image_size != cfg.data.size:
        raise DialectError(
            f"pixel VQ was trained at {codec.config.image_size} px but data.size={cfg.data.size}"
        )
    cfg.model.tatok = tatok.config
    # only the encoder, codebook and decoder are carried: no discriminator or perceptual net
    cfg.model.codec = replace(codec.config, disc_weight=0.0, perceptual_weight=0.0, perceptual_net="")
    model = ARDTok(cfg.model)
    model.load_submodels(tatok, codec)
    return model


def train(cfg: ARDTokRun) -> dict:
    return run_training(cfg, lambda: (build_ardtok(cfg), build_dataset(cfg.data, cfg.world)))
