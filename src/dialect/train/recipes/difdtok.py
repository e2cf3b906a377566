"""Recipe for Dif-DTok (`dialect train difdtok`): a flow-matching diffusion transformer that turns
TA-Tok ids back into pixels, conditioned on the frozen TA-Tok's decoded features.

Both frozen sub-models come from trained folders: the TA-Tok (`tatok=`, the output of
`dialect train tatok`) and, for `model.space=latent`, the pixel VQ whose latent grid is diffused
(`pixelvq=`, the output of `dialect train pixelvq`). Their configs are copied into the run config
and their weights into the model, so the saved de-tokenizer folder is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset, is_pretokenized
from dialect.detok.diffusion import DifDTok, DifDTokConfig
from dialect.train.config import TrainConfig
from dialect.train.pretokenized import check_tokenizers
from dialect.train.recipes.common import load_detok_inputs, run_training
from dialect.world import WorldConfig


@dataclass
class DifDTokRun:
    model: DifDTokConfig = field(default_factory=DifDTokConfig)
    tatok: str = "runs/tiny/tatok/model"  # trained TATok folder (the condition)
    pixelvq: str = "runs/tiny/pixelvq/model"  # trained PixelVQ folder (space=latent only)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/difdtok"))


def build_difdtok(cfg: DifDTokRun) -> DifDTok:
    """A fresh Dif-DTok carrying the trained TA-Tok (and pixel VQ) as frozen sub-models."""
    if cfg.model.image_size != cfg.data.size:
        raise DialectError(
            f"model.image_size={cfg.model.image_size} differs from data.size={cfg.data.size}; set both"
        )
    tatok, codec = load_detok_inputs(cfg, with_codec=cfg.model.space == "latent")
    model = DifDTok(cfg.model)
    model.load_submodels(tatok, codec)
    return model


def train(cfg: DifDTokRun) -> dict:
    def build():
        if cfg.model.space == "pixel" and is_pretokenized(cfg.data):
            raise DialectError("difdtok: space=pixel diffuses pixels, which a pretokenized folder lacks")
        model = build_difdtok(cfg)
        data = build_dataset(cfg.data, cfg.world)
        check_tokenizers(data, model.condition.tatok, cfg.tatok, model.codec, cfg.pixelvq)
        return model, data

    return run_training(cfg, build)
