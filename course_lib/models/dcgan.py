"""DCGAN generator and discriminator for 32x32 and 64x64 images (Radford et al., 2016).

Images are float tensors ``[N, 3, H, W]`` in ``[-1, 1]``; latents are ``[N, z_dim]``.

Each network is one ``nn.Sequential`` that reads top to bottom: every stride-2 layer
halves (D) or doubles (G) the resolution, and the width halves (G) or doubles (D) with it.

Sizes, measured with ``course_lib.compress.profile.count_macs`` / ``count_params``
(MACs are per image: G at input ``[1, z_dim]``, D at ``[1, 3, H, W]``; z_dim = 128):

==========  =====  =====  ==========  ===========
network     width  size   params      MACs
==========  =====  =====  ==========  ===========
G           32     32x32     427,971   22,544,384
G           64     32x32   1,183,619   78,643,200
G           32     64x64   1,214,915  115,343,360
G           64     64x64   3,806,083  432,013,312
D           32     32x32     167,841    4,589,568
D           64     32x32     663,361   17,567,744
D           32     64x64     694,689   26,742,784
D           64     64x64   2,765,633  103,817,216
==========  =====  =====  ==========  ===========

MACs follow torchprofile's convention, which counts a transposed conv per *output*
element. (A CycleGAN generator is about 56.8 GMACs per 256x256 image: some 2,500 of
these 32x32 generators at width 32.) The tests assert these numbers.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib.models.registry import register_model

SIZES = (32, 64)


def _check_size(image_size: int) -> None:
    if image_size not in SIZES:
        raise ValueError(f"image_size must be one of {SIZES}, got {image_size}")


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    """Double the resolution: [N, c_in, s, s] -> [N, c_out, 2s, 2s]."""
    # No conv bias: BatchNorm right after it would cancel it.
    return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register_model
class DCGANGenerator(nn.Module):
    """z ``[N, z_dim]`` -> images ``[N, out_channels, image_size, image_size]`` in [-1, 1].

    Layers (image_size 32; 64 adds one more up-block, starting at width 8*ngf)::

        z (1x1)  --ConvT 4x4-->  4ngf x 4x4    BN ReLU
                 --ConvT s2-->   2ngf x 8x8    BN ReLU
                 --ConvT s2-->    ngf x 16x16  BN ReLU
                 --ConvT s2-->      3 x 32x32  Tanh
    """

    def __init__(self, z_dim: int = 128, ngf: int = 64, image_size: int = 32,
                 out_channels: int = 3):
        super().__init__()
        _check_size(image_size)
        self.z_dim = z_dim
        self.image_size = image_size
        # Widths of the 4x4, 8x8, ... feature maps, before the final RGB layer.
        widths = [ngf * 4, ngf * 2, ngf] if image_size == 32 else [ngf * 8, ngf * 4, ngf * 2, ngf]

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], 4, stride=1, padding=0, bias=False),  # 1 -> 4
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += _up(c_in, c_out)
        layers += [nn.ConvTranspose2d(widths[-1], out_channels, 4, stride=2, padding=1),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


def _down(c_in: int, c_out: int, norm: bool, sn: bool) -> list[nn.Module]:
    """Halve the resolution: [N, c_in, s, s] -> [N, c_out, s/2, s/2]."""
    conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)
    layers: list[nn.Module] = [_maybe_sn(conv, sn)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


def _maybe_sn(layer: nn.Module, sn: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if sn else layer


@register_model
class DCGANDiscriminator(nn.Module):
    """images ``[N, in_channels, image_size, image_size]`` -> logits ``[N]``.

    A positive logit means "real". Layers (image_size 32; 64 adds one more down-block,
    ending at width 8*ndf)::

        3 x 32x32  --Conv s2-->   ndf x 16x16  LeakyReLU   (no norm on the input layer)
                   --Conv s2-->  2ndf x 8x8    BN LeakyReLU
                   --Conv s2-->  4ndf x 4x4    BN LeakyReLU
                   --Conv 4x4-->    1 x 1x1    (the logit)

    ``spectral_norm=True`` wraps every conv in spectral normalisation and drops the
    BatchNorms (as in SNGAN): SN already controls D's Lipschitz constant.
    """

    def __init__(self, ndf: int = 64, image_size: int = 32, in_channels: int = 3,
                 spectral_norm: bool = False):
        super().__init__()
        _check_size(image_size)
        self.image_size = image_size
        widths = [ndf, ndf * 2, ndf * 4] if image_size == 32 else [ndf, ndf * 2, ndf * 4, ndf * 8]
        norm = not spectral_norm

        layers = _down(in_channels, widths[0], norm=False, sn=spectral_norm)
        for c_in, c_out in zip(widths, widths[1:]):
            layers += _down(c_in, c_out, norm=norm, sn=spectral_norm)
        layers.append(_maybe_sn(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=0), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])
