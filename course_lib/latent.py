"""Latent-space tools: walking between two latents, and asking "did the model copy?".

- :func:`slerp` interpolates along the great circle between two latents. For a Gaussian
  latent the straight line (lerp) passes through the low-norm middle of the ball, where
  the generator has seen almost no latents in training; slerp keeps the norm about where
  the samples live (White, "Sampling Generative Networks", 2016).
- :func:`nearest_images` finds each generated image's nearest training images, in pixel
  space or in a feature space. With 100 training images a generator can simply memorise
  them; if every sample has a training image at a tiny distance, it is copying. (FID
  against the training set, which the low-shot papers use, does not see copying: a
  perfect copy machine scores perfectly.)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

# Below this sin(angle) the two latents are (anti)parallel and slerp's weights divide
# 0 by 0: fall back to the straight line, which is what slerp tends to there anyway.
PARALLEL_EPS = 1e-6


def slerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Spherical linear interpolation from ``z0`` (t = 0) to ``z1`` (t = 1).

    z0, z1: [..., D] (same shape); t: a float, or a tensor broadcastable to the batch
    shape ``z0.shape[:-1]`` (e.g. [N] for z0 [N, D], or [T] for z0 [D] to get T frames).
    Returns [..., D]::

        omega = angle between z0 and z1 (from their unit vectors)
        slerp = sin((1 - t) omega) / sin(omega) * z0 + sin(t omega) / sin(omega) * z1

    For unit vectors at 90 degrees the weights are cos(t pi/2) and sin(t pi/2), and the
    result stays on the unit circle. Nearly parallel (or opposite) vectors, where
    sin(omega) ~ 0, fall back to lerp ``(1 - t) z0 + t z1`` instead of producing NaN.
    The inputs are not modified.
    """
    z0, z1 = torch.as_tensor(z0), torch.as_tensor(z1)
    if z0.shape != z1.shape:
        raise ValueError(f"slerp: z0 and z1 must have the same shape, got {tuple(z0.shape)} "
                         f"and {tuple(z1.shape)}")
    dtype = z0.dtype if z0.is_floating_point() else torch.get_default_dtype()
    a, b = z0.double(), z1.double()
    t = torch.as_tensor(t, dtype=torch.float64)
    unit_a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    unit_b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    omega = torch.acos((unit_a * unit_b).sum(-1).clamp(-1.0, 1.0))   # [...]
    sin_omega = torch.sin(omega)
    parallel = sin_omega.abs() < PARALLEL_EPS
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    w0 = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / safe)
    w1 = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return (w0[..., None] * a + w1[..., None] * b).to(dtype)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """The straight line ``(1 - t) z0 + t z1``, with the same shapes as :func:`slerp`."""
    z0, z1 = torch.as_tensor(z0), torch.as_tensor(z1)
    t = torch.as_tensor(t, dtype=z0.dtype)
    return (1 - t)[..., None] * z0 + t[..., None] * z1


def latent_for_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The standard-normal latent [z_dim] that ``seed`` names (the explorer's sliders)."""
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


class Neighbours(NamedTuple):
    """Result of :func:`nearest_images`: ``indices`` long [Q, k] into the training set
    and ``distances`` float [Q, k], each row sorted from nearest to farthest."""
    indices: torch.Tensor
    distances: torch.Tensor


def pairwise_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [Q, N] between rows of a [Q, D] and b [N, D], in float64.

    Computed as the norm of each difference (not the |a|^2 + |b|^2 - 2ab shortcut, which
    loses the small distances that matter here to rounding).
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def image_features(images: torch.Tensor, extractor=None) -> torch.Tensor:
    """Features [N, F] (float64) of images [N, 3, H, W] in [-1, 1] (default: the
    course's default extractor, see :mod:`course_lib.metrics`)."""
    from course_lib.metrics import default_extractor, extract_features

    extractor = extractor or default_extractor()
    return torch.from_numpy(np.asarray(extract_features(images, extractor), np.float64))


def nearest_images(queries: torch.Tensor, train_images: torch.Tensor, k: int = 3,
                   space: str = "pixel", extractor=None,
                   train_features: torch.Tensor | None = None) -> Neighbours:
    """The ``k`` training images nearest to each query, by Euclidean distance.

    queries: [Q, C, H, W] and train_images: [N, C, H, W], both in [-1, 1].
    space: "pixel" (distance between the raw pixel vectors) or "feature" (between the
        ``extractor``'s features; default extractor if None). ``train_features`` [N, F]
        may be passed to skip recomputing the training set's features.
    Returns :class:`Neighbours` (indices long [Q, k], distances float64 [Q, k]), nearest
    first; equal distances keep the lower training index first.
    """
    if space not in ("pixel", "feature"):
        raise ValueError(f"space must be 'pixel' or 'feature', got {space!r}")
    queries, train_images = torch.as_tensor(queries), torch.as_tensor(train_images)
    if queries.dim() != 4 or train_images.dim() != 4:
        raise ValueError(f"queries and train_images must be image batches [N, C, H, W], got "
                         f"{tuple(queries.shape)} and {tuple(train_images.shape)}")
    n = len(train_images)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of training images ({n}), got {k}")
    if space == "pixel":
        if queries.shape[1:] != train_images.shape[1:]:
            raise ValueError(f"pixel distances need images of one shape: queries are "
                             f"{tuple(queries.shape[1:])}, training images "
                             f"{tuple(train_images.shape[1:])}")
        a, b = queries.flatten(1), train_images.flatten(1)
    else:
        a = image_features(queries, extractor)
        b = train_features if train_features is not None else image_features(train_images, extractor)
    d = pairwise_l2(a, b)
    distances, indices = torch.sort(d, dim=1, stable=True)
    return Neighbours(indices[:, :k], distances[:, :k])


def typical_neighbour_distance(train_images: torch.Tensor, space: str = "pixel", extractor=None,
                               train_features: torch.Tensor | None = None) -> float:
    """Median distance from a training image to its nearest *other* training image.

    The yardstick for :func:`nearest_images`: a generated image much closer than this to
    a training image is nearer to it than the training images are to each other, i.e.
    (nearly) a copy.
    """
    if space == "pixel":
        x = torch.as_tensor(train_images).flatten(1)
    else:
        x = train_features if train_features is not None else image_features(train_images, extractor)
    d = pairwise_l2(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(dim=1).values.median())


def nearest_distance_ratio(samples: torch.Tensor, train_images: torch.Tensor,
                           typical: float | None = None) -> torch.Tensor:
    """Per sample: pixel distance to its nearest training image divided by
    :func:`typical_neighbour_distance`. Well below 1 (say < 0.5): a near copy.
    samples [n, C, H, W], train_images [N, C, H, W] -> float64 [n]."""
    typical = typical if typical is not None else typical_neighbour_distance(train_images)
    _, dist = nearest_images(samples, train_images, k=1)
    return dist[:, 0] / typical
