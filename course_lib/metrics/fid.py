"""Frechet distance between Gaussians fitted to features (FID when the features are
pytorch-fid's Inception pool3; otherwise a labelled "FD" on other features).

FID is biased at small sample sizes: compare only numbers computed with the same n and
the same extractor, and prefer KID below a few thousand samples.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from course_lib.metrics.features import FeatureExtractor, default_extractor, extract_features


def single_threaded_blas():
    """A context in which numpy's BLAS/LAPACK use one thread.

    On a small shared CPU (2 cores, PyTorch busy too) OpenBLAS threads that wait for
    each other made a 512x512 ``eigh`` take seconds instead of 0.05 s; one thread is
    never much slower at these sizes.
    """
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    mu: [D] means; sigma: [D, D] covariances (numpy arrays). Returns a float >= 0.

    ``Tr (sigma1 sigma2)^(1/2)`` is the sum of the square roots of the eigenvalues of
    ``sigma1 sigma2``, which are those of the symmetric PSD matrix
    ``s sigma2 s`` with ``s = sigma1^(1/2)``. Two symmetric eigendecompositions are
    stable even when the covariances are singular (fewer samples than dimensions),
    where a general matrix square root can return complex or non-finite values.
    Agrees with ``pytorch_fid.fid_score.calculate_frechet_distance`` to ~1e-7 relative.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    with single_threaded_blas():
        evals, evecs = np.linalg.eigh(sigma1)
        sqrt_sigma1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
        middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
        middle = (middle + middle.T) / 2      # symmetric up to rounding; make it exact
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    return max(float(value), 0.0)              # rounding can give -1e-12 for equal inputs


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of features ``[N, D]`` (N >= 2)."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need features [N, D] with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def compute_stats(images: torch.Tensor, extractor: FeatureExtractor | None = None,
                  batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the extractor's features of images ``[N, 3, H, W]`` in [-1, 1]."""
    return feature_stats(extract_features(images, extractor, batch_size))


def fid(real_images: torch.Tensor, fake_images: torch.Tensor,
        extractor: FeatureExtractor | None = None, batch_size: int = 100) -> float:
    """Frechet distance between real and fake images (``[N, 3, H, W]`` in [-1, 1]).

    With ``extractor=None`` this is ``default_extractor()``: real FID when the Inception
    weights are present, else the offline random-conv distance. Show ``extractor.name``
    next to the number.
    """
    extractor = extractor or default_extractor()
    return frechet_distance(*compute_stats(real_images, extractor, batch_size),
                            *compute_stats(fake_images, extractor, batch_size))
