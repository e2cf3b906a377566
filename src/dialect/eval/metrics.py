"""Per-image reconstruction metrics: PSNR and SSIM on [0, 1] images (DESIGN.md, "Metrics").

Both take two float tensors (B, 3, H, W) (any channel count works) with values in [0, 1], data
range 1, and return a (B,) float64 tensor, one value per image; a benchmark reports the mean over
its images. Model outputs in [-1, 1] go through :func:`to_unit` first.

- PSNR = 10 log10(1 / MSE), MSE = mean over channels and pixels of (a - b)^2 (inf for identical
  images). Pinned to `skimage.metrics.peak_signal_noise_ratio(a, b, data_range=1)`.
- SSIM (Wang, Bovik, Sheikh & Simoncelli 2004): per channel, local statistics under an 11x11
  Gaussian window (sigma 1.5, scipy's truncate 3.5, normalised weights):
      SSIM = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
  C1 = (0.01 * 1)^2, C2 = (0.03 * 1)^2, population (not sample) variances; the map is averaged
  over the pixels whose window lies inside the image (5 pixels cropped at each border) and then
  over channels. Images need H, W >= 11. Pinned to `skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)`.
Computed in float64 (the reference's precision), on the inputs' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dialect.core.errors import DialectError

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11  # 2 * int(3.5 * sigma + 0.5) + 1, scipy's gaussian_filter with truncate=3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Model pixels in [-1, 1] -> [0, 1] (clamped), as the metrics expect."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 4 or a.shape != b.shape:
        raise DialectError(
            "metrics expect two image batches of one shape (B, C, H, W), "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) x 2 in [0, 1] -> (B,) PSNR in dB, data range 1 (inf where the images match)."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size,) float64 normalised Gaussian weights centred on the middle tap."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _local_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, valid positions only: (N, 1, H, W) -> (N, 1, H-10, W-10)."""
    k = w.numel()
    x = F.conv2d(x, w.view(1, 1, k, 1))
    return F.conv2d(x, w.view(1, 1, 1, k))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) x 2 in [0, 1] -> (B,) mean SSIM (see the module docstring); H, W >= 11."""
    _check_pair(a, b)
    B, C, H, W = a.shape
    if min(H, W) < SSIM_WINDOW:
        raise DialectError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {H}x{W}")
    x = a.double().reshape(B * C, 1, H, W)
    y = b.double().reshape(B * C, 1, H, W)
    w = gaussian_window().to(x.device)
    mu_x, mu_y = _local_mean(x, w), _local_mean(y, w)
    var_x = _local_mean(x * x, w) - mu_x**2
    var_y = _local_mean(y * y, w) - mu_y**2
    cov = _local_mean(x * y, w) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).reshape(B, -1).mean(1)
