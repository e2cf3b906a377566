"""Recipe for Dif-DTok (`dialect train difdtok`): a flow-matching diffusion transformer that turns
TA-Tok ids back into pixels, conditioned on the frozen TA-Tok's decoded features.

Both frozen sub-models come from trained folders: the TA-Tok (`tatok=`, the output of
`dialect train tatok`) and, for `model.space=latent`, the pixel VQ whose latent grid is diffused
(`pixelvq=`, the output of `dialect train pixelvq`). Their configs are copied into the run config
and their weights into the model, so the saved de-tokenizer folder is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset
from dialect.detok.diffusion import DifDTok, DifDTokConfig
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.tatok import TATok
from dialect.train.config import TrainConfig
from dialect.train.recipes.common import require_trained, run_training
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
    require_trained(cfg.tatok, "TA-Tok", "dialect train tatok --preset tiny", "tatok")
    tatok = TATok.from_pretrained(cfg.tatok)
    cfg.model.tatok = tatok.config
    codec = None
    if cfg.model.space == "latent":
        require_trained(cfg.pixelvq, "pixel VQ", "dialect train pixelvq --preset tiny", "pixelvq")
        codec = PixelVQ.from_pretrained(cfg.pixelvq)
        # only the encoder, codebook and decoder are carried: no discriminator or perceptual net
        cfg.model.codec = replace(codec.config, disc_weight=0.0, perceptual_weight=0.0, perceptual_net="")
    model = DifDTok(cfg.model)
    model.load_submodels(tatok, codec)
    return model


def train(cfg: DifDTokRun) -> dict:
    return run_training(cfg, lambda: (build_difdtok(cfg), build_dataset(cfg.data, cfg.world)))
