"""Checks for ``09_post_training_compression``: quantization, pruning, precision/recall.

=======  ======================  =========================================================
id       function                what is checked
=======  ======================  =========================================================
ex9.1    ``linear_quantize``     hand-made values with and without ``clip`` (clamping,
                                 round to nearest, q_max = 2**(bits-1) - 1); on random
                                 tensors for 2..8 bits: at most 2**bits - 1 levels, error at
                                 most half a step inside the range, equal to course_lib's
ex9.2    ``magnitude_prune``     hand-made values; exactly round(sparsity * numel) zeros, the
                                 smallest |w| (not the smallest w, not the largest), the
                                 survivors unchanged, any shape
ex9.3    ``precision_recall``    hand-made 1-D point sets (real balls for precision, *fake*
                                 balls for recall, the k-th neighbour not counting the point
                                 itself, closed balls); random features against course_lib
=======  ======================  =========================================================

Every function must leave its inputs unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

from course_lib.compress.prune import magnitude_prune as reference_prune
from course_lib.compress.quantize import linear_quantize as reference_quantize
from course_lib.grade.api import expect, exercise, type_name
from course_lib.metrics.prdc import knn_radii
from course_lib.metrics.prdc import precision_recall as reference_pr

NOTEBOOK = "09_post_training_compression"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rounded(t: torch.Tensor, digits: int = 4) -> list:
    return [round(float(v), digits) for v in t.flatten().tolist()]


# --- ex9.1 linear_quantize ----------------------------------------------------------------------

def _like_w(run, name: str, w: torch.Tensor, dtype_hint: str, in_place_hint: str) -> torch.Tensor:
    """The returned tensor, checked: a tensor of w's shape and dtype, w left unchanged."""
    out = run.value
    expect(isinstance(out, torch.Tensor),
           f"{name} must return a torch.Tensor, got {type_name(out)} (did you forget `return`?)")
    expect(tuple(out.shape) == tuple(w.shape),
           f"{name} must keep w's shape {tuple(w.shape)}, got {tuple(out.shape)}")
    expect(out.dtype == w.dtype, f"{name} must return w's dtype {w.dtype}{dtype_hint}, got {out.dtype}")
    expect(isinstance(run.args[0], torch.Tensor) and torch.equal(run.args[0], w),
           f"{name} changed w in place ({in_place_hint}): the caller's weights were modified; "
           f"compute a new tensor instead")
    return out.detach()


def _quantize(student, w: torch.Tensor, bits: int, clip=None) -> torch.Tensor:
    run = student.run([w, bits], {} if clip is None else {"clip": clip})
    out = _like_w(run, "linear_quantize", w, " (the de-quantized values, integer times scale)",
                  "e.g. w /= scale or w.round_()")
    expect(bool(torch.isfinite(out).all()),
           f"linear_quantize({bits} bits) returned NaN or inf"
           + (" for an all-zero tensor: max |w| is 0 there, so the scale is 0; return zeros in "
              "that case" if not w.abs().max() else ""))
    return out


@exercise("ex9.1", notebook=NOTEBOOK, function="linear_quantize", points=2, timeout=60,
          reference=("course_lib.compress.quantize.linear_quantize",
                     "course_lib.compress.quantize.fake_quantize",
                     "course_lib.compress.quantize.quantization_params"))
