"""Quality vs diversity from k-nearest-neighbour balls in feature space.

Every real point x_i gets a ball of radius NND_k(x_i), the distance to its k-th nearest
*other* real point; together the balls estimate the manifold of real data.

- precision (Kynkaenniemi et al. 2019): fraction of fakes inside some real ball
  (are samples realistic?); recall: fraction of reals inside some *fake* ball, the fake
  balls built the same way (is the real data covered?).
- density (Naeem et al. 2020): ``1/(kM) sum_j sum_i 1[y_j in B(x_i, NND_k(x_i))]``,
  how many real balls a fake sits in, on average, over k (can exceed 1);
  coverage: fraction of real balls that contain at least one fake.
- realism score of a fake y: ``max_i NND_k(x_i) / ||y - x_i||`` (>= 1 means inside a ball).

Balls are closed (distance <= radius), as in Kynkaenniemi et al.'s code; the ``prdc``
package (Naeem et al.'s code) uses <, so the two differ only for points exactly on a
boundary, which hand-made integer point sets can have and real features do not:
``tests/test_prdc.py`` checks agreement with ``prdc==0.2`` to 1e-9 on random features.
Distances are exact Euclidean distances, computed in chunks so that memory stays small.
(Kynkaenniemi et al.'s realism score also drops the real balls with the largest radii,
half of them, to be robust to outliers; ``realism_score`` keeps them all, as above.)
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

_CHUNK = 1024  # rows of the distance matrix held in memory at once


def _as_feats(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}")
    return x


def knn_radii(feats, k: int) -> np.ndarray:
    """NND_k: distance from each point to its k-th nearest other point. [N, D] -> [N]."""
    feats = _as_feats(feats)
    if not 1 <= k < len(feats):
        raise ValueError(f"k must be between 1 and N-1 = {len(feats) - 1}, got {k}")
    radii = []
    for start in range(0, len(feats), _CHUNK):
        d = cdist(feats[start:start + _CHUNK], feats)
        # Column k of the sorted row: column 0 is the point itself (distance 0).
        radii.append(np.partition(d, k, axis=1)[:, k])
    return np.concatenate(radii)


def _ball_counts(centres, radii, queries) -> np.ndarray:
    """For each query [M, D]: how many balls B(centres[i], radii[i]) contain it -> [M]."""
    counts = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _CHUNK):
        d = cdist(queries[start:start + _CHUNK], centres)          # [chunk, N]
        counts[start:start + _CHUNK] = (d <= radii[None, :]).sum(axis=1)
    return counts


def _covered(centres, radii, queries) -> np.ndarray:
    """For each ball: does it contain at least one query? -> bool [N]."""
    nearest = np.full(len(centres), np.inf)
    for start in range(0, len(queries), _CHUNK):
        d = cdist(centres, queries[start:start + _CHUNK])           # [N, chunk]
        nearest = np.minimum(nearest, d.min(axis=1))
    return nearest <= radii


def precision_recall(real_feats, fake_feats, k: int = 3) -> tuple[float, float]:
    """(precision, recall) in [0, 1] of fakes ``[M, D]`` against reals ``[N, D]``."""
    real, fake = _as_feats(real_feats), _as_feats(fake_feats)
    precision = (_ball_counts(real, knn_radii(real, k), fake) > 0).mean()
    recall = (_ball_counts(fake, knn_radii(fake, k), real) > 0).mean()
    return float(precision), float(recall)


def density_coverage(real_feats, fake_feats, k: int = 5) -> tuple[float, float]:
    """(density >= 0, coverage in [0, 1]) of fakes ``[M, D]`` against reals ``[N, D]``."""
    real, fake = _as_feats(real_feats), _as_feats(fake_feats)
    radii = knn_radii(real, k)
    density = _ball_counts(real, radii, fake).sum() / (k * len(fake))
    coverage = _covered(real, radii, fake).mean()
    return float(density), float(coverage)


def realism_score(real_feats, fake_feats, k: int = 3) -> np.ndarray:
    """Per-fake realism ``max_i NND_k(x_i) / ||y - x_i||`` -> [M] (inf on a real point).

    Above 1: inside some real ball. Useful to rank samples, e.g. to find the ones that
    break after compression.
    """
    real, fake = _as_feats(real_feats), _as_feats(fake_feats)
    radii = knn_radii(real, k)
    scores = []
    for start in range(0, len(fake), _CHUNK):
        d = cdist(fake[start:start + _CHUNK], real)
        with np.errstate(divide="ignore"):
            scores.append((radii[None, :] / d).max(axis=1))
    return np.concatenate(scores)
