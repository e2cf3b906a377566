"""Confidence intervals for benchmark numbers: Wilson for proportions, bootstrap for means."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a proportion hits / n; (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values`."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def proportion(hits: int, n: int) -> dict:
    """{"value", "n", "ci95": [lo, hi]} of a proportion."""
    lo, hi = wilson(hits, n)
    return {"value": hits / n if n else 0.0, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}
