"""Checks for ``04_few_shot_faces``: exercise 4.1 ``slerp`` and exercise 4.2
``nearest_training_images`` (the memorisation check)."""
import math

import torch

from course_lib.grade.api import exercise, expect, type_name, written
from course_lib.latent import lerp
from course_lib.latent import nearest_images as reference_nearest
from course_lib.latent import slerp as reference_slerp

NOTEBOOK = "04_few_shot_faces"


# --- ex4.1 slerp -------------------------------------------------------------------------------

def _slerp(student, z0, z1, t, what):
    """Call the student's slerp; check it returns a finite tensor and left its inputs alone."""
    run = student.run([z0, z1, t])
    out = run.value
    expect(isinstance(out, torch.Tensor),
           f"slerp must return a torch.Tensor, got {type_name(out)} (did you forget `return`?)")
    a, b = run.args[0], run.args[1]
    expect(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, z0)
           and torch.equal(b, z1),
           "slerp changed z0 or z1 in place (e.g. with /= or div_): compute new tensors instead")
    expect(out.dtype.is_floating_point, f"slerp must return floats, got {out.dtype}")
    expect(torch.isfinite(out).all(),
           f"{what}: the result contains NaN or inf. If the vectors are (nearly) parallel, "
           f"sin(omega) is ~0: clamp the cosine to [-1, 1] before acos, and fall back to the "
           f"straight line (1 - t) z0 + t z1 when sin(omega) is tiny")
    return out.detach().double()


def _close(out, want, tol=1e-4):
    return out.shape == want.shape and (out - want).abs().max().item() <= tol * (1 + want.abs().max().item())


@exercise("ex4.1", notebook=NOTEBOOK, function="slerp", points=2, timeout=60,
          reference="course_lib.latent.slerp")
def check_slerp(student):
    # Endpoints, with vectors of different lengths: t = 0 gives z0, t = 1 gives z1.
    z0, z1 = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, -2.0, 1.0])
    for t, want, name in ((0.0, z0, "z0"), (1.0, z1, "z1")):
        out = _slerp(student, z0, z1, t, f"slerp(z0, z1, {t:g})")
        expect(out.shape == (3,), f"slerp of two [3] vectors must have shape (3,), got {tuple(out.shape)}")
        scale = (out @ want.double() / (want.double() @ want.double())).item()
        hint = ""
        if abs(scale - 1) > 1e-3 and _close(out, scale * want.double()):
            hint = (f" — that is {name} times {scale:.4f}: at the ends the weights must be 1 and 0, "
                    f"so divide sin((1 - t) omega) and sin(t omega) by sin(omega), and use the "
                    f"latents themselves (not their unit vectors)")
        expect(_close(out, want.double()),
               f"slerp(z0, z1, t={t:g}) must be {name} = {want.tolist()}, got "
               f"{[round(v, 4) for v in out.tolist()]}{hint}")

    # Unit vectors at 90 degrees: the weights are cos(t pi/2) and sin(t pi/2).
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    for t in (1 / 3, 0.5, 0.8):
        out = _slerp(student, e1, e2, t, "unit vectors at 90 degrees")
        want = torch.tensor([math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)], dtype=torch.float64)
        hint = ""
        if _close(out, torch.tensor([1 - t, t], dtype=torch.float64)):
            hint = (" — that is the straight line (lerp). slerp follows the arc: weights "
                    "sin((1 - t) omega) / sin(omega) and sin(t omega) / sin(omega)")
        expect(_close(out, want),
               f"for e1 = [1, 0], e2 = [0, 1] and t = {t:.3g} expected [cos(t pi/2), sin(t pi/2)] = "
               f"{[round(v, 4) for v in want.tolist()]}, got {[round(v, 4) for v in out.tolist()]}{hint}")

    # Unit vectors at 60 and 135 degrees: slerp stays on the unit circle.
    for degrees in (60, 135):
        a = math.radians(degrees)
        u, v = torch.tensor([1.0, 0.0]), torch.tensor([math.cos(a), math.sin(a)])
        for t in (0.25, 0.5):
            out = _slerp(student, u, v, t, f"unit vectors at {degrees} degrees")
            want = torch.tensor([math.cos(t * a), math.sin(t * a)], dtype=torch.float64)
            norm = out.norm().item()
            hint = ""
            if abs(norm - 1) > 1e-3:
                hint = (f" — its length is {norm:.4f}, not 1: divide both weights by sin(omega) "
                        f"(or you interpolated on the straight line)")
            expect(_close(out, want),
                   f"between unit vectors at {degrees} degrees, t = {t:g} must give the unit "
                   f"vector at {degrees * t:g} degrees {[round(x, 4) for x in want.tolist()]}, got "
                   f"{[round(x, 4) for x in out.tolist()]}{hint}")

    # (Nearly) parallel vectors: no NaN, and the straight line.
    z = torch.tensor([0.3, -1.2, 2.0, 0.7])
    w = torch.tensor([1.0, 2.0, 2.0])     # length exactly 3: its cosine with itself is exactly 1
    cases = ((w, w.clone(), "identical vectors"), (w, 2 * w, "z1 = 2 * z0 (parallel)"),
             (z, z.clone(), "identical vectors"), (z, 2 * z, "z1 = 2 * z0 (parallel)"),
             (z, z + 1e-7 * torch.tensor([1.0, -1.0, 0.5, 0.0]), "nearly parallel vectors"))
    for a, b, what in cases:
        out = _slerp(student, a, b, 0.3, what)
        want = lerp(a.double(), b.double(), 0.3)
        expect(_close(out, want, 1e-4),
               f"{what}: with t = 0.3 expected (about) the straight line {[round(x, 4) for x in want.tolist()]}, "
               f"got {[round(x, 4) for x in out.tolist()]}")

    # Batches: z [N, D] with one t for all rows, and with one t per row ([N]).
    g = torch.Generator().manual_seed(4)
    z0, z1 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    out = _slerp(student, z0, z1, 0.3, "a batch [4, 8] with t = 0.3")
    expect(out.shape == (4, 8), f"a batch z0, z1 of shape (4, 8) must give shape (4, 8), got {tuple(out.shape)}")
    rows = torch.stack([reference_slerp(z0[i], z1[i], 0.3) for i in range(4)]).double()
    expect(_close(out, rows),
           "on a batch [4, 8] each row must be slerped on its own (the angle per row: take norms "
           "and dot products over the last dimension, dim=-1, with keepdim where needed)")
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = _slerp(student, z0, z1, t, "a batch [4, 8] with t of shape [4]")
    want = reference_slerp(z0, z1, t).double()
    expect(out.shape == (4, 8), f"z0, z1 (4, 8) with t (4,) must give shape (4, 8), got {tuple(out.shape)}")
    expect(_close(out, want),
           "with t of shape [4], row i must use t[i] (e.g. t[..., None] * ...); the rows differ "
           "from course_lib.latent.slerp")

    # The reference on random latents of the size a generator uses.
    z0, z1 = torch.randn(6, 128, generator=g), torch.randn(6, 128, generator=g)
    t = torch.rand(6, generator=g)
    out = _slerp(student, z0, z1, t, "random latents [6, 128]")
    worst = (out - reference_slerp(z0, z1, t).double()).abs().max().item()
    expect(worst < 1e-4, f"on random latents [6, 128] the result differs from "
                         f"course_lib.latent.slerp by up to {worst:.3g}")


