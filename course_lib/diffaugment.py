"""Differentiable Augmentation (Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020).

The same random transform T is applied to real *and* fake images, in *both* the D step
and the G step: D never sees an un-augmented image, so it cannot memorise the few
training images, and because every op is differentiable in x the generator's gradient
flows back through T.

Images are float tensors ``[N, C, H, W]`` in [-1, 1]. Every op draws its random numbers
per sample (one brightness, one shift, one cutout position per image), works on the
whole batch at once (no Python loop over images), and returns a tensor of the same
shape. When a ``torch.Generator`` is given, all randomness comes from it (drawn on the
CPU, then moved to x's device) so a seed reproduces the draws on any device.

=========== ===================================================================
op          what it does to each image
=========== ===================================================================
brightness  x + (u - 0.5),                       u ~ U(0, 1)
saturation  (x - m_c) * 2u + m_c,                u ~ U(0, 1), m_c: mean over channels (per pixel)
contrast    (x - m) * (u + 0.5) + m,             u ~ U(0, 1), m: mean over C, H, W
translation shift by (dy, dx), |dy| <= int(H*ratio + 0.5), |dx| <= int(W*ratio + 0.5),
            integers; pixels shifted in from outside are 0
cutout      zero an int(H*ratio + 0.5) x int(W*ratio + 0.5) rectangle whose centre is
            anywhere in the image, clipped at the borders
=========== ===================================================================
"""
from __future__ import annotations

import torch


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U(0, 1) number per sample, shape [N, 1, 1, 1], x's dtype and device."""
    u = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, generator=generator)
    return u.to(x.device)


def _randint(low: int, high: int, n: int, generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """n integers in [low, high), shape [n]."""
    return torch.randint(low, high, (n,), generator=generator).to(device)


def rand_brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add U(-0.5, 0.5) to every pixel of an image. x: [N, C, H, W] -> same shape."""
    return x + (_uniform(x, generator) - 0.5)


def rand_saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each pixel's colour by U(0, 2) around its grey level (its channel mean)."""
    grey = x.mean(dim=1, keepdim=True)
    return (x - grey) * (2 * _uniform(x, generator)) + grey


def rand_contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image by U(0.5, 1.5) around its mean over C, H and W."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[n, :, i, j] = x[n, :, i + dy[n], j + dx[n]], and 0 where that is outside.

    dy, dx: [N] integers. One gather over the flattened H*W positions (rather than a
    roll per image) keeps it a single vectorised, differentiable op.
    """
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy.view(n, 1, 1)   # [N, H, 1]
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx.view(n, 1, 1)   # [N, 1, W]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)              # [N, H, W]
    src = rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)                     # [N, H, W]
    out = x.reshape(n, c, h * w).gather(2, src.view(n, 1, h * w).expand(n, c, h * w))
    return out.view(n, c, h, w) * inside.unsqueeze(1).to(x.dtype)


def rand_translation(x: torch.Tensor, ratio: float = 0.125,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``int(H*ratio + 0.5)`` rows and
    ``int(W*ratio + 0.5)`` columns either way (4 at 32x32), filling with zeros.

    x: [N, C, H, W] -> same shape; ``out[n, :, i, j] = x[n, :, i + dy_n, j + dx_n]``.
    """
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _randint(-max_dy, max_dy + 1, n, generator, x.device)
    dx = _randint(-max_dx, max_dx + 1, n, generator, x.device)
    return _shift(x, dy, dx)


def rand_cutout(x: torch.Tensor, ratio: float = 0.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero an ``int(H*ratio + 0.5)`` x ``int(W*ratio + 0.5)`` rectangle in each image.

    x: [N, C, H, W] -> same shape. The rectangle covers rows ``[c - size//2, c - size//2 +
    size)`` for a centre row c drawn from ``[0, H + (1 - size % 2))`` (likewise columns),
    clipped at the borders, so it may hang partly outside the image.
    """
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # An even-sized square has no middle pixel; the extra position keeps the coverage
    # of the first and last rows symmetric.
    cy = _randint(0, h + (1 - size_h % 2), n, generator, x.device)
    cx = _randint(0, w + (1 - size_w % 2), n, generator, x.device)
    top, left = (cy - size_h // 2).view(n, 1), (cx - size_w // 2).view(n, 1)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= top) & (rows < top + size_h)       # [N, H]
    in_cols = (cols >= left) & (cols < left + size_w)     # [N, W]
    hole = in_rows[:, :, None] & in_cols[:, None, :]      # [N, H, W]
    return x * (~hole).to(x.dtype)[:, None]


POLICIES = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def policy_tag(policy: str) -> str:
    """A policy as part of a name: ``color,translation`` -> ``color+translation``."""
    return policy.replace(",", "+")


def parse_policy(policy: str | None) -> list[str]:
    """``"color, cutout"`` -> ``["color", "cutout"]``; raises ValueError on unknown names."""
    names = [p.strip() for p in (policy or "").split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(map(repr, unknown))}; "
                         f"valid names are {', '.join(POLICIES)} (comma-separated, "
                         "or '' for no augmentation)")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 channels_first: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the ops of ``policy`` (comma-separated names from POLICIES) in order.

    x: [N, C, H, W] in [-1, 1] (or [N, H, W, C] with ``channels_first=False``) ->
    the same shape. ``policy=""`` returns x itself. Use the same call on reals and fakes,
    in the D step and in the G step.
    """
    names = parse_policy(policy)
    if not names:
        return x
    if x.dim() != 4:
        raise ValueError(f"diff_augment expects a batch of images [N, C, H, W], "
                         f"got shape {tuple(x.shape)}")
    if not channels_first:
        x = x.permute(0, 3, 1, 2)
    for name in names:
        for op in POLICIES[name]:
            x = op(x, generator=generator)
    if not channels_first:
        x = x.permute(0, 2, 3, 1)
    return x


# --- does a set of images look augmented? --------------------------------------------------

def leak_indicators(images: torch.Tensor, flat: float = 0.08, patch: int = 4) -> dict:
    """How much of T's look a set of images [N, 3, H, W] in [-1, 1] carries.

    - ``grey_patches``: share of ``patch`` x ``patch`` blocks that are flat grey (every
      value within ``flat`` of 0) — what cutout's zeroed square looks like;
    - ``grey_border``: share of border pixels (the outer 2 rows and columns) within
      ``flat`` of 0, minus the same share inside — translation's zero-filled edges;
    - ``cast_spread``: standard deviation over images of their mean colour (per channel,
      then averaged) — brightness and saturation draws give each image its own cast.
    """
    x = images.detach().float()
    grey = (x.abs() <= flat).all(1).float()                                   # [N, H, W]
    blocks = torch.nn.functional.avg_pool2d(grey[:, None], patch, stride=patch)
    border = torch.zeros_like(grey[0], dtype=torch.bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    return {
        "grey_patches": float((blocks == 1).float().mean()),
        "grey_border": float(grey[:, border].mean() - grey[:, ~border].mean()),
        "cast_spread": float(x.mean((2, 3)).std(0).mean()),
    }
