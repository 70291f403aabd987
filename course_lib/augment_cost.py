"""What DiffAugment adds to a DCGAN training step, measured on this machine.

    figures = measure_augment_overhead(batch=64, width=32, repeats=40)
    figures["augment_fraction"]     # DiffAugment's time / a plain D+G step's time

Times a full D+G step (32x32, ngf = ndf = ``width``, non-saturating loss, Adam) with and
without DiffAugment ("color,translation,cutout" on reals and fakes in the D step and on
fakes in the G step, the way training uses it), interleaved so that both see the same
machine load, and reports medians over the repeats:

- ``step_ms``: a plain D+G step; ``step_diffaugment_ms``: the same step with DiffAugment;
- ``augment_ms``: DiffAugment's own work in one step, timed directly: two forward-only
  calls (reals and detached fakes in the D step) and one call with its backward pass
  (the G step, where the gradient flows through T to G);
- ``augment_fraction`` = augment_ms / step_ms: the headline figure (target <= 0.15);
- ``step_overhead_fraction``: (augmented step - plain step) / plain step, paired per
  repeat: a cross-check, noisier because it subtracts two larger times.

``benchmarks/bench_diffaugment.py`` is the command line around this function; notebook 03
calls it briefly at its preset's size.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch

from course_lib.diffaugment import diff_augment
from course_lib.losses import d_loss, g_loss
from course_lib.models import DCGANDiscriminator, DCGANGenerator

POLICY = "color,translation,cutout"
TARGET_FRACTION = 0.15


def _training_step(G, D, opt_g, opt_d, real, policy):
    def augment(x):
        return diff_augment(x, policy)

    def step():
        fake = G(torch.randn(real.shape[0], G.z_dim))
        # D step: the same T on reals and (detached) fakes
        loss_d = d_loss(D(augment(real)), D(augment(fake.detach())))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # G step: T again, and G's gradient flows back through it
        loss_g = g_loss(D(augment(fake)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_augment_overhead(batch: int = 64, width: int = 32, repeats: int = 40,
                             warmup: int = 5, threads: int | None = None) -> dict:
    """DiffAugment's share of a D+G step at this size (the figures of the module docstring,
    plus the settings). ``threads``: torch's thread count while measuring (default: as
    set); it is restored afterwards."""
    if repeats < 1 or warmup < 0 or batch < 1 or width < 1:
        raise ValueError(f"repeats, batch and width must be positive and warmup >= 0; got "
                         f"repeats={repeats}, warmup={warmup}, batch={batch}, width={width}")
    before = torch.get_num_threads()
    threads = threads or before
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        G, D = DCGANGenerator(ngf=width), DCGANDiscriminator(ndf=width)
        opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        real = torch.rand(batch, 3, 32, 32) * 2 - 1
        plain = _training_step(G, D, opt_g, opt_d, real, policy="")
        augmented = _training_step(G, D, opt_g, opt_d, real, policy=POLICY)
        fake = torch.rand(batch, 3, 32, 32) * 2 - 1
        grad = torch.ones_like(fake)

        def augment_only():  # DiffAugment's share of one step, as training uses it
            with torch.no_grad():
                diff_augment(real, POLICY)              # D step, reals
                diff_augment(fake, POLICY)              # D step, detached fakes
            x = fake.clone().requires_grad_()
            diff_augment(x, POLICY).backward(grad)      # G step: forward and backward through T

        for _ in range(warmup):
            plain(), augmented(), augment_only()
        t_plain, t_aug, t_only = [], [], []
        for _ in range(repeats):  # interleaved: drifting load hits both alike
            t_plain.append(_timed(plain))
            t_aug.append(_timed(augmented))
            t_only.append(_timed(augment_only))
    finally:
        torch.set_num_threads(before)

    step = statistics.median(t_plain)
    result = {
        "benchmark": "diffaugment overhead in a DCGAN D+G step",
        "policy": POLICY,
        "batch": batch, "image_size": 32, "ngf": width, "ndf": width,
        "threads": threads, "repeats": repeats,
        "step_ms": round(1000 * step, 2),
        "step_diffaugment_ms": round(1000 * statistics.median(t_aug), 2),
        "augment_ms": round(1000 * statistics.median(t_only), 2),
        "augment_fraction": round(statistics.median(t_only) / step, 4),
        "step_overhead_fraction": round(statistics.median(
            [a - p for a, p in zip(t_aug, t_plain)]) / step, 4),
        "target_fraction": TARGET_FRACTION,
        "torch": torch.__version__, "machine": platform.machine(),
    }
    result["within_target"] = result["augment_fraction"] <= result["target_fraction"]
    return result