# --- ex4.2 nearest training images -----------------------------------------------------------------

def _nearest(student, queries, train, k, what):
    run = student.run([queries, train, k])
    out = run.value
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"nearest_training_images must return a pair (indices, distances), got "
           f"{type_name(out)}")
    idx, dist = out
    expect(isinstance(idx, torch.Tensor) and isinstance(dist, torch.Tensor),
           f"indices and distances must be tensors, got {type_name(idx)} and {type_name(dist)}")
    q, tr = run.args[0], run.args[1]
    expect(isinstance(q, torch.Tensor) and isinstance(tr, torch.Tensor) and torch.equal(q, queries)
           and torch.equal(tr, train),
           "nearest_training_images changed its inputs in place: compute new tensors instead")
    shape = (len(queries), k)
    expect(tuple(idx.shape) == shape and tuple(dist.shape) == shape,
           f"{what}: for {len(queries)} queries and k = {k} both results must have shape {shape}, "
           f"got indices {tuple(idx.shape)} and distances {tuple(dist.shape)}")
    expect(not idx.dtype.is_floating_point and idx.dtype != torch.bool,
           f"indices must be integers (e.g. torch.long), got {idx.dtype}")
    return idx.long(), dist.detach().double()


def _true_distances(queries, train):
    return torch.cdist(queries.flatten(1).double(), train.flatten(1).double(),
                       compute_mode="donot_use_mm_for_euclid_dist")


def _explain(idx, dist, d_true, k):
    """Why a result is wrong, in words (None if it is right, ties allowed in any order)."""
    want = torch.sort(d_true, dim=1).values[:, :k]
    for q in range(len(idx)):
        row_idx, row_d = idx[q].tolist(), dist[q]
        if len(set(row_idx)) != len(row_idx):
            return f"query {q}: the same training image appears twice in {row_idx}"
        if any(not 0 <= i < d_true.shape[1] for i in row_idx):
            return f"query {q}: indices {row_idx} are out of range 0..{d_true.shape[1] - 1}"
        own = d_true[q, row_idx]
        if torch.allclose(row_d, own ** 2, rtol=1e-4, atol=1e-6) and not torch.allclose(row_d, own, rtol=1e-4, atol=1e-6):
            return (f"query {q}: the distances {[round(x, 4) for x in row_d.tolist()]} are the squared "
                    f"distances; take the square root (Euclidean distance)")
        if not torch.allclose(own, want[q], rtol=1e-4, atol=1e-6):
            far = torch.sort(d_true[q], descending=True).values[:k]
            if torch.allclose(own, far, rtol=1e-4, atol=1e-6):
                return (f"query {q}: you returned the {k} *farthest* training images "
                        f"{row_idx}; sort ascending (nearest first)")
            return (f"query {q}: the {k} nearest training images by Euclidean distance have "
                    f"distances {[round(x, 4) for x in want[q].tolist()]}, but the images you "
                    f"returned ({row_idx}) are at {[round(x, 4) for x in own.tolist()]} (are you "
                    f"ranking by cosine similarity or another measure instead of L2 distance?)")
        if not torch.allclose(row_d, own, rtol=1e-4, atol=1e-6):
            return (f"query {q}: distances {[round(x, 4) for x in row_d.tolist()]} are not the "
                    f"distances of the indices you returned ({[round(x, 4) for x in own.tolist()]}): "
                    f"return the distances in the same (sorted) order as the indices")
    return None


