"""Image grids and curves: the results people look at."""
from __future__ import annotations

import math

import numpy as np
import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (the library's convention) -> [0, 1] for display, clamped."""
    return ((images.detach().float() + 1) / 2).clamp(0, 1)


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile ``images`` [N, C, H, W] in [-1, 1] into one uint8 array [rows*H, cols*W, 3].

    Grayscale images are repeated to RGB; ``nrow`` is the number of images per row
    (default: as square as possible).
    """
    if images.ndim != 4:
        raise ValueError(f"image_grid expects [N, C, H, W], got shape {tuple(images.shape)}")
    x = to_unit_range(images.cpu())
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    n, _, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.ones(3, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i, :3]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def show_images(images: torch.Tensor, title: str | None = None, nrow: int | None = None, ax=None,
                scale: float = 1.0):
    """Draw an image grid with matplotlib; returns the axes."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow)
    if ax is None:
        height = scale * 4 * grid.shape[0] / max(grid.shape[1], 1)
        _, ax = plt.subplots(figsize=(scale * 4, max(height, 1)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_curves(curves: dict[str, tuple], xlabel: str = "step", ylabel: str = "", title: str | None = None,
                ax=None):
    """Plot named curves ``{label: (xs, ys)}`` on one axes; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
