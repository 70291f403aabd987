"""A set of real images that generated images are compared with, as feature statistics.

    ref = Reference.of(test_images)              # features once, in batches
    ref.distance(fakes)                          # Frechet distance to the reals (FD, or FID)
    ref = Reference.of(train_images, keep_features=True)
    ref.kid(fakes).mean                          # KID needs the real features themselves

Every number is labelled with ``ref.label``, the extractor's name ("FD, random-conv
features (offline, not FID)" unless pytorch-fid's Inception weights are present).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib.metrics.features import FeatureExtractor, default_extractor, extract_features
from course_lib.metrics.fid import feature_stats, frechet_distance
from course_lib.metrics.kid import KIDResult, kid


@dataclass
class Reference:
    """Feature statistics of ``n`` real images: mean ``mu`` [D], covariance ``sigma``
    [D, D], and (with ``keep_features``) the features ``feats`` [n, D] for KID."""
    extractor: FeatureExtractor
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    feats: np.ndarray | None = None

    @classmethod
    def of(cls, images: torch.Tensor, extractor: FeatureExtractor | None = None,
           keep_features: bool = False) -> "Reference":
        """The reference of ``images`` [N, 3, H, W] in [-1, 1] (N >= 2)."""
        extractor = extractor or default_extractor()
        feats = extract_features(images, extractor)
        mu, sigma = feature_stats(feats)
        return cls(extractor, mu, sigma, len(feats), feats if keep_features else None)

    @property
    def label(self) -> str:
        return self.extractor.name

    def features(self, images: torch.Tensor) -> np.ndarray:
        return extract_features(images, self.extractor)

    def distance(self, images: torch.Tensor) -> float:
        """Fréchet distance between ``images`` [N, 3, H, W] and the reference."""
        return float(frechet_distance(*feature_stats(self.features(images)), self.mu, self.sigma))

    def kid(self, images: torch.Tensor, seed: int = 0, n_subsets: int = 50) -> KIDResult:
        """KID (mean, std over subsets) between ``images`` and the reference images."""
        if self.feats is None:
            raise ValueError("this Reference kept no features: make it with "
                             "Reference.of(images, keep_features=True) to compute KID")
        return kid(self.feats, self.features(images), n_subsets=n_subsets, seed=seed)
