"""One user image, from whatever a user hands over, as the tensor every model reads.

`load_image_tensor` accepts a path, a PIL image, a uint8 array (H, W, 3) or a tensor in [-1, 1],
and returns (B, 3, size, size) in [-1, 1] (centre crop, bicubic resize: `ImageTransform`). The
pipeline, the web app and the tokenizer CLIs all read images through it, so every entry point
refuses the same things with the same messages: missing files, non-images, truncated files and
images over `MAX_PIXELS` (checked from the header, before anything is decoded into memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dialect.core.errors import DialectError
from dialect.data.transforms import BadImage, ImageTransform, decode_image, to_rgb

MAX_PIXELS = 4096 * 4096  # larger inputs are refused rather than decoded into memory


def load_image_tensor(image: Any, size: int) -> torch.Tensor:
    """A path / PIL image / uint8 array (H, W, 3) / tensor in [-1, 1] -> (B, 3, size, size).
    Unreadable, non-image or oversized inputs -> DialectError naming the problem."""
    if isinstance(image, torch.Tensor):
        x = image.unsqueeze(0) if image.dim() == 3 else image
        if x.dim() != 4 or x.shape[1] != 3:
            raise DialectError(f"an image tensor must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        if x.shape[-1] != size or x.shape[-2] != size:
            x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bicubic", antialias=True)
        return x.float().clamp(-1, 1)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DialectError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise DialectError(f"image file not found: {path}")
        try:
            with Image.open(path) as probe:
                w, h = probe.size
        except Exception:
            raise DialectError(f"cannot use {path}: not an image file") from None
        if w * h > MAX_PIXELS:
            raise DialectError(f"{path} is {w}x{h}: images are limited to {MAX_PIXELS:,} pixels")
        try:
            image = decode_image(path)
        except BadImage as exc:
            raise DialectError(f"cannot use {path}: {exc.reason}") from None
    if not isinstance(image, Image.Image):
        raise DialectError(f"cannot read an image from a {type(image).__name__}")
    if image.width * image.height > MAX_PIXELS:
        raise DialectError(f"image is {image.width}x{image.height}: limited to {MAX_PIXELS:,} pixels")
    return ImageTransform(size=size)(to_rgb(image), 0).unsqueeze(0)
