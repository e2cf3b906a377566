"""Vision towers from local Hugging Face folders (SigLIP, SigLIP2, CLIP vision), as TA-Tok teachers.

The same teacher interface as :class:`~dialect.encoders.vit.ViT`: `feature_dim`, `grid_size()` and
`grid_features(images, layer) -> (B, h, w, C)`. Images arrive in [-1, 1] at any size; they are
resized to the tower's resolution and normalised with its processor's mean/std
(`preprocessor_config.json` when present; SigLIP's 0.5/0.5 otherwise, which is exactly [-1, 1]).
A class token (CLIP) is dropped so the output is the patch grid. Local folders only: nothing is
downloaded.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError


class HFVisionTower(nn.Module):
    def __init__(self, path: str | Path, layer: int = -2) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise DialectError(f"{path} is not a local Hugging Face model folder (no config.json)")
        config = AutoConfig.from_pretrained(path)
        config = getattr(config, "vision_config", config)  # a full SigLIP/CLIP folder: take its tower
        weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        model = AutoModel.from_pretrained(path) if weights else AutoModel.from_config(config)
        self.model = getattr(model, "vision_model", model)
        self.layer = layer
        self.image_size = int(config.image_size)
        self.patch_size = int(config.patch_size)
        mean, std = _processor_stats(path)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.feature_dim = int(config.hidden_size)

    def grid_size(self, image_size: int | None = None) -> int:
        return self.image_size // self.patch_size

    def grid_features(self, images: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, h, w, C) from hidden layer `layer` (default: the tower's)."""
        x = (images + 1) / 2
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        x = (x - self.mean) / self.std
        out = self.model(pixel_values=x, output_hidden_states=True)
        hidden = out.hidden_states[self.layer if layer is None else layer]  # (B, T, C)
        side = math.isqrt(hidden.shape[1])
        if side * side != hidden.shape[1]:
            hidden = hidden[:, 1:]  # a class token in front of the patch grid
            side = math.isqrt(hidden.shape[1])
        return hidden.reshape(hidden.shape[0], side, side, -1)


def _processor_stats(path: Path) -> tuple[list[float], list[float]]:
    proc = path / "preprocessor_config.json"
    if proc.is_file():
        data = json.loads(proc.read_text())
        if "image_mean" in data and "image_std" in data:
            return [float(v) for v in data["image_mean"]], [float(v) for v in data["image_std"]]
    return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
