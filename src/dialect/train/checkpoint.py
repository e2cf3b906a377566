"""Training checkpoints: the model folder plus everything needed to resume bit-exactly.

Layout of `out_dir/checkpoint/` (replaced atomically as a whole, so a crash mid-write keeps the
previous one):
    model/              save_pretrained folder of the raw (non-EMA) weights
    ema/                save_pretrained folder of the EMA weights (when EMA is on)
    trainer_state.pt    optimizer, scheduler, step, data position, RNG state of every rank
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from dialect.core.errors import DialectError
from dialect.core.pretrained import WEIGHTS_NAME, atomic_dir, load_weights

STATE_NAME = "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def save_checkpoint(path: Path, model, ema_model, state: dict[str, Any]) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        if ema_model is not None:
            ema_model.save_pretrained(tmp / "ema")
        torch.save(state, tmp / STATE_NAME)

    return atomic_dir(path, write)


def load_checkpoint(path: Path, model, ema_model, load=None) -> dict[str, Any]:
    """Load weights into `model` (and `ema_model`) in place; return the trainer state dict.

    `load(model, state_dict)` puts the file's full tensors into the model (default: a strict
    `load_state_dict`; the FSDP trainer passes one that scatters them into the shards)."""
    state_file = path / STATE_NAME
    if not state_file.is_file():
        raise DialectError(f"checkpoint {path} is incomplete: {STATE_NAME} is missing")
    saved_cfg = type(model).load_config(path / "model")
    if saved_cfg != model.config:
        raise DialectError(
            f"{path} was trained with a different model config; use another train.out_dir "
            "or train.resume=false to start over"
        )
    if load is None:
        load_weights(model, path / "model" / WEIGHTS_NAME)
    else:
        load(model, load_file(str(path / "model" / WEIGHTS_NAME)))
    if ema_model is not None:
        ema_file = path / "ema" / WEIGHTS_NAME
        if not ema_file.is_file():
            raise DialectError(f"checkpoint {path} has no EMA weights but train.ema_decay > 0")
        load_weights(ema_model, ema_file)
    return torch.load(state_file, weights_only=False)
