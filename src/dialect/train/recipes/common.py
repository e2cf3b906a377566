"""What every recipe does around its model: join the process group, seed, build, train, clean up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from dialect.train import distributed as D
from dialect.train.checkpoint import seed_everything
from dialect.train.trainer import Trainer


def run_training(cfg: Any, build: Callable[[], tuple[nn.Module, Dataset]]) -> dict:
    """`build()` makes (model, dataset) after seeding with `cfg.train.seed` (identical init on every
    rank; DDP also broadcasts rank 0's weights); each rank then draws from seed + rank."""
    dist = D.init_distributed(cfg.train.device)
    try:
        seed_everything(cfg.train.seed)
        model, dataset = build()
        seed_everything(cfg.train.seed + dist.rank)
        return Trainer(model, dataset, cfg.train, run_config=cfg, dist=dist).fit()
    finally:
        D.cleanup()