def check_linear_quantize(student):
    # 3 bits: q_max = 3. max|w| = 1.5, so the step is 0.5 and w / step is
    # [-3, -1.6, -0.2, 0.4, 0.9, 3] -> rounded [-3, -2, 0, 0, 1, 3].
    w = torch.tensor([-1.5, -0.8, -0.1, 0.2, 0.45, 1.5])
    out = _quantize(student, w, 3)
    want = torch.tensor([-1.5, -1.0, 0.0, 0.0, 0.5, 1.5])
    hint = ""
    if torch.allclose(out, torch.tensor([-1.5, -0.5, 0.0, 0.0, 0.0, 1.5]), atol=1e-5):
        hint = " — that is rounding towards zero (int(), trunc or floor of |x|): round to the nearest"
    elif torch.allclose(out, torch.tensor([-3.0, -2.0, 0.0, 0.0, 1.0, 3.0]), atol=1e-5):
        hint = " — those are the integers q: multiply them back by the scale (de-quantize)"
    elif torch.allclose(out, torch.tensor([-1.5, -0.75, 0.0, 0.375, 0.375, 1.5]), atol=1e-5):
        hint = (" — that is a step of max|w| / 4: q_max is 2**(bits-1) - 1 = 3 (the integers "
                "-3..3), not 2**(bits-1)")
    elif not torch.allclose(out.abs().max(), torch.tensor(1.5)):
        hint = (" — the largest |w| must map to q_max = 2**(bits-1) - 1 = 3 exactly, so "
                "scale = max|w| / (2**(bits-1) - 1)")
    expect(torch.allclose(out, want, atol=1e-5),
           f"3 bits, w = {_rounded(w)}: the step is max|w| / 3 = 0.5, so the result must be "
           f"{want.tolist()}, got {_rounded(out)}{hint}")

    # The same w clipped to [-1, 1]: step 1/3, w / step = [-4.5, -2.4, -0.3, 0.6, 1.35, 4.5]
    # -> rounded and clamped to -3..3: [-3, -2, 0, 1, 1, 3].
    out = _quantize(student, w, 3, clip=1.0)
    want = torch.tensor([-1.0, -2 / 3, 0.0, 1 / 3, 1 / 3, 1.0])
    hint = ""
    if out.abs().max() > 1.0 + 1e-5:
        hint = (f" — values beyond the clip range came out as {_rounded(out[out.abs() > 1 + 1e-5])}: "
                f"clamp the integers to -q_max..q_max (torch.clamp) so that they stay in [-clip, clip]")
    expect(torch.allclose(out, want, atol=1e-5),
           f"3 bits, clip = 1, w = {_rounded(w)}: the step is clip / 3, and -1.5 and 1.5 lie "
           f"outside the range, so the result must be {_rounded(want)}, got {_rounded(out)}{hint}")

    # An all-zero tensor stays zero.
    out = _quantize(student, torch.zeros(2, 3), 4)
    expect(not out.any(), f"an all-zero tensor must stay zero, got {_rounded(out)}")

    # Random weights, every bit width: levels, error bound, the reference.
    g = _gen(9)
    for bits in range(2, 9):
        w = torch.randn(8, 4, 3, 3, generator=g) * 0.1
        for clip in (None, float(w.abs().max()) / 2):
            out = _quantize(student, w, bits, clip)
            q_max = 2 ** (bits - 1) - 1
            rng = float(w.abs().max()) if clip is None else clip
            step = rng / q_max
            levels = len(torch.unique(out))
            with_clip = "" if clip is None else f", clip = {clip:.4g}"
            expect(levels <= 2 ** bits - 1,
                   f"{bits} bits{with_clip}: at most 2**bits - 1 = {2 ** bits - 1} distinct values "
                   f"(integers -{q_max}..{q_max}), got {levels}: clamp to -q_max..q_max with "
                   f"q_max = 2**(bits-1) - 1")
            expect(float(out.abs().max()) <= rng * (1 + 1e-5),
                   f"{bits} bits{with_clip}: every value must lie in [-{rng:.4g}, {rng:.4g}], got "
                   f"{float(out.abs().max()):.4g}")
            inside = w.abs() <= rng
            err = float((out - w)[inside].abs().max())
            expect(err <= step / 2 * (1 + 1e-4),
                   f"{bits} bits{with_clip}: inside the range every value must be within half a "
                   f"step ({step / 2:.4g}) of w, but one is {err:.4g} away (round to the nearest "
                   f"integer, not down)")
            want = reference_quantize(w, bits, clip=clip)
            worst = float((out - want).abs().max())
            expect(worst <= 1e-6 + step * 1e-4,
                   f"{bits} bits{with_clip}: differs from course_lib's linear_quantize by up to "
                   f"{worst:.3g}")


# --- ex9.2 magnitude_prune -----------------------------------------------------------------------

def _prune(student, w: torch.Tensor, sparsity: float) -> torch.Tensor:
    return _like_w(student.run([w, sparsity]), "magnitude_prune", w, "",
                   "e.g. w[mask] = 0; use w * mask or torch.where")


