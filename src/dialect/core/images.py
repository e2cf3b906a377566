"""Pixel conversions and image grids shared by every layer.

Convention (DESIGN.md): pixels are float in [-1, 1] inside models, uint8 at I/O. These helpers are
the only place that converts between the two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 array (H, W, 3) -> float tensor (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float tensor (..., 3, H, W) in [-1, 1] -> uint8 array (..., H, W, 3); values are clamped."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def grid(images: np.ndarray | list[np.ndarray], ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile N uint8 images (N, H, W, 3) into one uint8 sheet with `pad` white pixels between cells.

    `ncols` defaults to ceil(sqrt(N)); images must share one size.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"grid expects (N, H, W, 3) with N > 0, got shape {images.shape}")
    n, h, w, c = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    sheet = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        sheet[y : y + h, x : x + w] = img
    return sheet


def save_grid(images: torch.Tensor | np.ndarray, path: str | Path, ncols: int | None = None) -> Path:
    """Save a grid of images (tensor in [-1, 1] shaped (N, 3, H, W), or uint8 (N, H, W, 3)) as PNG."""
    arr = to_uint8(images) if isinstance(images, torch.Tensor) else np.asarray(images)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(arr, ncols)).save(path)
    return path
