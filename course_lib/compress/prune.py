"""Unstructured magnitude pruning: zero the smallest weights."""
from __future__ import annotations

import torch


def magnitude_prune(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``round(sparsity * w.numel())`` entries of ``w`` with the smallest |w|.

    w: any tensor; sparsity in [0, 1]. Exactly that many entries become zero (ties are
    broken by position, first ones first), so the result's sparsity is predictable.
    Returns a new tensor of ``w``'s shape; ``w`` is not modified.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    n_zero = round(sparsity * w.numel())
    order = torch.argsort(w.detach().abs().flatten(), stable=True)
    mask = torch.ones(w.numel(), dtype=w.dtype, device=w.device)
    mask[order[:n_zero]] = 0
    return w * mask.view_as(w)
