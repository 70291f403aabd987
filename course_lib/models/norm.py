"""Instance normalisation computed as a GroupNorm with one channel per group.

The numbers are those of ``nn.InstanceNorm2d(affine=False)``: each channel of each sample is
normalised over H and W (``F.group_norm`` with C groups does exactly that; outputs agree to
about 1e-6). Only the kernel differs. Torch's InstanceNorm reshapes ``[N, C, H, W]`` into a
batch norm over ``[1, N*C, H, W]``, whose CPU kernel is slow for these shapes: on this
course's CPU, one thread, a 16x256x256 map took 7.6 ms that way and 1.4 ms as a group norm
(forward and backward: 18.9 vs 11.2 ms). In a thin student the norms can cost more time
than the convs.

- ``FastInstanceNorm2d`` also runs at any channel count (torch's warns when the input is
  narrower than ``num_features``), so the weight-shared supernet uses it.
- The course's plain generators (``ResnetGenerator``, ``MobileResnetGenerator``) keep
  torch's ``InstanceNorm2d``: FX quantization (``course_lib.compress``'s int8 path) knows
  that module and quantizes it, while it would run a traced ``group_norm`` in float.
- ``with_fast_instance_norms(model)`` gives a copy with the fast kernel. Compare the
  latency of a teacher and a student with the *same* kernel (both converted, or neither),
  so that a measured speed-up is the architecture's, not a kernel's.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class FastInstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(channels)`` without affine parameters or running statistics,
    computed by ``F.group_norm``. ``[N, C, H, W] -> [N, C, H, W]``, any C.

    A subclass, so ``isinstance(m, nn.InstanceNorm2d)`` holds and state dicts are
    unchanged (it has no parameters or buffers).
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, eps=eps, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, x.shape[1], eps=self.eps)


def with_fast_instance_norms(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose affine-free ``InstanceNorm2d`` layers (without running
    statistics) are ``FastInstanceNorm2d``: the same outputs, a faster CPU kernel.
    The state dict is unchanged; ``model`` itself is not modified."""
    fast = copy.deepcopy(model)
    for parent in fast.modules():
        for name, child in parent.named_children():
            if (type(child) is nn.InstanceNorm2d and not child.affine
                    and not child.track_running_stats):
                setattr(parent, name, FastInstanceNorm2d(child.num_features, eps=child.eps))
    return fast
