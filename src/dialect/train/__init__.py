"""One trainer for every model: `Trainer`, `TrainConfig`, and the distributed helpers."""

from dialect.train.config import TrainConfig
from dialect.train.trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
