"""Counting a model's cost: multiply-accumulates (MACs), parameters and CPU latency.

MACs are counted the way ``torchprofile.profile_macs`` counts them, which is how the
GAN Compression paper reports its numbers (the CycleGAN horse2zebra generator is
56.8 GMACs at 1x3x256x256); ``tests/test_profile.py`` checks the two agree within 0.5%
on every generator of the course:

- convolution and transposed convolution: ``output elements * in_channels/groups * kh*kw``
  (for a transposed conv this is per *output* element, as if the zero-inserted input
  were convolved, so a stride-2 transposed conv counts 4x its useful work; we keep the
  convention so our numbers compare with the papers');
- linear: ``output elements * in_features`` (``in * out`` per row);
- biases, normalisation layers, activations, padding and additions are not counted.
  (torchprofile also adds one MAC per output element of an *affine* norm layer and of a
  LeakyReLU; that is under 0.1% of a CycleGAN generator, which has neither, and under
  0.5% of the DCGANs here.)

The counts come from forward hooks on ``Conv*``/``ConvTranspose*``/``Linear`` modules,
so layers called through the functional API inside ``forward`` are not seen. A layer
that runs at fewer channels than it was built with (the weight-sharing layers of
``course_lib.compress.supernet``) is counted at the width it ran at.

Latency is wall-clock time on the CPU, measured as a benchmark should be: a fixed
thread count, warm-up runs first (allocator, oneDNN kernel selection), the median of
many repeats, and the spread reported with it. ``measure_latencies`` interleaves the
models it compares, so a change of machine load hits all of them alike.
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):  # Conv1/2/3d and ConvTranspose1/2/3d
        # The channels actually fed in (not module.in_channels), so that layers which
        # slice their weight to fewer channels are counted at the width they ran at.
        # A grouped layer that runs narrower keeps its group size and drops groups (a
        # depthwise conv stays depthwise), so its channels per group are the built ones.
        if module.groups == 1:
            in_per_group = inputs[0].shape[1]
        else:
            in_per_group = module.in_channels // module.groups
        return output.numel() * in_per_group * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * inputs[0].shape[-1]
    return 0


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block; every module's own flag is restored after."""
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield model
    finally:
        for m, training in flags.items():
            m.training = training


def _example_input(model: nn.Module, input_size) -> torch.Tensor:
    """``input_size`` itself if it is a tensor, else zeros of that shape in the model's dtype/device."""
    if torch.is_tensor(input_size):
        return input_size
    param = next(model.parameters(), None)
    return torch.zeros(*input_size,
                       dtype=param.dtype if param is not None else torch.float32,
                       device=param.device if param is not None else "cpu")


@torch.no_grad()
def count_macs(model: nn.Module, input_size) -> int:
    """MACs of one forward pass of ``model`` on an input of shape ``input_size``.

    ``input_size`` is the full input shape including the batch, e.g. ``(1, 3, 256, 256)``
    for a CycleGAN generator or ``(1, 128)`` for a DCGAN generator's latent; the count is
    for the whole batch. A tensor is also accepted and used as the input.
    The model runs once in eval mode (so BatchNorm statistics are not touched) on zeros
    of its own dtype and device; each module's train/eval flag is restored afterwards.
    A model on the ``meta`` device is counted without any arithmetic.
    """
    x = _example_input(model, input_size)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        with evaluating(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once; buffers not counted)."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class LatencyResult:
    """Wall-clock milliseconds of one forward pass: the median and the spread of ``repeats`` runs.

    ``q1_ms``/``q3_ms`` are the quartiles (half the runs fall between them); ``load_average``
    is the machine's 1-minute load average when the measurement ended (``os.getloadavg``),
    to be reported with the figure: on a busy machine every time is inflated.
    """
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    threads: int
    repeats: int
    load_average: float

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def __str__(self) -> str:
        return (f"{self.median_ms:.1f} ms (IQR {self.q1_ms:.1f}-{self.q3_ms:.1f}, "
                f"min {self.min_ms:.1f}, {self.repeats} runs, {self.threads} threads, "
                f"load {self.load_average:.2f})")


def _summarise(times_ms: list[float], threads: int) -> LatencyResult:
    q1, median, q3 = statistics.quantiles(times_ms, n=4, method="inclusive")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return LatencyResult(median_ms=median, q1_ms=q1, q3_ms=q3, min_ms=min(times_ms),
                         max_ms=max(times_ms), threads=threads, repeats=len(times_ms),
                         load_average=load)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latencies(models: Mapping[str, nn.Module], input_size, *, threads: int = 2,
                      repeats: int = 20, warmup: int = 3) -> dict[str, LatencyResult]:
    """CPU latency of several models on the same input, measured interleaved.

    Each model runs ``warmup`` times first; then ``repeats`` rounds each run every model
    once, in turn, so that a change in the machine's load affects all models alike and
    their ratio (a speed-up) is measured in one run. Models run in eval mode under
    ``torch.inference_mode`` with ``threads`` intra-op threads; their train/eval flags
    and the process's thread count are restored afterwards.

    models: name -> model (on the CPU); input_size: the full input shape, e.g.
    ``(1, 3, 256, 256)``, or a tensor. Returns name -> :class:`LatencyResult`.

    Compare like with like: the supernet's norms use a faster kernel than torch's
    ``InstanceNorm2d`` in the plain generators, so convert both sides of a comparison with
    ``course_lib.models.norm.with_fast_instance_norms`` (or neither).
    """
    if repeats < 2:
        raise ValueError(f"repeats must be at least 2 to report a spread, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    if not models:
        raise ValueError("measure_latencies needs at least one model")
    elsewhere = [name for name, m in models.items()
                 if any(p.device.type != "cpu" for p in m.parameters())]
    if elsewhere:
        raise ValueError(f"measure_latencies times the CPU; move {', '.join(elsewhere)} to the CPU "
                         "first (model.cpu())")
    inputs = {name: _example_input(m, input_size) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(threads))
        stack.enter_context(torch.inference_mode())
        for model in models.values():
            stack.enter_context(evaluating(model))
        for name, model in models.items():
            for _ in range(warmup):
                model(inputs[name])
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs[name])
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: _summarise(t, threads) for name, t in times.items()}


def measure_latency(model: nn.Module, input_size, *, threads: int = 2, repeats: int = 20,
                    warmup: int = 3) -> LatencyResult:
    """CPU latency of one forward pass of ``model``: see :func:`measure_latencies`."""
    return measure_latencies({"model": model}, input_size, threads=threads, repeats=repeats,
                             warmup=warmup)["model"]