@exercise("ex4.2", notebook=NOTEBOOK, function="nearest_training_images", points=2, timeout=60,
          reference="course_lib.latent.nearest_images")
def check_nearest_training_images(student):
    # Exact small case: four flat 1x2x2 "images" (value c everywhere) and a flat query at
    # 0.4: the distance is |0.4 - c| * sqrt(4 pixels) = 2 |0.4 - c|.
    train = torch.tensor([0.0, 0.5, -0.5, 1.0]).reshape(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    query = torch.full((1, 1, 2, 2), 0.4)
    idx, dist = _nearest(student, query, train, 2, "four flat images")
    expect(idx[0].tolist() == [1, 0],
           f"training images are flat at 0, 0.5, -0.5, 1 and the query flat at 0.4: the nearest "
           f"two are #1 (0.5) then #0 (0), got {idx[0].tolist()}"
           + (" — those are the farthest: sort ascending" if idx[0].tolist() == [2, 3] else
              " — rank by the Euclidean (L2) distance between the flattened images; cosine "
              "similarity, for one, cannot tell flat images of different brightness apart"))
    want = torch.tensor([0.2, 0.8], dtype=torch.float64)
    hint = ""
    if torch.allclose(dist[0], want ** 2, atol=1e-5):
        hint = " — those are squared distances: take the square root"
    elif torch.allclose(torch.sort(dist[0]).values, want, atol=1e-5):
        hint = (" — the right values in the wrong order: return the distances of the indices "
                "you return, nearest first")
    elif torch.allclose(dist[0], want / 2, atol=1e-5):
        hint = " — that is a mean over pixels; use the Euclidean distance over all pixels"
    expect(torch.allclose(dist[0], want, atol=1e-5),
           f"the distances must be 2 * |0.4 - c| = [0.2, 0.8] (Euclidean, over all 4 pixels), "
           f"got {[round(x, 4) for x in dist[0].tolist()]}{hint}")

    # Direction is not distance: b is a brighter copy of a's pattern (same direction, far
    # away), c a different pattern close by. L2 ranks c first; cosine similarity ranks b.
    pattern = torch.tensor([[0.1, 0.2], [0.2, 0.1]])
    a = pattern.reshape(1, 1, 2, 2)
    train = torch.cat([4 * a, torch.tensor([[0.2, 0.05], [0.05, 0.25]]).reshape(1, 1, 2, 2)])
    idx, dist = _nearest(student, a, train, 1, "same direction vs. nearby")
    expect(idx[0, 0].item() == 1,
           "the query q = p, training image #0 = 4p (same direction, far away), #1 a different "
           f"pattern close to q: the nearest in Euclidean distance is #1, got #{idx[0, 0].item()} "
           "(cosine similarity ranks by angle, not distance: use the L2 distance)")

    # Several queries, k = N, and ties (two identical training images).
    g = torch.Generator().manual_seed(7)
    train = torch.rand(6, 3, 4, 4, generator=g) * 2 - 1
    train[4] = train[1]
    queries = torch.rand(3, 3, 4, 4, generator=g) * 2 - 1
    queries[2] = train[1] + 0.01
    for k in (6, 2):
        idx, dist = _nearest(student, queries, train, k, f"3 queries, k = {k}")
        problem = _explain(idx, dist, _true_distances(queries, train), k)
        expect(problem is None, f"3 queries, 6 training images (#1 and #4 identical), k = {k}: {problem}")
        expect(bool((dist[:, 1:] >= dist[:, :-1] - 1e-9).all()),
               f"k = {k}: each row of distances must be sorted, nearest first")

    # The reference on random images.
    queries = torch.rand(5, 3, 8, 8, generator=g) * 2 - 1
    train = torch.rand(20, 3, 8, 8, generator=g) * 2 - 1
    idx, dist = _nearest(student, queries, train, 4, "5 random queries, 20 training images")
    want_idx, want_dist = reference_nearest(queries, train, k=4, space="pixel")
    problem = _explain(idx, dist, _true_distances(queries, train), 4)
    expect(problem is None, f"5 random queries, 20 training images, k = 4: {problem}")
    expect(torch.equal(idx, want_idx) and torch.allclose(dist, want_dist, rtol=1e-4),
           "on random images the result differs from course_lib.latent.nearest_images(..., "
           "space='pixel')")


# --- written questions (marked by hand) -------------------------------------------------------

written("q4.1", notebook="04_few_shot_faces",
        prompt="Why can FD against the training images not catch a generator that copies them, "
               "and what does the nearest-image check add?")
