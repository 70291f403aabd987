"""GAN Compression's mobile ResNet generator: a CycleGAN generator with cheap residual blocks.

The layout is the official ``ResnetGenerator``'s (so the two have the same module names,
``model.0`` ... ``model.27``, and distillation can hook the same layers of both), with two
changes from GAN Compression (Li et al., CVPR 2020):

- each residual block's 3x3 convs are *separable*: a depthwise 3x3 conv (one filter per
  channel), an InstanceNorm, then a pointwise 1x1 conv that mixes channels. A 3x3 conv
  from c to c' channels costs ``9*c*c'`` MACs per pixel; the separable one ``9*c + c*c'``;
- every layer has its own width. The 8 widths are those of the GAN Compression config:

  ===  ==========================  ==========  ====================
  i    layer                       channels    module
  ===  ==========================  ==========  ====================
  0    stem conv 7x7               1 * w[0]    ``model.1``
  1    down-conv 1 (stride 2)      2 * w[1]    ``model.4``
  2    down-conv 2 = trunk width   4 * w[2]    ``model.7`` and every block's output
  3    inner width, blocks 1-3     4 * w[3]    ``model.10`` .. ``model.12``
  4    inner width, blocks 4-6     4 * w[4]    ``model.13`` .. ``model.15``
  5    inner width, blocks 7-9     4 * w[5]    ``model.16`` .. ``model.18``
  6    up-conv 1 (transposed)      2 * w[6]    ``model.19``
  7    up-conv 2 (transposed)      1 * w[7]    ``model.22``
  ===  ==========================  ==========  ====================

  The widths are in the paper's units (ngf units), so that ``widths = (64,)*8`` has the
  channel counts of an ngf-64 generator and the paper's config strings such as
  ``16_16_32_16_32_32_16_16`` read the same here. ``layer_channels`` converts them.

Images are ``[N, input_nc, H, W]`` in [-1, 1], H and W multiples of 4; the output has the
same size in [-1, 1] (tanh).

No conv directly followed by an InstanceNorm has a bias: the norm subtracts each
channel's mean, which would cancel it (the last conv, followed by tanh, keeps its bias).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from course_lib.models.registry import register_model

# Channels per unit of width for each of the 8 config positions (see the table above).
WIDTH_MULTIPLIERS = (1, 2, 4, 4, 4, 4, 2, 1)
N_WIDTHS = len(WIDTH_MULTIPLIERS)


def layer_channels(widths: Sequence[int]) -> tuple[int, ...]:
    """The 8 channel counts of the layers a config of 8 widths (ngf units) describes."""
    widths = check_widths(widths)
    return tuple(w * m for w, m in zip(widths, WIDTH_MULTIPLIERS))


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """``widths`` as a tuple of 8 positive ints, or a ValueError saying what is wrong."""
    try:
        values = tuple(widths)
    except TypeError:
        raise ValueError(f"widths must be a sequence of {N_WIDTHS} ints, got {widths!r}") from None
    if len(values) != N_WIDTHS or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(
            f"widths must be {N_WIDTHS} positive ints (stem, down1, down2/trunk, blocks 1-3, "
            f"blocks 4-6, blocks 7-9, up1, up2), got {widths!r}")
    return values


def block_groups(n_blocks: int) -> tuple[int, ...]:
    """Which inner-width position (3, 4 or 5) each residual block uses: thirds, the rest last."""
    third = n_blocks // 3
    return (3,) * third + (4,) * third + (5,) * (n_blocks - 2 * third)


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class SeparableConv2d(nn.Sequential):
    """depthwise kxk conv, InstanceNorm, pointwise 1x1: ``[N, c_in, H, W] -> [N, c_out, H', W']``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, kernel_size, groups=in_channels, bias=False),
            _norm(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


class MobileResnetBlock(nn.Module):
    """x + [pad, sep-conv dim->inner, IN, ReLU, pad, sep-conv inner->dim, IN](x); same shape out."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), SeparableConv2d(dim, inner), _norm(inner), nn.ReLU(True),  # 0-3
            nn.ReflectionPad2d(1), SeparableConv2d(inner, dim), _norm(dim),                    # 4-6
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register_model
class MobileResnetGenerator(nn.Module):
    """A mobile-ResNet generator with 8 per-layer widths; see the module docstring.

    Constructed from plain JSON-able arguments only (ints and a list of ints), so a
    checkpoint can store ``{"class": "MobileResnetGenerator", "kwargs": {...}}`` and
    rebuild it. ``widths`` defaults to the full ngf-64 widths.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3,
                 widths: Sequence[int] = (64,) * N_WIDTHS, n_blocks: int = 9):
        super().__init__()
        if n_blocks < 3:
            raise ValueError(f"n_blocks must be at least 3 (three groups of blocks), got {n_blocks}")
        self.widths = check_widths(widths)
        stem, down1, trunk, *inner, up1, up2 = layer_channels(self.widths)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, stem, 7, bias=False), _norm(stem),
            nn.ReLU(True),                                                                    # 0-3
            nn.Conv2d(stem, down1, 3, stride=2, padding=1, bias=False), _norm(down1), nn.ReLU(True),  # 4-6
            nn.Conv2d(down1, trunk, 3, stride=2, padding=1, bias=False), _norm(trunk), nn.ReLU(True),  # 7-9
        ]
        layers += [MobileResnetBlock(trunk, inner[g - 3]) for g in block_groups(n_blocks)]
        layers += [
            nn.ConvTranspose2d(trunk, up1, 3, stride=2, padding=1, output_padding=1, bias=False),
            _norm(up1), nn.ReLU(True),
            nn.ConvTranspose2d(up1, up2, 3, stride=2, padding=1, output_padding=1, bias=False),
            _norm(up2), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(up2, output_nc, 7), nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
