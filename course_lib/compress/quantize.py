"""Post-training linear quantization of a weight tensor (simulated: quantize, de-quantize).

We use *symmetric* quantization onto the signed integers ``-q_max .. q_max`` with
``q_max = 2**(bits-1) - 1`` (so 8 bits use -127..127): zero is represented exactly, which
keeps pruned weights at zero when the two are combined, and no zero-point is needed.
"""
from __future__ import annotations

import torch


def linear_quantize(w: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Round ``w`` to ``2**bits - 1`` evenly spaced levels and map back to floats.

    w: any float tensor. The step is ``scale = max|w| / q_max`` over the whole tensor, or
    per slice along dim 0 when ``per_channel`` (the output channels of a Conv2d/Linear
    weight; note a ConvTranspose2d weight is ``[in, out, kh, kw]``). Values are rounded to
    the nearest multiple of ``scale`` and clamped to ``[-q_max*scale, q_max*scale]``.
    Returns a tensor of ``w``'s shape and dtype holding the de-quantized values.
    bits: 2..16 (1 bit has no symmetric level besides zero).
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits}")
    q_max = 2 ** (bits - 1) - 1
    if per_channel and w.dim() > 1:
        max_abs = w.detach().abs().flatten(1).amax(dim=1).view(-1, *[1] * (w.dim() - 1))
    else:
        max_abs = w.detach().abs().max()
    scale = max_abs / q_max
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero slice stays 0
    q = torch.clamp(torch.round(w / scale), -q_max, q_max)
    return q * scale
