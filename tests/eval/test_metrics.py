import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dialect.core.errors import DialectError
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.eval.metrics import gaussian_window, psnr, ssim, to_unit
from dialect.world import WorldConfig


def _pairs():
    """(name, a, b) in [0, 1]: random noise, and ShapeWorld scenes against degraded copies."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 40, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    yield "random", a, b
    ds = ShapeWorldDataset(WorldConfig(size=64), seed=3, length=4)
    clean = to_unit(torch.stack([ds[i]["image"] for i in range(4)]))
    blurred = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    noisy = (blurred + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    yield "shapeworld", clean, noisy
    yield "shapeworld-shifted", clean, torch.roll(clean, shifts=2, dims=-1)


def _ref_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=0)  # fmt: skip


@pytest.mark.parametrize("name,a,b", list(_pairs()), ids=lambda v: v if isinstance(v, str) else "")
def test_psnr_and_ssim_match_scikit_image(name, a, b):
    ours_p, ours_s = psnr(a, b), ssim(a, b)
    assert ours_p.shape == ours_s.shape == (a.shape[0],)
    for i in range(a.shape[0]):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        assert abs(float(ours_p[i]) - peak_signal_noise_ratio(x, y, data_range=1)) < 1e-6
        assert abs(float(ours_s[i]) - _ref_ssim(x, y)) < 1e-6


def test_identical_images_and_known_values():
    a = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(a, a)).all()
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    b = a.clone()
    b[:, :, 0, 0] += 0.5  # MSE = 3 * 0.25 / (3 * 16 * 16) in both images
    assert torch.allclose(psnr(a, b), torch.full((2,), 10 * np.log10(256 / 0.25), dtype=torch.float64))


def test_window_is_scipys_gaussian():
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(11)
    impulse[5] = 1.0
    ref = gaussian_filter1d(impulse, sigma=1.5, truncate=3.5, mode="constant")
    assert np.allclose(gaussian_window().numpy(), ref, atol=1e-12)


def test_to_unit_and_bad_input():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    assert torch.equal(to_unit(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(DialectError, match="shape"):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 8))
    with pytest.raises(DialectError, match="11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