@exercise("ex9.2", notebook=NOTEBOOK, function="magnitude_prune", points=2, timeout=60,
          reference="course_lib.compress.prune.magnitude_prune")
def check_magnitude_prune(student):
    # Half of six weights: the three smallest |w| are 0.1, -0.2 and 0.5.
    w = torch.tensor([0.5, -3.0, 0.1, 2.0, -0.2, 1.0])
    out = _prune(student, w, 0.5)
    want = torch.tensor([0.0, -3.0, 0.0, 2.0, 0.0, 1.0])
    hint = ""
    if torch.equal(out, torch.tensor([0.5, 0.0, 0.1, 0.0, -0.2, 0.0])):
        hint = " — you kept the smallest weights and zeroed the largest: prune the small ones"
    elif torch.equal(out, torch.tensor([0.5, 0.0, 0.0, 2.0, 0.0, 1.0])):
        hint = (" — you zeroed the smallest *values* (-3 is the most negative, but its magnitude "
                "is the largest): rank by |w|")
    expect(torch.equal(out, want),
           f"sparsity 0.5 on w = {_rounded(w)}: zero the 3 weights of smallest |w| (0.1, -0.2, "
           f"0.5) and keep the rest exactly: {want.tolist()}, got {_rounded(out)}{hint}")

    # Random weights (no ties), several shapes and sparsities.
    g = _gen(3)
    for shape in ((50,), (16, 8, 3, 3), (7, 13)):
        w = torch.randn(*shape, generator=g)
        for sparsity in (0.0, 0.3, 0.75, 0.9, 1.0):
            out = _prune(student, w, sparsity)
            n_zero = round(sparsity * w.numel())
            zeros = int((out == 0).sum())
            expect(zeros == n_zero,
                   f"sparsity {sparsity} of a {tuple(shape)} tensor ({w.numel()} weights): exactly "
                   f"round(sparsity * numel) = {n_zero} must be zero, got {zeros}")
            kept = out != 0
            expect(torch.equal(out[kept], w[kept]),
                   f"sparsity {sparsity}, shape {tuple(shape)}: the weights you keep must keep their "
                   f"values (multiply by a 0/1 mask; do not rescale them)")
            if 0 < n_zero < w.numel():
                expect(float(w[~kept].abs().max()) <= float(w[kept].abs().min()),
                       f"sparsity {sparsity}, shape {tuple(shape)}: a zeroed weight has |w| = "
                       f"{float(w[~kept].abs().max()):.4g}, larger than a kept one "
                       f"({float(w[kept].abs().min()):.4g}): zero the smallest magnitudes")
            expect(torch.equal(out, reference_prune(w, sparsity)),
                   f"sparsity {sparsity}, shape {tuple(shape)}: differs from course_lib's "
                   f"magnitude_prune")


# --- ex9.3 precision_recall ----------------------------------------------------------------------

def _pr(student, real: np.ndarray, fake: np.ndarray, k: int, what: str) -> tuple[float, float]:
    run = student.run([real, fake], {"k": k})
    out = run.value
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"precision_recall must return a pair (precision, recall), got {type_name(out)}")
    values = []
    for name, v in zip(("precision", "recall"), out):
        if isinstance(v, (torch.Tensor, np.ndarray)) and np.prod(v.shape) == 1:
            v = float(v.item())     # a one-element tensor or array is fine
        expect(isinstance(v, (int, float)) and not isinstance(v, bool),
               f"{name} must be a number, got {type_name(v)}")
        expect(0 <= v <= 1, f"{what}: {name} must be a fraction in [0, 1], got {v}")
        values.append(float(v))
    a, b = run.args[0], run.args[1]
    expect(isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, real)
           and np.array_equal(b, fake),
           "precision_recall changed its inputs in place: compute new arrays instead")
    return values[0], values[1]


def _real_ball_recall(real, fake, k):
    """The mistake: reals counted when a fake is inside the *real* point's own ball."""
    radii = knn_radii(real, k)
    d = np.linalg.norm(real[:, None, :] - fake[None, :, :], axis=-1)
    return float((d.min(axis=1) <= radii).mean())


