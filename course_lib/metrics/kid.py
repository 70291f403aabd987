"""Kernel Inception Distance (Binkowski et al., 2018): an unbiased MMD^2 between feature
sets with the polynomial kernel ``k(x, y) = (x.y / D + 1)^3``.

Unlike FID it has no bias at small n, so it is the distance to use with a few hundred
samples; it is averaged over random subsets, whose spread gives an error bar.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from course_lib.metrics.fid import single_threaded_blas


class KIDResult(NamedTuple):
    mean: float   # mean MMD^2 over the subsets (can be slightly negative: it is unbiased)
    std: float    # standard deviation over the subsets


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a b^T / D + 1)^3`` for a: [n, D], b: [m, D] -> [n, m]."""
    return (a @ b.T / a.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples x: [m, D] and y: [m, D] (m >= 2).

    The within-set averages leave out the diagonal k(x_i, x_i), the source of the
    biased estimate's offset.
    """
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off_diag = m * (m - 1)
    return float((k_xx.sum() - np.trace(k_xx)) / off_diag
                 + (k_yy.sum() - np.trace(k_yy)) / off_diag
                 - 2 * k_xy.mean())


def kid(real_feats, fake_feats, subset_size: int | None = None, n_subsets: int = 100,
        seed: int = 0) -> KIDResult:
    """KID between features ``[N_real, D]`` and ``[N_fake, D]``: ``(mean, std)``.

    Each of ``n_subsets`` rounds draws ``subset_size`` reals and as many fakes without
    replacement and computes the unbiased MMD^2. ``subset_size`` defaults to
    ``min(N_real, N_fake, 1000)``, so small sample sets work; ``seed`` fixes the subsets.
    """
    real = np.asarray(real_feats, np.float64)
    fake = np.asarray(fake_feats, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need features [N, D] with the same D, got {real.shape} and {fake.shape}")
    largest = min(len(real), len(fake))
    m = min(largest, 1000) if subset_size is None else subset_size
    if not 2 <= m <= largest:
        raise ValueError(f"subset_size must be between 2 and min(N_real, N_fake) = {largest}, "
                         f"got {m}")
    rng = np.random.default_rng(seed)
    with single_threaded_blas():
        values = [mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                                fake[rng.choice(len(fake), m, replace=False)])
                  for _ in range(n_subsets)]
    return KIDResult(float(np.mean(values)), float(np.std(values)))
