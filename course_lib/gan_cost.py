"""The cost of GANs: MACs and parameters of a small DCGAN next to well-known networks.

    rows = model_costs(ngf=32)     # list of ModelCost, cheapest first
    plot_costs(rows)               # two log-scale bar charts: MACs and parameters

Every model is built on PyTorch's ``meta`` device, where a forward pass computes shapes
but no numbers: counting ResNet-50 or the CycleGAN generator costs no time and no memory.
Architectures only, no weights (torchvision's ``weights=None``).

MACs are counted with :func:`course_lib.compress.profile.count_macs`, torchprofile's
convention, which GAN Compression (Li et al., CVPR 2020) uses: the CycleGAN horse2zebra
ResnetGenerator is 56.8 GMACs and 11.378M parameters at 1x3x256x256 in their paper.

By hand, for exercises 1.5 and 1.6 of notebook 01 (the same convention):

    conv_macs(128, 64, 4, stride=2, padding=1, size=4, transposed=True)  # (8_388_608, 8)
    training_macs(g_macs, d_macs, batch_size=64, steps=1_000)            # a whole run
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.compress.profile import count_macs, count_params


@dataclass(frozen=True)
class ModelCost:
    """One network's cost for one input: ``macs`` per forward pass of ``input_size``."""
    name: str
    role: str            # what the network does, in a few words
    input_size: tuple    # including the batch of 1
    macs: int
    params: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def input_label(self) -> str:
        if len(self.input_size) == 2:
            return f"z [{self.input_size[1]}]"
        return f"{self.input_size[-2]}x{self.input_size[-1]} image"


def measure(name: str, role: str, build, input_size) -> ModelCost:
    """Build a model with ``build()`` on the meta device and count its MACs and params."""
    with torch.device("meta"):
        model: nn.Module = build()
    return ModelCost(name, role, tuple(input_size), count_macs(model, input_size), count_params(model))


def model_costs(ngf: int = 32, z_dim: int = 128, image_size: int = 32) -> list[ModelCost]:
    """This course's DCGAN generator, MobileNetV2 and ResNet-50 at 224x224, and the
    CycleGAN ResnetGenerator at 256x256; sorted by MACs (cheapest first)."""
    from torchvision.models import mobilenet_v2, resnet50

    from course_lib.models import DCGANGenerator, ResnetGenerator

    rows = [
        measure(f"DCGAN G (ngf {ngf}, {image_size}x{image_size})", "this notebook's generator",
                lambda: DCGANGenerator(z_dim=z_dim, ngf=ngf, image_size=image_size), (1, z_dim)),
        measure("MobileNetV2", "mobile classifier", lambda: mobilenet_v2(weights=None), (1, 3, 224, 224)),
        measure("ResNet-50", "classifier", lambda: resnet50(weights=None), (1, 3, 224, 224)),
        measure("CycleGAN ResnetGenerator", "image-to-image GAN generator",
                lambda: ResnetGenerator(), (1, 3, 256, 256)),
    ]
    return sorted(rows, key=lambda r: r.macs)


def conv_macs(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
              size: int, transposed: bool = False, output_padding: int = 0) -> tuple[int, int]:
    """``(MACs, output size)`` of one square ``Conv2d`` (or ``ConvTranspose2d``) layer,
    groups 1, on one ``size`` x ``size`` input, counted as :func:`count_macs` counts them:
    every output element costs ``in_channels * kernel_size**2`` MACs, also for a
    transposed conv (torchprofile's convention)."""
    if min(in_channels, out_channels, kernel_size, stride, size) < 1 or min(padding, output_padding) < 0:
        raise ValueError("channels, kernel_size, stride and size must be >= 1; padding >= 0")
    if transposed:
        out = (size - 1) * stride - 2 * padding + kernel_size + output_padding
    else:
        out = (size + 2 * padding - kernel_size) // stride + 1
    if out < 1:
        raise ValueError(f"a {kernel_size}x{kernel_size} kernel leaves no output at input size {size}")
    return out * out * out_channels * in_channels * kernel_size * kernel_size, out


# One training step of notebook 01's exercise 1.3 (B images), with a backward pass taken
# to cost twice its forward pass (a gradient for the activations and one for the weights):
#   G forward once on B latents, its backward in the G step:   3 * G * B
#   D forward + backward on B reals and B detached fakes:       6 * D * B
#   D forward + backward (into the fakes) in the G step:        3 * D * B
FORWARD_BACKWARD = 3


def training_macs(g_macs: int, d_macs: int, batch_size: int, steps: int) -> int:
    """MACs of a whole GAN training run of ``steps`` steps of ``batch_size`` images, from
    the per-image forward MACs of G and D (see the accounting above)."""
    if min(g_macs, d_macs) < 0 or min(batch_size, steps) < 0:
        raise ValueError("MACs, batch_size and steps must be >= 0")
    per_image = FORWARD_BACKWARD * g_macs + 3 * FORWARD_BACKWARD * d_macs
    return int(per_image * batch_size * steps)


def markdown_table(rows: list[ModelCost], relative_to: str | None = None) -> str:
    """A Markdown table of ``rows``; with ``relative_to`` (a row name) a column says how
    many times that row's MACs each model costs."""
    base = next((r for r in rows if r.name == relative_to), None)
    head = "| model | role | input | MACs | params |" + (f" MACs ÷ {base.name} |" if base else "")
    lines = [head, "|---" * (5 + (base is not None)) + "|"]
    for r in rows:
        line = f"| {r.name} | {r.role} | {r.input_label} | {format_count(r.macs)} | {format_count(r.params)} |"
        if base:
            line += f" {r.macs / base.macs:,.1f}× |"
        lines.append(line)
    return "\n".join(lines)


def format_count(n: float) -> str:
    """4_089_184_256 -> '4.09 G', 3_504_872 -> '3.50 M', 950 -> '950'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:g}"


def plot_costs(rows: list[ModelCost], axes=None, highlight: str | None = None):
    """Two horizontal log-scale bar charts (MACs, parameters); returns the axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 0.6 * len(rows) + 1.2), sharey=True)
    names = [r.name for r in rows]
    colors = ["tab:orange" if r.name == highlight or (highlight is None and "GAN" in r.name)
              else "tab:blue" for r in rows]
    for ax, values, label in ((axes[0], [r.macs for r in rows], "MACs per forward pass"),
                              (axes[1], [r.params for r in rows], "parameters")):
        bars = ax.barh(names, values, color=colors)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_xlim(min(values) / 3, max(values) * 30)
        for bar, value in zip(bars, values):
            ax.text(value * 1.15, bar.get_y() + bar.get_height() / 2, format_count(value),
                    va="center", fontsize=8)
        ax.grid(axis="x", alpha=0.3, which="both")
    axes[0].invert_yaxis()
    return axes