@exercise("ex9.3", notebook=NOTEBOOK, function="precision_recall", points=3, timeout=60,
          reference=("course_lib.metrics.prdc.precision_recall", "course_lib.metrics.precision_recall",
                     "course_lib.metrics.prdc.knn_radii", "course_lib.metrics.prdc._ball_counts",
                     "course_lib.metrics.prdc._covered"))
def check_precision_recall(student):
    # Points on a line, k = 1. Real radii (distance to the nearest other real): 1, 1, 1, 1, 7.
    # Every fake is inside a real ball (14 is 4 from 10, whose radius is 7): precision 1.
    # Fake radii: 0.1, 0.1, 1.8, 5, 5. Real 0 is 0.5 from fake 0.5 (radius 0.1), 0.6 from
    # 0.6 (radius 0.1) and 2.4 from 2.4 (radius 1.8): in no fake ball. Recall 4/5.
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [0.6], [2.4], [9.0], [14.0]])
    p, r = _pr(student, real, fake, 1, "the first point set")
    hint = ""
    if abs(p - 0.8) < 1e-9 and abs(r - 1.0) < 1e-9:
        hint = " — precision and recall are swapped"
    elif abs(r - _real_ball_recall(real, fake, 1)) < 1e-9 and abs(r - 0.8) > 1e-9:
        hint = (" — recall counts a real point when it lies inside some *fake* ball: a ball "
                "around each fake, of radius its distance to its k-th nearest other fake (you "
                "used the real points' balls)")
    elif p == 0.0:
        hint = (" — with k = 1 every ball's radius must be the distance to the nearest *other* "
                "point; the point itself, at distance 0, does not count")
    expect(abs(p - 1.0) < 1e-9 and abs(r - 0.8) < 1e-9,
           f"reals 0, 1, 2, 3, 10 and fakes 0.5, 0.6, 2.4, 9, 14 on a line, k = 1: precision "
           f"1.0 (every fake lies in a real ball) and recall 0.8 (real 0 lies in no fake ball), "
           f"got ({p:.4g}, {r:.4g}){hint}")

    # k = 2. Real radii 2, 1, 1, 2, 8: fake 20 is 10 from real 10, outside: precision 3/4.
    # Fake radii 5.5, 3.5, 5.5, 17.5: every real is inside a fake ball: recall 1.
    fake = np.array([[0.5], [2.5], [6.0], [20.0]])
    p, r = _pr(student, real, fake, 2, "the second point set")
    hint = ""
    if p < 0.75 and abs(r - 1.0) < 1e-9:
        hint = (" — is the radius the distance to the k-th nearest *other* real point (here the "
                "2nd), not counting the point itself?")
    expect(abs(p - 0.75) < 1e-9 and abs(r - 1.0) < 1e-9,
           f"reals 0, 1, 2, 3, 10 and fakes 0.5, 2.5, 6, 20, k = 2: precision 0.75 (fake 20 is "
           f"10 from real 10, whose radius is 8) and recall 1.0, got ({p:.4g}, {r:.4g}){hint}")

    # A point exactly on a ball's boundary counts (closed balls, distance <= radius).
    real = np.array([[0.0], [2.0]])
    fake = np.array([[2.0], [4.0]])
    p, r = _pr(student, real, fake, 1, "points on a boundary")
    expect(abs(p - 1.0) < 1e-9 and abs(r - 1.0) < 1e-9,
           f"reals 0, 2 and fakes 2, 4, k = 1 (every radius is 2): fake 4 is exactly 2 from real 2 "
           f"and real 0 exactly 2 from fake 2, so both count (distance <= radius): (1.0, 1.0), "
           f"got ({p:.4g}, {r:.4g})")

    # Random features against course_lib, several k.
    rng = np.random.default_rng(5)
    for k in (1, 3, 5):
        real = rng.normal(size=(40, 6))
        fake = rng.normal(0.4, 1.2, size=(30, 6))
        p, r = _pr(student, real, fake, k, f"random features, k = {k}")
        want_p, want_r = reference_pr(real, fake, k)
        expect(abs(p - want_p) < 1e-9 and abs(r - want_r) < 1e-9,
               f"random features [40, 6] and [30, 6], k = {k}: expected ({want_p:.4g}, "
               f"{want_r:.4g}), got ({p:.4g}, {r:.4g})")
