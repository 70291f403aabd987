"""Checks for ``03_diffaugment``: the DiffAugment ops and where T goes in the losses.

=======  =======================  ======================================================
id       function                 what is checked
=======  =======================  ======================================================
ex3.1    ``rand_translation``     every image is its input shifted by whole pixels, zeros
                                  shifted in, |shift| <= int(H*ratio + 0.5) with the whole
                                  range used, one shift per image, rows and columns apart
ex3.2    ``rand_cutout``          exactly one zeroed int(H*ratio + 0.5)-square per image,
                                  clipped at the borders, its centre anywhere
ex3.3    ``rand_color``           brightness, saturation and contrast, recovered per image
                                  from invariants (not from the random draws)
ex3.4    ``diffaugment_losses``   a spy T and a recording D: T on reals and fakes in the D
                                  step, on fakes in the G step; values and gradients equal
                                  course_lib.train's with ``augment="diffaugment"``
ex3.5    ``ada_update``           StyleGAN2-ADA's controller: p moves by images / ramp_images
                                  in the direction of r_t - target, and stays in [0, 1]
=======  =======================  ======================================================

None of the checks needs the student's random draws to equal course_lib's: they test what
the output says about the draws (an integer shift, a hole, an offset, a factor) and the
distribution of those over many images. All three ops must also pass gradients to x, be
reproducible under a ``torch.Generator`` and work on the whole batch at once (a Python loop
over the images earns half the points). The generators are fixtures
(``fixtures.generator(seed)``), built where the student's code runs; the op count that
reveals a loop is the worker's own report, so it can only ever take points off.
"""
from __future__ import annotations

import torch

from course_lib import diffaugment as reference
from course_lib.grade import fixtures
from course_lib.grade.api import exercise, expect, type_name, written
from course_lib.grade.calling import Grad
from course_lib.train import discriminator_loss, generator_loss

NOTEBOOK = "03_diffaugment"


# --- shared helpers ----------------------------------------------------------------------

def _gen(seed: int) -> torch.Generator:
    """A generator for the judge's own random inputs."""
    return torch.Generator().manual_seed(seed)


def _images(n: int, shape, seed: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=_gen(seed)) * 2 - 1


