"""Sample-quality metrics: Frechet distance (FID), KID, precision/recall,
density/coverage and per-sample realism, on pluggable features.

Always show ``extractor.name`` with a number: offline features give an "FD", not an FID.
"""
from course_lib.metrics.features import (
    FeatureExtractor,
    InceptionFeatures,
    RandomConvFeatures,
    default_extractor,
    extract_features,
    inception_available,
    inception_weights_path,
)
from course_lib.metrics.fid import compute_stats, feature_stats, fid, frechet_distance
from course_lib.metrics.kid import KIDResult, kid, mmd2_unbiased, polynomial_kernel
from course_lib.metrics.prdc import density_coverage, knn_radii, precision_recall, realism_score
from course_lib.metrics.reference import Reference

__all__ = [
    "FeatureExtractor", "InceptionFeatures", "RandomConvFeatures", "default_extractor",
    "extract_features", "inception_available", "inception_weights_path",
    "frechet_distance", "feature_stats", "compute_stats", "fid",
    "kid", "KIDResult", "mmd2_unbiased", "polynomial_kernel",
    "precision_recall", "density_coverage", "realism_score", "knn_radii", "Reference",
]
