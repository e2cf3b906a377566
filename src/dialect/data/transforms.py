"""Image decoding and resize/crop transforms, with PIL and numpy only (no torchvision).

`decode_image` opens a file or bytes, fully decodes it (so a truncated file fails here, inside the
source, not later), applies the EXIF orientation, converts any mode to RGB and enforces the
minimum size; anything wrong raises `BadImage(reason)`, which sources turn into a `Skipped`.

`ImageTransform(img, index)` maps an RGB PIL image to a float tensor (3, size, size) in [-1, 1]:
a square crop (centre or random) resized with bicubic filtering (PIL antialiases when shrinking),
and an optional horizontal flip. Random choices are drawn from a generator seeded by
(seed, index), so the same sample always gets the same crop and a training run is reproducible
and resumable without saving any RNG state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from dialect.core.images import to_tensor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CROPS = ("center", "random", "none")


class BadImage(Exception):
    """A file that cannot be used as an image; `reason` is a short phrase for the skip list."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_image(src: str | Path | bytes, min_size: int = 8, draft: int | None = None) -> Image.Image:
    """Open and fully decode `src` (a path or the file's bytes) into an RGB image.

    `draft` (JPEG only) lets the decoder shrink by a power of two while keeping both sides
    >= draft, which makes large photos much cheaper to load. Raises `BadImage` with the reason:
    "missing file", "not an image", "truncated image", "too small (WxH)" or "unreadable image (...)".
    """
    try:
        fp = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise BadImage("missing file") from None
    except OSError as exc:
        raise BadImage(f"unreadable file ({exc.strerror or exc})") from None
    try:
        with fp, Image.open(fp) as raw:
            w, h = raw.size
            if min(w, h) < min_size:
                raise BadImage(f"too small ({w}x{h})")
            if draft and raw.format == "JPEG":
                raw.draft("RGB", (draft, draft))
            raw.load()  # decode now: a truncated file raises here
            img = ImageOps.exif_transpose(raw)
            # `raw` is closed when the block exits; what we return must be a separate image.
            return to_rgb(raw.copy() if img is raw else img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except Image.DecompressionBombError:
        raise BadImage("too large (decompression bomb limit)") from None
    except Exception as exc:  # noqa: BLE001 - corrupt files make PIL raise many types; never crash
        if "truncated" in str(exc):
            raise BadImage("truncated image") from None
        raise BadImage(f"unreadable image ({type(exc).__name__}: {exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparency (RGBA, LA, P with a transparent index) goes onto white;
    16-bit and float greyscale are scaled to 8 bits; CMYK/YCbCr/L/1 use PIL's own conversion."""
    if img.mode == "RGB":
        return img
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    return img.convert("RGB")


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square inside (width, height), as a PIL box (left, top, right, bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def random_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A square of the short side at a random offset along the long side."""
    side = min(width, height)
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for one sample's random choices: a pure function of (seed, index)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, index & 0xFFFFFFFFFFFFFFFF])


@dataclass(frozen=True)
class ImageTransform:
    """RGB PIL image -> float tensor (3, size, size) in [-1, 1]."""

    size: int = 64  # output side in pixels
    crop: str = "center"  # center | random (square of the short side) | none (squash whole image)
    flip: bool = False  # random horizontal flip with p = 0.5
    seed: int = 0  # with the sample index, seeds the random crop and flip

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")

    def __call__(self, img: Image.Image, index: int = 0) -> torch.Tensor:
        img = to_rgb(img)
        rng = sample_rng(self.seed, index)
        w, h = img.size
        if self.crop == "center":
            box = center_box(w, h)
        elif self.crop == "random":
            box = random_box(w, h, rng)
        else:
            box = (0, 0, w, h)
        if box != (0, 0, self.size, self.size):
            img = img.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(np.array(img, dtype=np.uint8))  # a writable copy
