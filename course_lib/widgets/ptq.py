"""Notebook 09's widget: compress a trained generator with controls, see what changes.

    explorer = compression_explorer(G, evaluator, calibration)
    explorer       # method, weight bits, activation bits, sparsity -> samples and figures

The grid shows the same latents (fixed seeds) before and after; the caption gives FD,
precision, recall, density and coverage of the first latent set, the model's size and
its CPU latency next to the uncompressed model's. Quantization here is *simulated*
(floats rounded to the grid), so it changes quality and the storage size but not the
speed; channel pruning and the real int8 of ``course_lib.compress.int8`` change speed.
The measuring is :mod:`course_lib.ptq`'s; this module only wires controls to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import ptq
from course_lib.compress import size_report
from course_lib.plotting import image_grid
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes

WEIGHT_BITS = (32, 8, 7, 6, 5, 4, 3, 2, 1)
ACT_BITS = (32, 8, 6, 4, 3, 2)


@dataclass
class CompressionState:
    """What the explorer shows: the setting, the first latent set's figures, the size
    report and the latency of the compressed model against the original's (ms)."""
    method: str
    weight_bits: int
    act_bits: int
    sparsity: float
    figures: dict
    size: dict
    ms: float
    ms_original: float
    caption: str


def explorer_view(G, evaluator: ptq.Evaluator, method: str, weight_bits: int, act_bits: int,
                  sparsity: float, calibration=None, n_show: int = 16, repeats: int = 3,
                  threads: int = 1) -> tuple[CompressionState, torch.Tensor]:
    """The compressed model's state and its samples [n_show, 3, S, S] on the first
    latents (pure: the tests call it directly)."""
    z = evaluator.latents[0]
    model = ptq.compress(G, method, weight_bits=weight_bits, act_bits=act_bits,
                         sparsity=sparsity, calibration=calibration, example_input=z[:8])
    figures = evaluator.figures(model, seeds=1)[0]
    bits = weight_bits if method in ("per_tensor", "per_channel", "kmeans", "combined") else 32
    size = size_report(model, bits=bits)
    timing = ptq.speed_and_size({"original": G, "compressed": model}, z[:64], repeats, threads)
    quantizes = method != "magnitude" and method != "channel"
    setting = {"per_tensor": f"{weight_bits}-bit weights", "per_channel": f"{weight_bits}-bit weights",
               "kmeans": f"{weight_bits}-bit codebook", "magnitude": f"{sparsity:.0%} zeros",
               "channel": f"{sparsity:.0%} of channels removed",
               "combined": f"{sparsity:.0%} zeros, then {weight_bits}-bit weights"}[method]
    if quantizes and act_bits != 32:
        setting += f", {act_bits}-bit activations"
    caption = (f"<b>{ptq.METHOD_LABELS[method]}</b>: {setting} · FD {figures['fd']:.3f} · "
               f"precision {figures['precision']:.2f} · recall {figures['recall']:.2f} · "
               f"density {figures['density']:.2f} · coverage {figures['coverage']:.2f} "
               f"({len(z)} samples; {evaluator.label})<br>"
               f"{size['params']:,} weights, {size['sparsity']:.0%} zeros, "
               f"{size['bytes_sparse'] / 1024:.0f} KiB at {bits} bits if zeros were free · "
               f"CPU {timing['compressed']['ms']:.1f} ms vs {timing['original']['ms']:.1f} ms for "
               f"batch {min(64, len(z))}, {threads} thread"
               + (" (quantization here is simulated: no speed-up)" if quantizes else ""))
    state = CompressionState(method, weight_bits, act_bits, sparsity, figures, size,
                             timing["compressed"]["ms"], timing["original"]["ms"], caption)
    return state, evaluator.samples(model, 0, n_show)


class CompressionExplorer(CourseWidget):
    """Dropdowns for the method and bit widths, a sparsity slider, a "compress" button;
    see :func:`compression_explorer`."""

    def __init__(self, G, evaluator: ptq.Evaluator, calibration=None, n_show: int = 16,
                 threads: int = 1):
        import ipywidgets as W

        self.G, self.evaluator, self.calibration = G, evaluator, calibration
        self.n_show, self.threads = n_show, threads
        self.controls = {
            "method": W.Dropdown(options=[(ptq.METHOD_LABELS[m], m) for m in ptq.METHODS],
                                 value="per_channel", description="method",
                                 layout=W.Layout(width="440px")),
            "weight_bits": W.Dropdown(options=WEIGHT_BITS, value=4, description="weight bits"),
            "act_bits": W.Dropdown(options=ACT_BITS, value=32, description="act. bits"),
            "sparsity": W.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05,
                                      description="sparsity", readout_format=".0%",
                                      continuous_update=False),
        }
        before = evaluator.samples(G, 0, n_show)
        self.scale = display_scale(image_grid(before).shape[1], target=300)
        self.before = W.Image(value=png_bytes(image_grid(before), self.scale), format="png")
        self.output = W.Image(format="png")
        self.caption = W.HTML()
        self.state = None
        grids = W.HBox([W.VBox([W.HTML("uncompressed"), self.before]),
                         W.VBox([W.HTML("compressed"), self.output])])
        self.widget = W.VBox([W.HBox([self.controls["method"], self.controls["sparsity"]]),
                              W.HBox([self.controls["weight_bits"], self.controls["act_bits"]]),
                              self.caption, grids])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def update(self, *_):
        c = self.controls
        self.state, images = explorer_view(
            self.G, self.evaluator, c["method"].value, int(c["weight_bits"].value),
            int(c["act_bits"].value), float(c["sparsity"].value), self.calibration, self.n_show,
            threads=self.threads)
        self.caption.value = self.state.caption
        self.output.value = png_bytes(image_grid(images), self.scale)

    def snapshot(self) -> dict:
        import base64
        import re

        text = re.sub(r"<[^>]+>", " ", self.state.caption)
        return {"image/png": base64.b64encode(self.output.value).decode("ascii"),
                "text/plain": f"compression explorer (compressed samples): {text}"}


def compression_explorer(G, evaluator: ptq.Evaluator, calibration=None, n_show: int = 16,
                         threads: int = 1) -> CompressionExplorer:
    """Controls for post-training compression of ``G`` (a DCGAN generator, eval mode).

    evaluator: a :class:`course_lib.ptq.Evaluator` (reals and fixed latents);
    calibration: latent batches for activation quantization. Display the result in a cell.
    """
    return CompressionExplorer(G, evaluator, calibration, n_show, threads)
