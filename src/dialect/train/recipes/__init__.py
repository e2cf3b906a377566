"""Recipes: for each trainable model, its run config (model + data + train sections) and the
function that builds model and dataset and hands them to the one Trainer.

Presets live in `dialect/configs/<recipe>/<name>.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dialect.core.errors import DialectError
from dialect.train.recipes import ardtok, autoencoder, difdtok, encoder, ids, lm, pixelvq, tatok


@dataclass(frozen=True)
class Recipe:
    config_class: type
    train: Callable[[Any], dict | None]  # a model's final metrics; None for the ids stage


RECIPES: dict[str, Recipe] = {
    "autoencoder": Recipe(autoencoder.AutoencoderRun, autoencoder.train),
    "encoder": Recipe(encoder.EncoderRun, encoder.train),
    "tatok": Recipe(tatok.TATokRun, tatok.train),
    "pixelvq": Recipe(pixelvq.PixelVQRun, pixelvq.train),
    "ids": Recipe(ids.IdsRun, ids.train),
    "ardtok": Recipe(ardtok.ARDTokRun, ardtok.train),
    "difdtok": Recipe(difdtok.DifDTokRun, difdtok.train),
    "lm": Recipe(lm.LMRun, lm.train),
}


def preset_path(recipe: str, name: str) -> Path:
    """The YAML file of preset `name` for `recipe`; an unknown name lists the available ones."""
    folder = resources.files("dialect") / "configs" / recipe
    path = Path(str(folder / f"{name}.yaml"))
    if not path.is_file():
        known = sorted(p.stem for p in Path(str(folder)).glob("*.yaml")) if Path(str(folder)).is_dir() else []
        raise DialectError(f"no preset '{name}' for {recipe}; available: {', '.join(known) or 'none'}")
    return path
