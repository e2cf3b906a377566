"""FID and KID between two image sets, on features of a locally supplied network.

The public convention (Heusel et al. 2017 for FID, Binkowski et al. 2018 for KID) uses the 2048-d
pool features of the 2015-12-05 TensorFlow Inception-v3. No weights are downloaded here: pass the
TorchScript export of that network that StyleGAN2-ADA, StyleGAN3 and clean-fid use
(`inception-2015-12-05.pt`; it takes uint8 images (N, 3, H, W) in [0, 255] of any size and
returns the features when called with `return_features=True`) as `--inception-weights PATH`.
Any TorchScript file with that call signature works (e.g. a domain feature network), and every
result names the file it used, since numbers on different extractors are not comparable.

Both metrics are computed here in float64 from the feature matrices, and are pinned in the tests
against `torchmetrics` (FrechetInceptionDistance / KernelInceptionDistance given the same
extractor and the same uint8 images):

- FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with tr((S_a S_b)^(1/2)) taken as the
  sum of the square roots of the eigenvalues of S_a S_b (real parts; tiny negative ones from
  rounding clipped to 0) and S the unbiased (N - 1) covariance;
- KID = unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
  `subsets` random subsets of `subset_size` from each set (mean and std reported); with
  subset_size >= both set sizes, one subset holding every sample.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dialect.core.errors import DialectError

INCEPTION_HINT = (
    "FID/KID need Inception features and nothing is downloaded: pass --inception-weights PATH to the "
    "TorchScript FID Inception (inception-2015-12-05.pt, the file StyleGAN2-ADA, StyleGAN3 and clean-fid use)"
)


def load_feature_network(path: str | Path | None) -> torch.jit.ScriptModule:
    """The TorchScript feature network at `path` (eval mode, CPU); None or a bad file -> DialectError."""
    if not path:
        raise DialectError(INCEPTION_HINT)
    path = Path(path)
    if not path.is_file():
        raise DialectError(f"no feature network at {path}. {INCEPTION_HINT}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the public file is TorchScript
            return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as exc:
        raise DialectError(f"{path} is not a TorchScript feature network ({exc}). {INCEPTION_HINT}") from None


@torch.no_grad()
def extract_features(network, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 50) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> features (N, D) float64, through `network(x, return_features=True)`
    on uint8 tensors (N, 3, H, W) in [0, 255]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DialectError(
            f"feature extraction takes uint8 images (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    out = []
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(images[s : s + batch_size]).permute(0, 3, 1, 2).contiguous()
        out.append(network(x, return_features=True).double().reshape(len(x), -1))
    return torch.cat(out).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between feature sets a (N, D) and b (M, D), N, M >= 2."""
    if len(a) < 2 or len(b) < 2:
        raise DialectError(f"FID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(eig).sum())


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (mean, std over subsets) between feature sets a (N, D) and b (M, D)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise DialectError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    if subset_size >= max(len(a), len(b)):
        return _mmd2_unbiased(a, b), 0.0
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    vals = [
        _mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals))


def fid_kid(
    network,
    real: np.ndarray,
    fake: np.ndarray,
    network_name: str = "",
    subsets: int = 100,
    subset_size: int = 1000,
) -> dict:
    """FID and KID of `fake` against `real` (uint8 (N, H, W, 3) each), naming extractor and counts."""
    fr, ff = extract_features(network, real), extract_features(network, fake)
    kid, kid_std = kernel_inception_distance(fr, ff, subsets, subset_size)
    return {
        "fid": frechet_distance(fr, ff),
        "kid": kid,
        "kid_std": kid_std,
        "extractor": network_name,
        "feature_dim": int(fr.shape[1]),
        "n_real": len(fr),
        "n_fake": len(ff),
        "kid_subsets": subsets if subset_size < max(len(fr), len(ff)) else 1,
        "kid_subset_size": min(subset_size, len(fr), len(ff)),
    }