def _call(student, name: str, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """Call the student's op on ``x``; the result must be a finite tensor of x's shape, and x
    untouched."""
    run = student.run([x], kwargs)
    out = run.value
    expect(isinstance(out, torch.Tensor),
           f"{name} must return a torch.Tensor, got {type_name(out)} (did you forget `return`?)")
    expect(tuple(out.shape) == tuple(x.shape),
           f"{name} must keep the shape {tuple(x.shape)} ([N, C, H, W]), got {tuple(out.shape)}")
    expect(out.dtype == x.dtype, f"{name} must keep the dtype {x.dtype}, got {out.dtype}")
    expect(isinstance(run.args[0], torch.Tensor) and torch.equal(run.args[0].detach(), x.detach()),
           f"{name} changed its input in place (e.g. x[...] = 0, mul_, add_): the caller's images "
           f"were modified; build a new tensor instead")
    expect(bool(torch.isfinite(out).all()), f"{name} returned NaN or inf values")
    return out.detach()


def _ops(student, x: torch.Tensor, **kwargs) -> int | None:
    """The number of torch operations one call ran (the worker's count, None if unknown)."""
    ops = student.run([x], kwargs, count_ops=True).ops
    return ops if isinstance(ops, int) else None


def _vectorised(student, name: str, shape=(3, 8, 8)):
    """None if the number of torch ops does not grow with the batch, else (0.5, why)."""
    small = _ops(student, _images(2, shape, 100), generator=fixtures.generator(0))
    large = _ops(student, _images(24, shape, 101), generator=fixtures.generator(0))
    if small is not None and large is not None and large > small + 8:
        return (0.5, f"{name} is correct but loops over the images in Python (it ran {small} torch "
                     f"operations for 2 images and {large} for 24): draw all the random numbers at "
                     f"once, shape [N, ...], and transform the whole batch with tensor operations")
    return None


def _gradient_reaches_x(student, name: str, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    run = student.run([x], {"generator": fixtures.generator(3)}, grads=[Grad(wrt=(0,))])
    out = run.value
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           f"{name}'s output does not depend on x differentiably: DiffAugment must pass G's "
           f"gradient back through T (avoid torch.no_grad(), .detach(), .numpy(), .item() or "
           f"torch.tensor(...) on x)")
    grad = (run.grads[0] or [None])[0]
    expect(isinstance(grad, torch.Tensor) and grad.shape == x.shape and bool(torch.isfinite(grad).all())
           and grad.abs().sum() > 0,
           f"{name}: no gradient reaches x through the output; G is trained through T, so every "
           f"step must be a differentiable tensor operation on x")


def _reproducible(student, name: str, x: torch.Tensor):
    a = _call(student, name, x, generator=fixtures.generator(11))
    b = _call(student, name, x, generator=fixtures.generator(11))
    expect(torch.equal(a, b),
           f"{name}: two calls with torch.Generator().manual_seed(11) gave different results; take "
           f"every random number from `generator` (torch.rand(..., generator=generator), "
           f"torch.randint(..., generator=generator))")
    c = _call(student, name, x, generator=fixtures.generator(12))
    expect(not torch.equal(a, c),
           f"{name}: generators with seeds 11 and 12 gave the same result; the draws must come "
           f"from `generator`")
    _call(student, name, x)  # and it works without one


def _distinct_images(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Every value distinct and > 0 (whole numbers, exact in float32): any output pixel says
    where it came from, and a 0 can only be a filled-in pixel."""
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).view(n, c, h, w)


# --- ex3.1: rand_translation ----------------------------------------------------------------

def _read_through(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[n, :, i, j] = x[n, :, (i + dy[n]) mod H, (j + dx[n]) mod W]: a shift that wraps
    around (what torch.roll does), per image."""
    n, c, h, w = x.shape
    rows = (torch.arange(h).view(1, h, 1) + dy.view(n, 1, 1)) % h
    cols = (torch.arange(w).view(1, 1, w) + dx.view(n, 1, 1)) % w
    index = (rows * w + cols).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)


def _zero_filled(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """The wrap-around shift with every pixel that came from outside the image set to 0:
    the zero-filled translation the exercise asks for."""
    n, _, h, w = x.shape
    rows = torch.arange(h).view(1, h, 1) + dy.view(n, 1, 1)
    cols = torch.arange(w).view(1, 1, w) + dx.view(n, 1, 1)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)            # [N, H, W]
    return _read_through(x, dy, dx) * inside.unsqueeze(1).to(x.dtype)


def _recover_shifts(x: torch.Tensor, out: torch.Tensor):
    """Per image, the shift (dy, dx) with out[n] == x[n] shifted (zero fill), read off the
    first non-zero output pixel (x's values are distinct and increasing), and whether the
    image matches it: ``(dy, dx, matches, wraps)``, each [N]."""
    n, c, h, w = x.shape
    flat = out.flatten(1)
    nonzero = flat != 0
    first = nonzero.to(torch.uint8).argmax(1)                          # [N]
    value = flat.gather(1, first.view(n, 1)).flatten()
    source = torch.searchsorted(x.flatten().contiguous(), value.contiguous()).clamp(max=x.numel() - 1)
    image, rest = source // (c * h * w), source % (c * h * w)
    dy = (rest % (h * w)) // w - (first % (h * w)) // w
    dx = rest % w - first % w
    same = nonzero.any(1) & (image == torch.arange(n)) & (rest // (h * w) == first // (h * w))
    matches = same & (_zero_filled(x, dy, dx) == out).flatten(1).all(1)
    wraps = same & (_read_through(x, dy, dx) == out).flatten(1).all(1)
    return dy, dx, matches, wraps


def _translation_case(student, shape, ratio, seed, n):
    c, h, w = shape
    x = _distinct_images(n, c, h, w) / (n * c * h * w)  # in (0, 1]
    out = _call(student, "rand_translation", x, ratio=ratio, generator=fixtures.generator(seed))
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    where = f"at {h}x{w} with ratio={ratio}"
    pool = x.flatten()                                    # sorted: a fast membership test
    hit = pool[torch.searchsorted(pool, out.flatten()).clamp(max=pool.numel() - 1)] == out.flatten()
    strange = out.flatten()[~hit & (out.flatten() != 0)]
    expect(strange.numel() == 0,
           f"rand_translation {where}: the output holds values that are not input pixels (e.g. "
           f"{strange.flatten()[0].item() if strange.numel() else 0:.4g}): shift by whole pixels "
           f"(integers), without interpolation, and fill with exactly 0")
    dys, dxs, matches, wraps = _recover_shifts(x, out)
    if not bool(matches.all()):
        i = int((~matches).nonzero()[0])
        expect(not bool((wraps & ~matches).any()),
               f"rand_translation: pixels shifted in from outside the image must be 0, got values "
               f"wrapped from the opposite edge (torch.roll wraps around; pad with zeros and crop, "
               f"or zero the rows and columns that came from outside)")
        expect(False, f"rand_translation {where}: image {i} is not its input shifted by whole "
                      f"pixels with zeros filled in (and no other change)")
    worst = max(dys.abs().max().item(), dxs.abs().max().item())
    expect(dys.abs().max() <= max_dy and dxs.abs().max() <= max_dx,
           f"rand_translation {where}: shifts must be at most int(H*ratio + 0.5) = {max_dy} rows "
           f"and int(W*ratio + 0.5) = {max_dx} columns, got a shift of {worst} pixels")
    return dys, dxs, max_dy, max_dx, where


@exercise("ex3.1", notebook=NOTEBOOK, function="rand_translation", points=2, timeout=60,
          reference="course_lib.diffaugment.rand_translation")
def check_rand_translation(student):
    dys, dxs, max_dy, max_dx, where = _translation_case(student, (3, 32, 32), 0.125, seed=0, n=400)
    expect(len(set(zip(dys.tolist(), dxs.tolist()))) > 1,
           f"rand_translation: every image got the same shift ({dys[0].item()}, {dxs[0].item()}); "
           f"draw one shift per image (shape [N]), not one for the whole batch")
    expect(not bool((dys == dxs).all()),
           "rand_translation: every image was shifted by the same number of rows as columns; "
           "draw the row shift and the column shift independently")
    for name, values, limit in (("row", dys, max_dy), ("column", dxs, max_dx)):
        seen = sorted(set(values.tolist()))
        expect(seen == list(range(-limit, limit + 1)),
               f"rand_translation {where}: {name} shifts must take every whole value from "
               f"-{limit} to {limit} (inclusive; torch.randint's upper bound is exclusive), "
               f"got {seen}")
        counts = torch.bincount(values + limit, minlength=2 * limit + 1).float()
        expected = len(values) / (2 * limit + 1)
        expect(bool((counts > 0.4 * expected).all() and (counts < 1.6 * expected).all()),
               f"rand_translation {where}: {name} shifts should be uniform over -{limit}..{limit}, "
               f"got counts {counts.int().tolist()} over {len(values)} images")

    # Rows follow H, columns follow W; and ratio is used.
    dys, dxs, max_dy, max_dx, where = _translation_case(student, (3, 8, 16), 0.125, seed=1, n=200)
    expect(dys.abs().max() == max_dy and dxs.abs().max() == max_dx,
           f"rand_translation {where}: the largest shifts must be {max_dy} rows (from H) and "
           f"{max_dx} columns (from W), got {dys.abs().max().item()} and {dxs.abs().max().item()}")
    dys, dxs, max_dy, max_dx, where = _translation_case(student, (1, 16, 16), 0.25, seed=2, n=200)
    expect(max(dys.abs().max(), dxs.abs().max()) == max_dy,
           f"rand_translation {where}: shifts must reach int(16*0.25 + 0.5) = {max_dy}; "
           f"use the ratio argument")

    x = _images(16, (3, 12, 12), 3)
    _gradient_reaches_x(student, "rand_translation", x)
    _reproducible(student, "rand_translation", x)
    return _vectorised(student, "rand_translation")


# --- ex3.2: rand_cutout ---------------------------------------------------------------------

def _holes(x: torch.Tensor, out: torch.Tensor, where: str) -> torch.Tensor:
    """The zeroed pixels [N, H, W] (bool); checks that nothing else changed."""
    changed = out != x
    zeroed = out == 0
    other = changed & ~zeroed
    if bool(other.any()):
        fill = out[other][0].item()
        expect(False, f"rand_cutout {where}: pixels in the hole must become exactly 0 (the middle "
                      f"of [-1, 1], grey) and all others must stay unchanged; got {fill:.4g} "
                      f"where the input was {x[other][0].item():.4g}")
    hole = zeroed.all(1)
    expect(bool((zeroed.any(1) == hole).all()),
           f"rand_cutout {where}: the hole must cut through all channels of a pixel alike "
           f"(one [N, 1, H, W] mask for every channel)")
    return hole


def _hole_boxes(hole: torch.Tensor, where: str):
    """Per image (top, bottom, left, right) of its hole, checking it is one rectangle."""
    rows, cols = hole.any(2), hole.any(1)                         # [N, H], [N, W]
    empty = ~rows.any(1)
    expect(not bool(empty.any()),
           f"rand_cutout {where}: some images have no hole; every image "
           f"needs one (its centre lies inside the image, so some of it always shows)")
    box = (rows[:, :, None] & cols[:, None, :])
    expect(bool((box == hole).all()),
           f"rand_cutout {where}: the zeroed pixels must form one rectangle per image; got "
           f"another shape (several pieces, or a hole that is not axis-aligned)")
    h, w = hole.shape[1:]
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    top = torch.where(rows, ar_h, h).min(1).values
    bottom = torch.where(rows, ar_h, -1).max(1).values
    left = torch.where(cols, ar_w, w).min(1).values
    right = torch.where(cols, ar_w, -1).max(1).values
    expect(bool((rows.sum(1) == bottom - top + 1).all() and (cols.sum(1) == right - left + 1).all()),
           f"rand_cutout {where}: the hole must be one rectangle of consecutive rows and columns")
    return top, bottom, left, right


def _cutout_case(student, shape, ratio, seed, n):
    c, h, w = shape
    x = _distinct_images(n, c, h, w) / (n * c * h * w)
    where = f"at {h}x{w} with ratio={ratio}"
    out = _call(student, "rand_cutout", x, ratio=ratio, generator=fixtures.generator(seed))
    top, bottom, left, right = _hole_boxes(_holes(x, out, where), where)
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    height, width = bottom - top + 1, right - left + 1
    at_edge_h = (top == 0) | (bottom == h - 1)
    at_edge_w = (left == 0) | (right == w - 1)
    inner = ~at_edge_h & ~at_edge_w
    expect(bool(inner.any()), f"rand_cutout {where}: every hole touches the border; its centre "
                              f"should be anywhere in the image, mostly away from the edges")
    got = sorted(set(zip(height[inner].tolist(), width[inner].tolist())))
    expect(got == [(size_h, size_w)],
           f"rand_cutout {where}: a hole away from the borders must be int(H*ratio + 0.5) x "
           f"int(W*ratio + 0.5) = {size_h}x{size_w} pixels, got {', '.join(f'{a}x{b}' for a, b in got[:4])}")
    expect(bool((height <= size_h).all() and (width <= size_w).all()),
           f"rand_cutout {where}: a hole is never larger than {size_h}x{size_w}, got "
           f"{height.max().item()}x{width.max().item()}")
    clipped = (height < size_h) | (width < size_w)
    bad = clipped & ~(((height < size_h) & at_edge_h) | ((width < size_w) & at_edge_w))
    expect(not bool(bad.any()),
           f"rand_cutout {where}: a hole smaller than {size_h}x{size_w} must be one clipped at the "
           f"border of the image")
    return top, bottom, left, right, clipped, where


@exercise("ex3.2", notebook=NOTEBOOK, function="rand_cutout", points=2, timeout=60,
          reference="course_lib.diffaugment.rand_cutout")
def check_rand_cutout(student):
    top, bottom, left, right, clipped, where = _cutout_case(student, (3, 32, 32), 0.5, seed=0, n=600)
    corners = {(t, l) for t, l in zip(top.tolist(), left.tolist())}
    expect(len(corners) > 1,
           f"rand_cutout {where}: the hole is in the same place in every image; draw its centre "
           f"per image (shape [N]), anywhere in the image")
    expect(not bool((top == left).all()),
           f"rand_cutout {where}: the hole's row and column always match; draw them independently")
    # With the centre anywhere in a 32-pixel image, a 16-pixel square is clipped ~3 times in 4.
    share = clipped.float().mean().item()
    expect(share > 0.4,
           f"rand_cutout {where}: only {share:.0%} of the holes hang over a border (about 70% "
           f"should): the square's centre can be anywhere in the image, and the part outside is "
           f"clipped away, so keep the centre's range the whole image")
    reach = {"the top row": (top == 0), "the bottom row": (bottom == 31),
             "the left column": (left == 0), "the right column": (right == 31)}
    for name, hit in reach.items():
        expect(bool(hit.any()), f"rand_cutout {where}: no hole ever reaches {name}; the centre "
                                f"must be able to lie anywhere, edges included")

    # Non-square and odd sizes: H gives the rows, W the columns.
    _cutout_case(student, (3, 12, 20), 0.5, seed=1, n=300)
    _cutout_case(student, (1, 10, 10), 0.5, seed=2, n=300)    # a 5x5 (odd) hole
    _cutout_case(student, (1, 16, 16), 0.25, seed=3, n=300)   # ratio is used: 4x4

    x = _images(16, (3, 12, 12), 4)
    _gradient_reaches_x(student, "rand_cutout", x)
    _reproducible(student, "rand_cutout", x)
    return _vectorised(student, "rand_cutout")


# --- ex3.3: rand_color ------------------------------------------------------------------------

def _colour_images(n: int, seed: int) -> torch.Tensor:
    """Coloured images whose three channels have different means (per image), so a
    per-channel mean and the image mean differ."""
    g = _gen(seed)
    x = torch.rand(n, 3, 6, 6, generator=g) * 1.2 - 0.6
    return x + torch.tensor([0.3, -0.2, -0.1]).view(1, 3, 1, 1)


def _per_image_dot(a, b):
    return (a * b).flatten(1).sum(1)


def _colour_parameters(x, out):
    """Per image, from out = (x - g)·s·c + (g - m)·c + m + b (g: the pixel's channel mean,
    m: the image mean): the offset b, the contrast factor c, the saturation factor s, and
    how far each part is from that form (relative residuals)."""
    g, g_out = x.mean(1, keepdim=True), out.mean(1, keepdim=True)
    m, m_out = x.mean((1, 2, 3), keepdim=True), out.mean((1, 2, 3), keepdim=True)
    b = (m_out - m).flatten()
    grey, grey_out = g - m, g_out - m_out
    c = _per_image_dot(grey_out, grey) / _per_image_dot(grey, grey)
    grey_residual = (grey_out - c.view(-1, 1, 1, 1) * grey).flatten(1).norm(dim=1) / grey.flatten(1).norm(dim=1)
    colour, colour_out = x - g, out - g_out
    sc = _per_image_dot(colour_out, colour) / _per_image_dot(colour, colour)
    colour_residual = (colour_out - sc.view(-1, 1, 1, 1) * colour).flatten(1).norm(dim=1) / \
        colour.flatten(1).norm(dim=1)
    return b, c, sc / c, grey_residual, colour_residual


def _per_channel_contrast_fits(x, out) -> bool:
    """Whether out - (pixel channel mean) is a per-image combination of (x - pixel channel
    mean) and (per-channel mean - image mean): the signature of contrast around a
    per-channel mean."""
    g, g_out = x.mean(1, keepdim=True), out.mean(1, keepdim=True)
    ch = x.mean((2, 3), keepdim=True)
    a = (x - g).flatten(1)
    b = (ch - ch.mean(1, keepdim=True)).expand_as(x).flatten(1)
    y = (out - g_out).flatten(1)
    basis = torch.stack([a, b], 2)                                   # [N, P, 2]
    coef = torch.linalg.lstsq(basis.double(), y.double().unsqueeze(2)).solution
    fit = (basis.double() @ coef).squeeze(2)
    return bool(((fit - y.double()).norm(dim=1) / y.double().norm(dim=1) < 1e-3).all())


def _spread(name: str, values: torch.Tensor, lo: float, hi: float, formula: str, what: str):
    tol = 1e-4
    vmin, vmax, mean = values.min().item(), values.max().item(), values.mean().item()
    expect(vmin >= lo - tol and vmax <= hi + tol,
           f"rand_color: {name} {what} must lie in [{lo:g}, {hi:g}] ({formula} with u ~ U(0, 1)), "
           f"got values from {vmin:.3g} to {vmax:.3g}")
    span = hi - lo
    expect(vmin < lo + 0.1 * span and vmax > hi - 0.1 * span and abs(mean - (lo + hi) / 2) < 0.06 * span,
           f"rand_color: {name} {what} should be uniform over [{lo:g}, {hi:g}] ({formula}, "
           f"u ~ U(0, 1)); over {len(values)} images they ranged from {vmin:.3g} to {vmax:.3g} "
           f"with mean {mean:.3g}")
    expect(len(set(values.round(decimals=5).tolist())) > len(values) // 2,
           f"rand_color: every image got the same {name} {what}; draw one per image, shape [N, 1, 1, 1]")


@exercise("ex3.3", notebook=NOTEBOOK, function="rand_color", points=2, timeout=60,
          reference=("course_lib.diffaugment.rand_brightness", "course_lib.diffaugment.rand_saturation",
                     "course_lib.diffaugment.rand_contrast"))
def check_rand_color(student):
    n = 1500
    # 1. Flat images (every pixel and channel the same value v): saturation and contrast
    #    leave them unchanged, so only the brightness offset may move them.
    v = torch.linspace(-0.9, 0.9, n).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    d = _call(student, "rand_color", v, generator=fixtures.generator(0)) - v
    per_channel = d.flatten(2)
    if not bool((per_channel.amax(2) - per_channel.amin(2) < 1e-5).all()):
        expect(False, "rand_color: on images whose pixels all have the same value, saturation "
                      "and contrast change nothing, so every pixel must move by one brightness "
                      "offset; yours moved pixels of one image by different amounts — draw the "
                      "brightness offset once per image, shape [N, 1, 1, 1], not per pixel")
    flat = d.flatten(1)
    expect(bool((flat.amax(1) - flat.amin(1) < 1e-5).all()),
           "rand_color: brightness must add the same offset to all three channels of an image; "
           "yours differs between channels — draw one number per image, shape [N, 1, 1, 1]")
    offset = flat[:, 0]
    if bool((offset.abs() > 0.5 + 1e-4).any()):
        # Same draws (same seed) on two flat batches: the change must not depend on the value.
        up, down = torch.full((64, 3, 4, 4), 0.8), torch.full((64, 3, 4, 4), -0.8)
        a, again = (_call(student, "rand_color", up, generator=fixtures.generator(5)) for _ in range(2))
        b = _call(student, "rand_color", down, generator=fixtures.generator(5))
        expect(not torch.equal(a, again) or torch.allclose(a - up, b - down, atol=1e-5),
               "rand_color: with the same draws, a flat image at 0.8 and one at -0.8 changed by "
               "different amounts; saturation and contrast must leave flat images unchanged, "
               "so contrast must scale around the image's mean, (x - mean) * f + mean, not "
               "around 0 (x * f)")
    _spread("brightness", offset, -0.5, 0.5, "u - 0.5", "offsets")

    # 2. Coloured images: recover each image's offset, contrast and saturation factors.
    x = _colour_images(n, seed=1)
    out = _call(student, "rand_color", x, generator=fixtures.generator(1))
    b, c, s, grey_residual, colour_residual = _colour_parameters(x, out)
    expect(bool((grey_residual < 1e-3).all()),
           "rand_color: the grey level of each pixel (its mean over the 3 channels) must end up "
           "as the input's, scaled around the image's mean by one contrast factor per image "
           "(saturation keeps each pixel's channel mean, contrast keeps the image's mean); "
           "yours is not — is the contrast factor or the brightness offset drawn per pixel?")
    if not bool((colour_residual < 1e-3).all()):
        hint = (" Your contrast seems to scale each channel around its own mean: use the mean "
                "over C, H and W together (dim=(1, 2, 3))." if _per_channel_contrast_fits(x, out)
                else " Check that saturation uses each pixel's mean over the channels "
                     "(dim=1, keepdim=True) and one factor per image.")
        expect(False, "rand_color: each pixel's colour (the pixel minus its mean over the 3 "
                      "channels) must end up scaled by one factor per image (saturation factor "
                      "x contrast factor); yours is not." + hint)
    expect(s.std().item() > 1e-3,
           "rand_color: saturation left every pixel's colour as it was relative to its grey "
           "level; it must scale each pixel around its own mean over the channels "
           "(x.mean(dim=1, keepdim=True)), by a factor 2u per image")
    _spread("contrast", c, 0.5, 1.5, "u + 0.5", "factors")
    _spread("saturation", s, 0.0, 2.0, "2u", "factors")
    _spread("brightness", b, -0.5, 0.5, "u - 0.5", "offsets")

    # 3. The same recovered draws from course_lib's own ops agree (a sanity check of the
    #    recovery itself, and the same ranges).
    ref = reference.rand_contrast(reference.rand_saturation(reference.rand_brightness(
        x, generator=_gen(2)), generator=_gen(3)), generator=_gen(4))
    rb, rc, rs, *_ = _colour_parameters(x, ref)
    for name, mine, theirs in (("brightness", b, rb), ("contrast", c, rc), ("saturation", s, rs)):
        expect(abs(mine.mean().item() - theirs.mean().item()) < 0.1 * (theirs.max() - theirs.min()).item(),
               f"rand_color: the {name} draws average {mine.mean().item():.3g}, course_lib's "
               f"average {theirs.mean().item():.3g}")

    _gradient_reaches_x(student, "rand_color", _images(8, (3, 6, 6), 5))
    _reproducible(student, "rand_color", _images(8, (3, 6, 6), 6))
    return _vectorised(student, "rand_color")


# --- ex3.4: diffaugment_losses ----------------------------------------------------------------
# G: a tiny MLP generator z [N, 5] -> [N, 3, 4, 4]; D: a conv discriminator that reports its
# inputs; T: a deterministic, differentiable spy, 0.5 * x.flip(-1) + 0.25, that reports its
# inputs (fixtures). Where T and D were used is the worker's report and only shapes the
# message; the values and G's gradients, compared with course_lib.train's, decide.

def _rows_in(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each row of ``rows`` [k, ...], whether it equals some row of ``pool`` [m, ...]."""
    if rows.dim() != pool.dim() or rows.shape[1:] != pool.shape[1:]:
        return torch.zeros(rows.shape[0], dtype=torch.bool)
    diff = (rows.flatten(1)[:, None, :] - pool.flatten(1)[None, :, :]).abs().amax(2)
    return (diff < 1e-6).any(1)


def _losses(run):
    result = run.value
    expect(isinstance(result, (tuple, list)) and len(result) == 2,
           f"diffaugment_losses must return two losses, (loss_d, loss_g), got {type_name(result)}")
    loss_d, loss_g = result
    for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
        expect(isinstance(value, torch.Tensor) and value.numel() == 1,
               f"diffaugment_losses: {name} must be a scalar tensor (so .backward() works), got "
               f"{type_name(value)}{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}")
    return loss_d, loss_g


def _grads(run, i: int):
    """The gradients of request ``i`` with respect to G's parameters: a list, or None when
    that loss was not differentiable."""
    found = run.grads[i] if i < len(run.grads) else None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], list) else None


def _recorded(run, spec, key="inputs") -> list:
    items = run.report(spec).get(key)
    return items if isinstance(items, list) else []


@exercise("ex3.4", notebook=NOTEBOOK, function="diffaugment_losses", points=2, timeout=60,
          reference=("course_lib.train.discriminator_loss", "course_lib.train.generator_loss"))
def check_diffaugment_losses(student):
    n, z_dim = 6, 5
    G = fixtures.Spec("mlp_generator", seed=6, z_dim=z_dim, size=4)
    D, T = fixtures.Spec("conv_discriminator", seed=5, size=4), fixtures.Spec("spy_transform")
    real = torch.rand(n, 3, 4, 4, generator=_gen(0)) * 2 - 1
    z = torch.randn(n, z_dim, generator=_gen(1))
    judge_G = fixtures.build(G)
    fake = judge_G(z).detach()
    run = student.run([G, D, real, z, T], {"kind": "hinge"},
                      grads=[Grad(of=(0,), wrt=(G,)), Grad(of=(1,), wrt=(G,))])
    loss_d, loss_g = _losses(run)
    t_inputs = [(x, bool(grad)) for x, grad in (item for item in _recorded(run, T)
                                               if isinstance(item, tuple) and len(item) == 2)
                if isinstance(x, torch.Tensor)]
    d_inputs = [x for x in _recorded(run, D) if isinstance(x, torch.Tensor)]

    # Where did T go?
    expect(not any(x.dim() != 4 or bool(_rows_in(x, z).any()) for x, _ in t_inputs),
           "diffaugment_losses: T was applied to z, the generator's input; DiffAugment augments "
           "the images D looks at: D(T(real)) and D(T(G(z)))")
    reals_seen = sum(int(_rows_in(x, real).sum()) for x, _ in t_inputs)
    fake_calls = [(int(_rows_in(x, fake).sum()), grad) for x, grad in t_inputs]
    fakes_d = sum(k for k, grad in fake_calls if k and not grad)
    fakes_g = sum(k for k, grad in fake_calls if k and grad)
    expect(reals_seen >= n, "diffaugment_losses: T must be applied to the real images in D's "
                            "step: D(T(real))")
    expect(fakes_d + fakes_g > 0,
           "diffaugment_losses: T is applied to the reals only; D must see T(fake) too, in both "
           "steps — augmenting only the reals teaches G to reproduce the augmentation "
           "(cutout holes, shifted borders, colour casts)")
    expect(fakes_g >= n,
           "diffaugment_losses: the G step must augment the fakes too, D(T(G(z))) with G's "
           "gradient flowing through T; augmenting only in the D step makes D and G optimise "
           "different objectives and training fails")
    fake_aug = fixtures.flip_transform(fake)
    judged = sum(int(_rows_in(x, fake_aug).sum()) for x in d_inputs)
    expect(fakes_d >= n or judged >= 2 * n,
           "diffaugment_losses: the D step must augment the (detached) fakes as well as the "
           "reals: D(T(fake.detach()))")

    # Did D see only augmented images?
    augmented = torch.cat([fixtures.flip_transform(real), fake_aug])
    raw = [x for x in d_inputs if not bool(_rows_in(x, augmented).all())]
    if raw:
        what = ("un-augmented reals" if bool(_rows_in(raw[0], real).any()) else
                "un-augmented fakes" if bool(_rows_in(raw[0], fake).any()) else
                "images that are neither T(real) nor T(G(z))")
        expect(False, f"diffaugment_losses: D saw {what}; every image D judges must go through "
                      f"T first (the augmented reals and fakes, in both steps)")

    # Gradients (outputs too): the D loss must not reach G; the G loss must, through T.
    grads_d = _grads(run, 0) or []
    expect(all(g is None or float(g.abs().max()) == 0 for g in grads_d),
           "diffaugment_losses: loss_d sends gradient into G; D's step must use the detached "
           "fakes, fake.detach(), so that training D does not move G")
    expect(loss_g.requires_grad, "diffaugment_losses: loss_g has no gradient; G must be trained "
                                 "through D(T(G(z))) (no .detach() or torch.no_grad() in G's step)")
    grads_g = _grads(run, 1)
    expect(grads_g is not None and all(g is not None for g in grads_g)
           and any(float(g.abs().max()) > 0 for g in grads_g),
           "diffaugment_losses: no gradient from loss_g reaches G; compute it on D(T(G(z))) "
           "without detaching the fakes")

    # The values and G's gradient equal course_lib.train's, for two kinds of loss.
    for kind in ("hinge", "nonsaturating"):
        D_ref = fixtures.Spec("conv_discriminator", seed=5, size=4)
        run = student.run([G, D_ref, real, z, fixtures.Spec("spy_transform")], {"kind": kind},
                          grads=[Grad(of=(1,), wrt=(G,))])
        loss_d, loss_g = _losses(run)
        judge_D = fixtures.build(D_ref)
        # The reference runs on the judge's own G, never on the worker's account of it.
        reported = run.report(G).get("params")
        expect(isinstance(reported, list) and len(reported) == len(list(judge_G.parameters()))
               and all(isinstance(p, torch.Tensor) and p.shape == q.shape and torch.equal(p, q.detach())
                       for p, q in zip(reported, judge_G.parameters())),
               "diffaugment_losses changed G's weights: it only computes the two losses (the "
               "optimiser steps come after it)")
        want_d = discriminator_loss(judge_D, real, judge_G(z).detach(), "diffaugment", fixtures.flip_transform, kind)
        want_g = generator_loss(judge_D, judge_G(z), "diffaugment", fixtures.flip_transform, kind)
        expect(abs(loss_d.item() - want_d.item()) < 1e-5,
               f"diffaugment_losses(kind={kind!r}): loss_d = {loss_d.item():.6g}, but "
               f"course_lib.train.discriminator_loss(..., augment='diffaugment') gives "
               f"{want_d.item():.6g}; use losses.d_loss(D(T(real)), D(T(fake.detach())), kind)")
        expect(abs(loss_g.item() - want_g.item()) < 1e-5,
               f"diffaugment_losses(kind={kind!r}): loss_g = {loss_g.item():.6g}, but "
               f"course_lib.train.generator_loss(..., augment='diffaugment') gives "
               f"{want_g.item():.6g}; use losses.g_loss(D(T(fake)), kind)")
        mine = _grads(run, 0) or []
        want = torch.autograd.grad(want_g, list(judge_G.parameters()))
        worst = max(((m - w).abs().max().item() if isinstance(m, torch.Tensor) and m.shape == w.shape
                     else float("inf") for m, w in zip(mine, want)), default=float("inf"))
        expect(len(mine) == len(want) and worst < 1e-5,
               f"diffaugment_losses(kind={kind!r}): G's gradient from loss_g differs from "
               f"course_lib's by {worst:.3g}")

    # And with the real, random T on real-sized images, it runs and keeps the gradient to G.
    G8 = fixtures.Spec("mlp_generator", seed=7, z_dim=z_dim, size=8)
    run = student.run([G8, fixtures.Spec("conv_discriminator", seed=5, size=8), _images(n, (3, 8, 8), 9), z,
                       fixtures.Spec("diff_augment", seed=9)], {"kind": "hinge"})
    loss_d, loss_g = _losses(run)
    expect(bool(torch.isfinite(loss_d) and torch.isfinite(loss_g)),
           "diffaugment_losses: with course_lib's diff_augment as T the losses are not finite")


# --- ex3.5: ADA's adaptive augmentation probability ---------------------------------------------

def _p_value(out) -> float:
    expect(out is not None, "ada_update returned None: did you forget `return`?")
    if isinstance(out, torch.Tensor):
        expect(out.numel() == 1, f"ada_update must return one number, got a tensor of shape {tuple(out.shape)}")
        out = out.item()
    expect(isinstance(out, (int, float)) and not isinstance(out, bool),
           f"ada_update must return the new probability as a number, got {type_name(out)}")
    return float(out)


def _ada_hint(got: float, p: float, r_t: float, images: int, target: float, ramp: int) -> str:
    step = images / ramp
    sign = (r_t > target) - (r_t < target)
    candidates = {
        "p moves by the same amount whatever the size of r_t - target: only its sign decides the "
        "direction (a bang-bang controller, as StyleGAN2-ADA's)": p + (r_t - target) * step,
        "the direction is reversed: r_t above the target means D is overconfident on its training "
        "images, so augment MORE": min(1.0, max(0.0, p - sign * step)),
        "p is a probability: keep it within [0, 1]": p + sign * step,
        "the step is the share of the ramp that these images make up: images / ramp_images":
            min(1.0, max(0.0, p + sign / ramp)),
        "one adjustment moves p by images / ramp_images, not by a fixed 1%":
            min(1.0, max(0.0, p + sign * 0.01)),
    }
    for hint, value in candidates.items():
        if abs(got - value) < 1e-12 and abs(value - min(1.0, max(0.0, p + sign * step))) > 1e-12:
            return f" ({hint})"
    return ""


@exercise("ex3.5", notebook=NOTEBOOK, function="ada_update", points=1, timeout=30,
          reference=("course_lib.ada.ada_update", "course_lib.ada.ada_schedule"))
def check_ada_update(student):
    from course_lib.ada import ada_update as reference

    # (p, r_t, images, target, ramp_images); None: use the function's defaults
    cases = [
        (0.0, 0.9, 256, None, None),         # overconfident D: augment more
        (0.3, 0.61, 256, None, None),        # just above the target: the same step
        (0.3, 1.0, 256, None, None),
        (0.3, 0.2, 256, None, None),         # below the target: augment less
        (0.0, -0.5, 256, None, None),        # cannot go below 0
        (0.9999, 1.0, 2048, None, None),     # nor above 1
        (0.42, 0.6, 256, None, None),        # on target: leave p alone
        (0.5, 0.75, 1000, 0.7, 10_000),      # another target and ramp
        (0.5, 0.65, 1000, 0.7, 10_000),
        (0.25, 0.9, 64, None, 1_000),
    ]
    for p, r_t, images, target, ramp in cases:
        kwargs = {}
        if target is not None:
            kwargs["target"] = target
        if ramp is not None:
            kwargs["ramp_images"] = ramp
        got = _p_value(student(p, r_t, images, **kwargs))
        want = reference(p, r_t, images, **kwargs)
        t, rmp = target if target is not None else 0.6, ramp if ramp is not None else 500_000
        expect(abs(got - want) < 1e-12,
               f"p = {p}, r_t = {r_t}, {images} images since the last adjustment (target {t}, "
               f"ramp {rmp:,} images): the new p is {want:.6g}, got {got:.6g}{_ada_hint(got, p, r_t, images, t, rmp)}")

    # Driven by a whole run of r_t values: 500 adjustments of 4 batches of 64 images.
    gen = torch.Generator().manual_seed(35)
    r_ts = (torch.rand(500, generator=gen, dtype=torch.float64) * 0.5 + 0.45).tolist()
    p_mine = p_ref = 0.0
    for r_t in r_ts:
        p_mine, p_ref = _p_value(student(p_mine, r_t, 256)), reference(p_ref, r_t, 256)
    expect(abs(p_mine - p_ref) < 1e-9,
           f"after 500 adjustments driven by random r_t values p should be {p_ref:.6f}, got {p_mine:.6f}")


# --- written questions (marked by hand) -------------------------------------------------------

written("q3.1", notebook=NOTEBOOK, prompt="Why must T be differentiable for DiffAugment, and not for "
                                          "augmenting the reals only?")
written("q3.2", notebook=NOTEBOOK, prompt="Why does augmenting the reals alone leak T into G's samples?")
