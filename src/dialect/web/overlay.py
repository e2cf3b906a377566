"""The Dialect view's picture: an image with its TA-Tok token grid and each code's source word.

    overlay = token_overlay(image_uint8, words, side)    # (512, 512, 3) uint8

The image is scaled up with nearest-neighbour (so the pixels the tokenizer saw stay visible), cut
into the side x side grid of the tokens (row-major, like `TATok.encode_ids`), and every cell gets
its code's word on a translucent label. A word too wide for its cell is drawn smaller, then cut
with a trailing '.', so every cell stays readable at every scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MAX_FONT = 15  # px; larger reads badly in the 64 px cells of the finest shipped scale
MIN_FONT = 9


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (no system fonts needed: the demo runs on bare machines)."""
    return ImageFont.load_default(size=size)


def fit_word(draw: ImageDraw.ImageDraw, word: str, width: float) -> tuple[str, ImageFont.ImageFont]:
    """(text, font) that fits `width` px: the largest font size that holds the whole word, else
    the word cut at the smallest size with '.' marking the cut."""
    for size in range(MAX_FONT, MIN_FONT - 1, -1):
        font = _font(size)
        if draw.textlength(word, font=font) <= width:
            return word, font
    font = _font(MIN_FONT)
    for end in range(len(word) - 1, 0, -1):
        text = word[:end] + "."
        if draw.textlength(text, font=font) <= width:
            return text, font
    return word[:1], font


def token_overlay(image: np.ndarray, words: Sequence[str], side: int, size: int = 512) -> np.ndarray:
    """uint8 image (H, W, 3) + side*side words (row-major) -> uint8 (size, size, 3) with the grid
    lines and each cell's word drawn on the nearest-neighbour upscaled image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if len(words) != side * side:
        raise ValueError(f"a {side}x{side} grid needs {side * side} words, got {len(words)}")
    base = Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    cell = size / side
    for k in range(1, side):  # grid lines between the cells
        at = round(k * cell)
        draw.line([(at, 0), (at, size)], fill=(40, 40, 40, 150), width=1)
        draw.line([(0, at), (size, at)], fill=(40, 40, 40, 150), width=1)
    for i, word in enumerate(words):
        r, c = divmod(i, side)
        cx, cy = (c + 0.5) * cell, (r + 0.5) * cell
        text, font = fit_word(draw, str(word), cell - 6)
        left, top, right, bottom = draw.textbbox((cx, cy), text, font=font, anchor="mm")
        # a translucent label keeps words readable on any colour without hiding the pixels
        draw.rounded_rectangle(
            (left - 2, top - 2, right + 2, bottom + 2), radius=3, fill=(255, 255, 255, 190)
        )
        draw.text((cx, cy), text, font=font, fill=(10, 10, 10, 255), anchor="mm")
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))
