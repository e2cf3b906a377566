"""The Dialect view's token-grid overlay (`dialect.web.overlay`)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dialect.web.overlay import MIN_FONT, _font, fit_word, token_overlay


def _image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_overlay_draws_a_grid_and_a_word_per_cell_on_the_upscaled_image():
    img = _image()
    side, size = 4, 256
    out = token_overlay(img, [f"w{i}" for i in range(side * side)], side, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    plain = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.NEAREST))
    cell = size // side
    for r in range(side):
        for c in range(side):
            y, x = r * cell, c * cell
            centre = (
                slice(y + cell // 2 - 3, y + cell // 2 + 3),
                slice(x + cell // 2 - 3, x + cell // 2 + 3),
            )
            assert not np.array_equal(out[centre], plain[centre])  # a label sits on every cell
            corner = (slice(y + 3, y + 8), slice(x + 3, x + 8))
            assert np.array_equal(out[corner], plain[corner])  # the pixels around it stay visible
    line = out[:, cell].astype(int) - plain[:, cell].astype(int)
    assert (line < 0).any()  # the grid lines darken the column between the first two cells


def test_long_words_shrink_then_get_cut():
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    text, font = fit_word(draw, "at", 60)
    assert text == "at"
    text, font = fit_word(draw, "municipality" * 3, 40)
    assert text.endswith(".") and draw.textlength(text, font=font) <= 40
    assert font.size == _font(MIN_FONT).size


def test_overlay_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="needs 16 words"):
        token_overlay(_image(), ["a"] * 15, 4)
    with pytest.raises(ValueError, match="uint8"):
        token_overlay(_image().astype(float), ["a"] * 16, 4)
