"""A weight-shared "once-for-all" supernet of mobile-ResNet generators (GAN Compression).

One set of weights holds every subnet: a subnet with k channels in a layer uses the first
k filters of that layer. Four small layers do the slicing; each subclasses the torch layer
it slices and is called as a module, so forward hooks (distillation features, and
``count_macs``) see the width it actually ran at:

===========================  =====================================  ===================
layer                        weight                                 a subnet uses
===========================  =====================================  ===================
``SuperConv2d``              ``[out, in, kh, kw]``                  ``weight[:out, :in]``
``SuperConvTranspose2d``     ``[in, out, kh, kw]`` (transposed!)    ``weight[:in, :out]``
``SuperDepthwiseConv2d``     ``[channels, 1, kh, kw]``              ``weight[:c]``, c groups
``SuperSeparableConv2d``     depthwise, InstanceNorm, pointwise     both of the above
===========================  =====================================  ===================

The input width of each layer is whatever arrives (``x.shape[1]``); the output width is
an argument of ``forward`` (``None``: all the channels the layer was built with). The
norms have no parameters to slice (``FastInstanceNorm2d`` runs at any width).

The supernet's config is GAN Compression's 8 widths, in ngf units (see
``course_lib.models.mobile_resnet``): stem, down1, down2 (= the residual trunk), the inner
width of blocks 1-3, 4-6 and 7-9, up1, up2. Each position takes one of ``choices``;
by default CycleGAN's {64, 48, 32, 24, 16} scaled to the supernet's ``ngf``, so an ngf-16
supernet (for a small in-course teacher) chooses from {16, 12, 8, 6, 4}.

    supernet = SuperMobileResnetGenerator(ngf=16)
    rng = random.Random(0)
    for config in sample_configs(supernet.space, rng, "sandwich"):   # one training step
        fake = supernet(x, config)                                   # [N, 3, H, W]
    student = export_subnet(supernet, (8, 8, 8, 4, 8, 8, 4, 4))      # a plain, thin model

``export_subnet`` copies the first-k slices into a ``MobileResnetGenerator`` whose layers
physically have those widths; it computes what the supernet computes at that config (to
float rounding: its norms are torch's ``InstanceNorm2d``, the supernet's the same math by
another kernel, ``course_lib.models.norm``).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.compress.profile import count_macs
from course_lib.models.mobile_resnet import (N_WIDTHS, MobileResnetGenerator, block_groups,
                                             check_widths, layer_channels)
from course_lib.models.norm import FastInstanceNorm2d
from course_lib.models.registry import register_model

CYCLEGAN_CHOICES = (64, 48, 32, 24, 16)  # per-layer width choices of GAN Compression's CycleGAN
SAMPLING = ("random", "sandwich")

Config = tuple[int, ...]


class SuperConv2d(nn.Conv2d):
    """A conv that runs on the first ``x.shape[1]`` input and first ``out_channels`` output channels."""

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        out = self.out_channels if out_channels is None else out_channels
        weight = self.weight[:out, :x.shape[1]]                      # [out, in, kh, kw]
        bias = None if self.bias is None else self.bias[:out]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)


class SuperConvTranspose2d(nn.ConvTranspose2d):
    """A transposed conv sliced the same way; its weight is ``[in, out, kh, kw]``, so ``[:in, :out]``."""

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        out = self.out_channels if out_channels is None else out_channels
        weight = self.weight[:x.shape[1], :out]                      # [in, out, kh, kw]
        bias = None if self.bias is None else self.bias[:out]
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding,
                                  self.output_padding, 1, self.dilation)


class SuperDepthwiseConv2d(nn.Conv2d):
    """A depthwise conv (one kxk filter per channel) on the first ``x.shape[1]`` channels."""

    def __init__(self, channels: int, kernel_size: int, bias: bool = False):
        super().__init__(channels, channels, kernel_size, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.weight[:c]                                     # [c, 1, kh, kw]
        bias = None if self.bias is None else self.bias[:c]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups=c)


class SuperSeparableConv2d(nn.Sequential):
    """depthwise kxk, InstanceNorm, pointwise 1x1 to ``out_channels``; the layout of
    ``course_lib.models.mobile_resnet.SeparableConv2d``, so state-dict keys match."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            SuperDepthwiseConv2d(in_channels, kernel_size),
            FastInstanceNorm2d(in_channels),
            SuperConv2d(in_channels, out_channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        depthwise, norm, pointwise = self
        return pointwise(norm(depthwise(x)), out_channels)


class SuperMobileResnetBlock(nn.Module):
    """x + [pad, sep-conv trunk->inner, IN, ReLU, pad, sep-conv inner->trunk, IN](x).

    ``forward(x, inner)``: x ``[N, trunk, H, W]`` with trunk <= dim; the block's hidden
    width is ``inner`` channels (<= dim); the output has x's shape.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), SuperSeparableConv2d(dim, dim), FastInstanceNorm2d(dim),  # 0-2
            nn.ReLU(True),                                                                    # 3
            nn.ReflectionPad2d(1), SuperSeparableConv2d(dim, dim), FastInstanceNorm2d(dim),  # 4-6
        )

    def forward(self, x: torch.Tensor, inner: int | None = None) -> torch.Tensor:
        pad1, conv1, norm1, relu, pad2, conv2, norm2 = self.conv_block
        h = relu(norm1(conv1(pad1(x), inner)))
        h = norm2(conv2(pad2(h), x.shape[1]))      # back to the trunk width, for the sum
        return x + h


def default_choices(ngf: int) -> tuple[int, ...]:
    """CycleGAN's width choices {64, 48, 32, 24, 16} scaled to ``ngf`` (largest first, no repeats)."""
    scaled = (max(1, round(c * ngf / 64)) for c in CYCLEGAN_CHOICES)
    return tuple(sorted(set(scaled), reverse=True))


@register_model
class SuperMobileResnetGenerator(nn.Module):
    """The supernet: a mobile-ResNet generator at full width ``ngf`` whose layers can run narrower.

    ``forward(x, config=None)``: images ``[N, input_nc, H, W]`` in [-1, 1] (H, W multiples of
    4) -> ``[N, output_nc, H, W]`` in [-1, 1], computed by the subnet ``config`` (8 widths in
    ngf units, each at most ``ngf``; ``None`` = the largest config).

    ``space`` is the search space: for each of the 8 positions, the widths it may take
    (``choices``, largest first). Module names are those of ``ResnetGenerator`` and
    ``MobileResnetGenerator`` (``model.9`` is the trunk input, ``model.12``/``15``/``18``
    the outputs of blocks 3, 6, 9 when there are 9 blocks). All constructor arguments are
    JSON-able, so a checkpoint can rebuild the supernet from ``{class, kwargs}``.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 choices: Sequence[int] | None = None):
        super().__init__()
        if n_blocks < 3:
            raise ValueError(f"n_blocks must be at least 3 (three groups of blocks), got {n_blocks}")
        choices = default_choices(ngf) if choices is None else tuple(sorted(set(choices), reverse=True))
        if not choices or not all(isinstance(c, int) and 1 <= c <= ngf for c in choices):
            raise ValueError(f"choices must be ints between 1 and ngf={ngf}, got {choices!r}")
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.choices = choices
        self.space: tuple[tuple[int, ...], ...] = (choices,) * N_WIDTHS
        stem, down1, trunk, _, _, _, up1, up2 = layer_channels((ngf,) * N_WIDTHS)
        norm = FastInstanceNorm2d  # affine-free, so one norm serves every width
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), SuperConv2d(input_nc, stem, 7, bias=False), norm(stem),
            nn.ReLU(True),                                                                 # 0-3
            SuperConv2d(stem, down1, 3, stride=2, padding=1, bias=False), norm(down1),
            nn.ReLU(True),                                                                 # 4-6
            SuperConv2d(down1, trunk, 3, stride=2, padding=1, bias=False), norm(trunk),
            nn.ReLU(True),                                                                 # 7-9
        ]
        layers += [SuperMobileResnetBlock(trunk) for _ in range(n_blocks)]
        layers += [
            SuperConvTranspose2d(trunk, up1, 3, stride=2, padding=1, output_padding=1, bias=False),
            norm(up1), nn.ReLU(True),
            SuperConvTranspose2d(up1, up2, 3, stride=2, padding=1, output_padding=1, bias=False),
            norm(up2), nn.ReLU(True),
            nn.ReflectionPad2d(3), SuperConv2d(up2, output_nc, 7), nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)
        # Which config position sets each sliced layer's output width, by index in self.model.
        self.slots: dict[int, int] = {1: 0, 4: 1, 7: 2, 10 + n_blocks: 6, 13 + n_blocks: 7}
        self.slots.update({10 + i: g for i, g in enumerate(block_groups(n_blocks))})

    @property
    def largest(self) -> Config:
        return tuple(max(c) for c in self.space)

    @property
    def smallest(self) -> Config:
        return tuple(min(c) for c in self.space)

    def check_config(self, config: Sequence[int]) -> Config:
        """``config`` as a tuple, or a ValueError saying which width is out of range."""
        config = check_widths(config)
        too_wide = [i for i, w in enumerate(config) if w > self.ngf]
        if too_wide:
            raise ValueError(f"config {config} has widths above the supernet's ngf={self.ngf} "
                             f"at positions {too_wide}; each width must be 1..{self.ngf}")
        return config

    def forward(self, x: torch.Tensor, config: Sequence[int] | None = None) -> torch.Tensor:
        channels = layer_channels(self.largest if config is None else self.check_config(config))
        for i, layer in enumerate(self.model):
            slot = self.slots.get(i)
            x = layer(x) if slot is None else layer(x, channels[slot])
        return x

    def with_config(self, config: Sequence[int]) -> "Subnet":
        """A module that runs this supernet at ``config`` (weights shared, not copied)."""
        return Subnet(self, config)


class Subnet(nn.Module):
    """``supernet`` fixed at one config, as a one-argument module ``x -> supernet(x, config)``.

    The weights are the supernet's (nothing is copied), so it costs nothing to make; use it
    where a plain ``model(x)`` is expected: ``count_macs``, ``measure_latency``, a widget.
    """

    def __init__(self, supernet: SuperMobileResnetGenerator, config: Sequence[int]):
        super().__init__()
        self.supernet = supernet
        self.config = supernet.check_config(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.config)


def sample_config(space: Sequence[Sequence[int]], rng: random.Random) -> Config:
    """One config drawn uniformly: each position independently picks one of its widths."""
    return tuple(rng.choice(tuple(widths)) for widths in space)


def sample_configs(space: Sequence[Sequence[int]], rng: random.Random,
                   strategy: str = "random") -> list[Config]:
    """The configs to train in one supernet step.

    ``"random"``: one random config (GAN Compression). ``"sandwich"``: the largest, the
    smallest and one random config (Anycost GAN, after slimmable networks), so the two
    extremes of the space are trained every step. Seed ``rng`` with the run's seed so
    every DDP rank draws the same configs.
    """
    if strategy not in SAMPLING:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of {', '.join(SAMPLING)}")
    if strategy == "random":
        return [sample_config(space, rng)]
    return [tuple(max(w) for w in space), tuple(min(w) for w in space), sample_config(space, rng)]


def export_subnet(supernet: SuperMobileResnetGenerator, config: Sequence[int]) -> MobileResnetGenerator:
    """A ``MobileResnetGenerator`` with ``config``'s widths holding the supernet's shared weights.

    Every layer of the supernet uses the first k entries along each axis of its weight
    (``[:out, :in]``, a transposed conv's ``[:in, :out]``, a depthwise conv's ``[:c]``), and
    the plain model has the same module names, so each of its tensors is the supernet's
    tensor cut to its own shape. Its output equals ``supernet(x, config)`` up to float
    rounding (about 1e-6; see the module docstring). Returns a new
    model (on the supernet's device, in the supernet's train/eval mode); the supernet is
    not changed.
    """
    config = supernet.check_config(config)
    with torch.device("meta"):
        student = MobileResnetGenerator(input_nc=supernet.input_nc, output_nc=supernet.output_nc,
                                        widths=config, n_blocks=supernet.n_blocks)
    shared = supernet.state_dict()
    state = {}
    for key, target in student.state_dict().items():
        source = shared[key]
        state[key] = source[tuple(slice(0, n) for n in target.shape)].clone()
    student.load_state_dict(state, assign=True)
    return student.train(supernet.training)


def config_to_str(config: Sequence[int]) -> str:
    """GAN Compression's notation: ``(16, 16, 32, 16, 32, 32, 16, 16)`` -> ``"16_16_32_16_32_32_16_16"``."""
    return "_".join(str(w) for w in check_widths(config))


def config_from_str(text: str) -> Config:
    """The inverse of :func:`config_to_str`; a ValueError if ``text`` is not 8 ints joined by ``_``."""
    try:
        return check_widths(tuple(int(part) for part in text.strip().split("_")))
    except ValueError:
        raise ValueError(f"a config string is {N_WIDTHS} positive ints joined by '_', "
                         f"e.g. 16_16_32_16_32_32_16_16; got {text!r}") from None


def config_macs(supernet: SuperMobileResnetGenerator, input_size=(1, 3, 256, 256)
                ) -> Callable[[Sequence[int]], int]:
    """A function ``config -> MACs`` of the supernet's subnets on ``input_size`` ``(N, C, H, W)``.

    A search asks for thousands of configs, so each is counted cheaply and remembered:
    every layer of this fully convolutional generator outputs a fixed fraction (1, 1/2 or
    1/4 per side) of the input's H and W when they are multiples of 4, so its MACs are
    proportional to N*H*W. They are counted by ``count_macs`` on an 8x8 image (a
    millisecond) and scaled; the proportionality is checked against 16x16 first. The
    count runs on a fresh, untrained twin of the supernet (MACs do not depend on weights),
    so hooks on the supernet (a ``Distiller``'s) never see these probe passes.
    """
    n, _, h, w = input_size
    if h % 4 or w % 4:
        raise ValueError(f"input H and W must be multiples of 4 (two stride-2 downsamplings), "
                         f"got {input_size}")
    twin = SuperMobileResnetGenerator(supernet.input_nc, supernet.output_nc, supernet.ngf,
                                      supernet.n_blocks, list(supernet.choices))
    probe = (1, supernet.input_nc, 8, 8)

    def count(config: Config, size=probe) -> int:
        return count_macs(twin.with_config(config), size)

    larger = count(twin.largest, (1, supernet.input_nc, 16, 16))
    assert larger == 4 * count(twin.largest), "MACs are not proportional to the image area"
    cache: dict[Config, int] = {}

    def macs(config: Sequence[int]) -> int:
        key = twin.check_config(config)
        if key not in cache:
            cache[key] = count(key) * n * h * w // 64
        return cache[key]

    return macs


def sliced_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_channels: int,
                transposed: bool = False, stride: int = 1, padding: int = 0,
                output_padding: int = 0) -> torch.Tensor:
    """A super layer's forward as one function (notebook 06's exercise): the first
    ``x.shape[1]`` input and first ``out_channels`` output channels of a conv
    (``weight[:out, :in]``) or of a transposed conv (``weight[:in, :out]``)."""
    bias = None if bias is None else bias[:out_channels]
    if transposed:
        return F.conv_transpose2d(x, weight[:x.shape[1], :out_channels], bias, stride, padding,
                                  output_padding)
    return F.conv2d(x, weight[:out_channels, :x.shape[1]], bias, stride, padding)


def draw_configs(space: Sequence[Sequence[int]], n: int, generator: torch.Generator) -> list[Config]:
    """``n`` configs, each position drawn uniformly and independently from its widths with
    ``generator`` (notebook 06's exercise; :func:`sample_config` does the same with a
    ``random.Random``)."""
    return [tuple(int(widths[int(torch.randint(len(widths), (), generator=generator))])
                  for widths in space) for _ in range(n)]
