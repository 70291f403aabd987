"""StyleGAN2-ADA's adaptive augmentation probability (Karras et al., NeurIPS 2020).

ADA does not fix how often it augments. It watches the overfitting heuristic

    r_t = E[sign(D(x_train))]   (= 2 * acc_train - 1 when no logit is exactly 0)

over the real batches D trains on, and every few minibatches nudges the probability p of
augmenting an image: up when r_t is above its target (0.6: D is too sure about its
training images), down when below, by a fixed amount, so that p could go from 0 to 1 in
``ramp_images`` images (500k in the paper). p stays in [0, 1].

    p = 0.0
    for r_t in r_ts:                      # one value per adjustment
        p = ada_update(p, r_t, images=4 * 64)
"""
from __future__ import annotations

import math

TARGET = 0.6
RAMP_IMAGES = 500_000


def ada_update(p: float, r_t: float, images: int, target: float = TARGET,
               ramp_images: int = RAMP_IMAGES) -> float:
    """The augmentation probability after one adjustment.

    p: the current probability in [0, 1]; r_t: the heuristic over the ``images`` real
    images seen since the last adjustment, in [-1, 1]. Returns p moved by
    ``sign(r_t - target) * images / ramp_images`` and clipped to [0, 1] (r_t equal to the
    target leaves p unchanged).
    """
    if not (math.isfinite(p) and math.isfinite(r_t)):
        raise ValueError(f"p and r_t must be finite numbers, got p={p}, r_t={r_t}")
    if images < 0 or ramp_images <= 0:
        raise ValueError(f"images must be >= 0 and ramp_images > 0, got {images} and {ramp_images}")
    step = images / ramp_images
    sign = (r_t > target) - (r_t < target)
    return min(1.0, max(0.0, p + sign * step))


def ada_schedule(r_ts, images: int, p0: float = 0.0, target: float = TARGET,
                 ramp_images: int = RAMP_IMAGES, update=ada_update) -> list[float]:
    """p after each adjustment driven by the sequence ``r_ts`` (``update`` may be a
    student's own :func:`ada_update`)."""
    p, out = p0, []
    for r_t in r_ts:
        p = float(update(p, float(r_t), images, target, ramp_images))
        out.append(p)
    return out
