"""Counting a model's cost: multiply-accumulates (MACs) and parameters.

MACs are counted the way ``torchprofile.profile_macs`` counts them, which is how the
GAN Compression paper reports its numbers (the CycleGAN horse2zebra generator is
56.8 GMACs at 1x3x256x256):

- convolution and transposed convolution: ``output elements * in_channels/groups * kh*kw``
  (for a transposed conv this is per *output* element, as if the zero-inserted input
  were convolved, so a stride-2 transposed conv counts 4x its useful work; we keep the
  convention so our numbers compare with the papers');
- linear: ``output elements * in_features`` (``in * out`` per row);
- biases, normalisation layers, activations, padding and additions are not counted.
  (torchprofile also adds one MAC per output element of an *affine* norm layer; that is
  under 0.1% of a CycleGAN generator, which has none, and small for the DCGANs here.)

The counts come from forward hooks on ``Conv*``/``ConvTranspose*``/``Linear`` modules,
so layers called through the functional API inside ``forward`` are not seen.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):  # Conv1/2/3d and ConvTranspose1/2/3d
        # The channels actually fed in (not module.in_channels), so that subclasses which
        # slice their weight to fewer channels are counted at the width they ran at.
        in_per_group = inputs[0].shape[1] // module.groups
        return output.numel() * in_per_group * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * inputs[0].shape[-1]
    return 0


@torch.no_grad()
def count_macs(model: nn.Module, input_size) -> int:
    """MACs of one forward pass of ``model`` on an input of shape ``input_size``.

    ``input_size`` is the full input shape including the batch, e.g. ``(1, 3, 256, 256)``
    for a CycleGAN generator or ``(1, 128)`` for a DCGAN generator's latent; the count is
    for the whole batch. A tensor is also accepted and used as the input.
    The model runs once in eval mode (so BatchNorm statistics are not touched) on zeros
    of its own dtype and device; each module's train/eval flag is restored afterwards.
    """
    param = next(model.parameters(), None)
    if torch.is_tensor(input_size):
        x = input_size
    else:
        x = torch.zeros(*input_size,
                        dtype=param.dtype if param is not None else torch.float32,
                        device=param.device if param is not None else "cpu")

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += _layer_macs(module, inputs, output)

    flags = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.training = training
    return int(total)


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once; buffers not counted)."""
    return sum(p.numel() for p in model.parameters())
