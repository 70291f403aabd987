"""How much does DiffAugment add to a DCGAN training step on this CPU?

Times a full D+G step (batch 64, 32x32, ngf = ndf = 32, non-saturating loss, Adam) with
and without DiffAugment ("color,translation,cutout" on reals and fakes in the D step and
on fakes in the G step, the way training uses it), interleaved so that both see the same
machine load, and reports medians over repeated steps. The target is at most 15%.

    python benchmarks/bench_diffaugment.py [--repeats 40] [--out build/benchmarks/diffaugment.json]

Figures written (all medians over the repeats, in one run):
- ``step_ms``: a plain D+G step; ``step_diffaugment_ms``: the same step with DiffAugment;
- ``augment_ms``: DiffAugment's own work in one step, timed directly: two forward-only
  calls (reals and detached fakes in the D step) and one call with its backward pass
  (the G step, where the gradient flows through T to G);
- ``augment_fraction`` = augment_ms / step_ms: the headline figure (target <= 0.15);
- ``step_overhead_fraction``: (augmented step - plain step) / plain step, paired per
  repeat: a cross-check, noisier because it subtracts two larger times.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from course_lib.diffaugment import diff_augment
from course_lib.losses import d_loss, g_loss
from course_lib.models import DCGANDiscriminator, DCGANGenerator

POLICY = "color,translation,cutout"


def make_step(G, D, opt_g, opt_d, real, policy):
    def augment(x):
        return diff_augment(x, policy)

    def step():
        z = G.sample_z(real.shape[0])
        fake = G(z)
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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="build/benchmarks/diffaugment.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G, D = DCGANGenerator(ngf=args.width), DCGANDiscriminator(ndf=args.width)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    plain = make_step(G, D, opt_g, opt_d, real, policy="")
    augmented = make_step(G, D, opt_g, opt_d, real, policy=POLICY)

    fake = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    grad = torch.ones_like(fake)

    def augment_only():  # DiffAugment's share of one step, as training uses it
        with torch.no_grad():
            diff_augment(real, POLICY)              # D step, reals
            diff_augment(fake, POLICY)              # D step, detached fakes
        x = fake.clone().requires_grad_()
        diff_augment(x, POLICY).backward(grad)      # G step: forward and backward through T

    for _ in range(args.warmup):
        plain(), augmented(), augment_only()
    t_plain, t_aug, t_only = [], [], []
    for _ in range(args.repeats):  # interleaved: drifting load hits both alike
        t_plain.append(timed(plain))
        t_aug.append(timed(augmented))
        t_only.append(timed(augment_only))

    step = statistics.median(t_plain)
    result = {
        "benchmark": "diffaugment overhead in a DCGAN D+G step",
        "policy": POLICY,
        "batch": args.batch, "image_size": 32, "ngf": args.width, "ndf": args.width,
        "threads": args.threads, "repeats": args.repeats,
        "step_ms": round(1000 * step, 2),
        "step_diffaugment_ms": round(1000 * statistics.median(t_aug), 2),
        "augment_ms": round(1000 * statistics.median(t_only), 2),
        "augment_fraction": round(statistics.median(t_only) / step, 4),
        "step_overhead_fraction": round(statistics.median(
            [a - p for a, p in zip(t_aug, t_plain)]) / step, 4),
        "target_fraction": 0.15,
        "torch": torch.__version__, "machine": platform.machine(),
    }
    result["within_target"] = result["augment_fraction"] <= result["target_fraction"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"DiffAugment costs {100 * result['augment_fraction']:.1f}% of a "
          f"{result['step_ms']:.0f} ms D+G step (target <= 15%; step-difference cross-check "
          f"{100 * result['step_overhead_fraction']:.1f}%); written to {out}")
    return result


if __name__ == "__main__":
    main()
