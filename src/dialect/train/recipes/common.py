"""What every recipe does around its model: join the process group, seed, build, train, clean up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.data.build import build_dataset, is_pretokenized
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.tatok import TATok
from dialect.train import distributed as D
from dialect.train.checkpoint import seed_everything
from dialect.train.trainer import Trainer


def run_training(cfg: Any, build: Callable[[], tuple[nn.Module, Dataset]]) -> dict:
    """`build()` makes (model, dataset) after seeding with `cfg.train.seed` (identical init on every
    rank; DDP also broadcasts rank 0's weights); each rank then draws from seed + rank."""
    with D.process_group(cfg.train.device) as dist:
        seed_everything(cfg.train.seed)
        model, dataset = build()
        seed_everything(cfg.train.seed + dist.rank)
        return Trainer(model, dataset, cfg.train, run_config=cfg, dist=dist).fit()


def image_dataset(cfg: Any) -> Dataset:
    """`build_dataset(cfg.data, cfg.world)` for a recipe that trains on pixels: stored ids
    (data.source=pretokenized) are refused with the recipes that read them."""
    if is_pretokenized(cfg.data):
        raise DialectError("pretokenized folders hold ids, not images: they train lm, ardtok and difdtok")
    return build_dataset(cfg.data, cfg.world)


def require_trained(path: str, what: str, command: str, key: str) -> None:
    """Fail with the command that makes it when a recipe's input model folder is missing."""
    if not Path(path, "config.json").is_file():
        raise DialectError(
            f"{what} not found at {path}: train one with `{command}`, "
            f"or point {key}= at a saved {what} folder"
        )


def load_detok_inputs(cfg: Any, with_codec: bool = True) -> tuple[TATok, PixelVQ | None]:
    """A de-tokenizer run's frozen inputs: the trained TA-Tok (`cfg.tatok`) and pixel VQ
    (`cfg.pixelvq`, when `with_codec`). Their configs are copied into `cfg.model` (the codec's
    without its training-only terms), so the saved de-tokenizer folder is self-contained."""
    require_trained(cfg.tatok, "TA-Tok", "dialect train tatok --preset tiny", "tatok")
    tatok = TATok.from_pretrained(cfg.tatok)
    cfg.model.tatok = tatok.config
    if not with_codec:
        return tatok, None
    require_trained(cfg.pixelvq, "pixel VQ", "dialect train pixelvq --preset tiny", "pixelvq")
    codec = PixelVQ.from_pretrained(cfg.pixelvq)
    if codec.config.image_size != cfg.data.size:
        raise DialectError(
            f"pixel VQ was trained at {codec.config.image_size} px but data.size={cfg.data.size}"
        )
    cfg.model.codec = codec.inference_config()
    return tatok, codec
