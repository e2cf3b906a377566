"""Transforms and decoding: crops, mode conversion, determinism, and the reasons for bad files."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dialect.data.transforms import BadImage, ImageTransform, decode_image, to_rgb


def _stripes(width: int, height: int) -> Image.Image:
    """Left third red, middle third green, right third blue."""
    arr = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    arr[:, :third, 0] = 255
    arr[:, third : 2 * third, 1] = 255
    arr[:, 2 * third :, 2] = 255
    return Image.fromarray(arr)


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    arr = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.full((height, width, 1), 128.0),
        ],
        axis=2,
    )
    return Image.fromarray(arr.astype(np.uint8))


def test_center_crop_keeps_the_middle_square():
    out = ImageTransform(size=10, crop="center")(_stripes(30, 10))
    assert out.shape == (3, 10, 10)
    # the middle 10 columns are pure green: R = B = -1, G = +1
    assert torch.equal(out[1], torch.ones(10, 10))
    assert torch.equal(out[0], -torch.ones(10, 10)) and torch.equal(out[2], -torch.ones(10, 10))


def test_non_square_resized_to_size_and_range():
    for w, h in [(40, 20), (20, 40), (7, 9)]:
        out = ImageTransform(size=8)(_gradient(w, h))
        assert out.shape == (3, 8, 8) and out.dtype == torch.float32
        assert out.min() >= -1 and out.max() <= 1
    squash = ImageTransform(size=8, crop="none")(_stripes(30, 10))
    assert squash.shape == (3, 8, 8)
    assert squash[0, :, 0].mean() > 0.9 and squash[2, :, -1].mean() > 0.9  # red and blue both kept


def test_pixel_convention_uint8_to_minus_one_one():
    black = ImageTransform(size=4)(Image.new("RGB", (4, 4), (0, 0, 0)))
    white = ImageTransform(size=4)(Image.new("RGB", (4, 4), (255, 255, 255)))
    assert torch.equal(black, -torch.ones(3, 4, 4)) and torch.equal(white, torch.ones(3, 4, 4))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "1", "I;16", "I", "F"])
def test_modes_convert_to_rgb(mode):
    img = _gradient(12, 10).convert(mode)
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == (12, 10)
    assert ImageTransform(size=6)(img).shape == (3, 6, 6)


def test_transparent_pixels_become_white_and_grey_stays_grey():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(to_rgb(rgba)).min() == 255
    p = Image.new("P", (4, 4), 0)
    p.putpalette([10, 20, 30] * 256)
    p.info["transparency"] = 0
    assert np.asarray(to_rgb(p)).min() == 255
    grey = np.asarray(to_rgb(Image.new("L", (4, 4), 77)))
    assert (grey == 77).all()
    wide = np.asarray(to_rgb(Image.fromarray(np.full((4, 4), 65535, np.uint16))))
    assert (wide == 255).all()


def test_random_crop_and_flip_are_deterministic_per_index_and_seed():
    img = _gradient(48, 16)
    t = ImageTransform(size=16, crop="random", flip=True, seed=3)
    assert torch.equal(t(img, 5), t(img, 5))
    assert torch.equal(t(img, 5), ImageTransform(size=16, crop="random", flip=True, seed=3)(img, 5))
    outs = {t(img, i).sum().item() for i in range(12)}
    assert len(outs) > 3  # different indices get different crops/flips
    other_seed = ImageTransform(size=16, crop="random", flip=True, seed=4)
    assert any(not torch.equal(t(img, i), other_seed(img, i)) for i in range(6))


def test_bad_crop_name():
    with pytest.raises(ValueError, match="crop"):
        ImageTransform(crop="middle")


def _jpeg_bytes(size=32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90
    )
    return buf.getvalue()


def test_decode_reasons(tmp_path):
    data = _jpeg_bytes()
    assert decode_image(data).size == (32, 32)
    cases = {
        "truncated image": data[: len(data) // 2],
        "not an image": b"hello, I am text pretending to be a png\n",
    }
    for reason, blob in cases.items():
        with pytest.raises(BadImage) as info:
            decode_image(blob)
        assert info.value.reason == reason
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, "PNG")
    with pytest.raises(BadImage, match=r"too small \(1x1\)"):
        decode_image(tiny.getvalue())
    with pytest.raises(BadImage, match="missing file"):
        decode_image(tmp_path / "nope.png")


def test_draft_keeps_at_least_the_requested_size():
    img = decode_image(_jpeg_bytes(256), draft=40)
    assert min(img.size) >= 40 and img.size[0] < 256
