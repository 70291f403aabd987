"""How much faster and smaller are int8 and channel-pruned generators on this CPU?

For each case (a course generator at a size and batch), builds the fp32 model (random
weights, seeded; the DCGAN's BatchNorm statistics set by one training-mode batch), its
real int8 version (``course_lib.compress.quantize_int8``, 4 calibration batches), its
channel-pruned version (``channel_prune``, 50% of the channels) and that pruned model in
int8, then times all four interleaved (``course_lib.compress.latency.compare_latency``,
medians, fixed threads) and reports ratios over fp32. Targets (issue 14): int8 >= 2x
faster and >= 3.5x smaller; 50% channel pruning >= 1.5x faster.

    python benchmarks/bench_int8.py [--threads 2] [--repeats 15] [--cases dcgan_b1,cyc32]

Figures written per case (``build/benchmarks/int8.json``): ``*_ms`` (median wall) and
``*_cpu_ms`` (median process CPU time) for fp32 / int8 / pruned / pruned_int8;
``int8_speedup``, ``channel_prune50_speedup``, ``prune50_int8_speedup`` (fp32 time over
each; wall clock) and the same ratios on CPU time (``*_cpu``), ``int8_size_ratio``
(state-dict bytes fp32 / int8), ``int8_output_change`` (mean |int8 - fp32| on outputs in
[-1, 1], random weights), the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform

import torch

from course_lib.compress import channel_prune, quantize_int8, state_dict_bytes
from course_lib.compress.latency import compare_latency
from course_lib.fileio import atomic_write_json
from course_lib.models import DCGANGenerator, ResnetGenerator

# name: (description, model factory, input factory)
CASES = {
    "dcgan_b1": ("DCGAN G, ngf 32, 32x32, z 128, batch 1", lambda: _dcgan(32), lambda: torch.randn(1, 128)),
    "dcgan_b64": ("DCGAN G, ngf 32, 32x32, z 128, batch 64", lambda: _dcgan(32), lambda: torch.randn(64, 128)),
    "cyc32": ("CycleGAN ResnetGenerator, ngf 32, 9 blocks, 1x3x256x256",
              lambda: ResnetGenerator(ngf=32).eval(), lambda: torch.rand(1, 3, 256, 256) * 2 - 1),
    "cyc64": ("CycleGAN ResnetGenerator, ngf 64, 9 blocks, 1x3x256x256",
              lambda: ResnetGenerator(ngf=64).eval(), lambda: torch.rand(1, 3, 256, 256) * 2 - 1),
}


def _dcgan(ngf: int) -> DCGANGenerator:
    g = DCGANGenerator(z_dim=128, ngf=ngf, image_size=32)
    g.train()
    with torch.no_grad():
        g(torch.randn(64, 128))     # BatchNorm statistics other than 0 and 1
    return g.eval()


def measure_case(name: str, repeats: int, warmup: int, threads: int) -> dict:
    description, make_model, make_input = CASES[name]
    torch.manual_seed(0)
    model = make_model()
    x = make_input()
    calibration = [make_input() for _ in range(4)]
    int8 = quantize_int8(model, calibration)
    pruned = channel_prune(model, 0.5, x)
    pruned_int8 = quantize_int8(pruned, calibration)
    with torch.no_grad():
        change = float((int8(x) - model(x)).abs().mean())
    # a batch-1 DCGAN call takes about a millisecond: time ten times as many
    scale = 10 if name == "dcgan_b1" else 1
    times = compare_latency({"fp32": model, "int8": int8, "pruned": pruned,
                             "pruned_int8": pruned_int8}, x, repeats * scale, warmup * scale,
                            threads)
    row = {"case": name, "description": description, "backend": int8.backend, "real_int8": int8.real}
    for key in ("fp32", "int8", "pruned", "pruned_int8"):
        row[f"{key}_ms"] = times[key]["ms"]
        row[f"{key}_cpu_ms"] = times[key]["cpu_ms"]
    for key, label in (("int8", "int8_speedup"), ("pruned", "channel_prune50_speedup"),
                       ("pruned_int8", "prune50_int8_speedup")):
        row[label] = round(times["fp32"]["ms"] / times[key]["ms"], 3)
        row[label + "_cpu"] = round(times["fp32"]["cpu_ms"] / times[key]["cpu_ms"], 3)
    row.update(
        fp32_bytes=state_dict_bytes(model), int8_bytes=state_dict_bytes(int8),
        pruned_bytes=state_dict_bytes(pruned), pruned_int8_bytes=state_dict_bytes(pruned_int8),
        int8_output_change=round(change, 5), load_average=times["load_average"])
    row["int8_size_ratio"] = round(row["fp32_bytes"] / row["int8_bytes"], 3)
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="build/benchmarks/int8.json")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")

    rows = []
    for name in names:
        row = measure_case(name, args.repeats, args.warmup, args.threads)
        rows.append(row)
        print(f"{name}: int8 {row['int8_speedup']:.2f}x faster (CPU time {row['int8_speedup_cpu']:.2f}x), "
              f"{row['int8_size_ratio']:.2f}x smaller, output change {row['int8_output_change']:.4f}; "
              f"50% channels pruned {row['channel_prune50_speedup']:.2f}x, pruned+int8 "
              f"{row['prune50_int8_speedup']:.2f}x; load {row['load_average']}", flush=True)
    result = {"benchmark": "int8 and 50% channel pruning vs fp32 on the CPU",
              "threads": args.threads, "repeats": args.repeats, "cases": rows,
              "targets": {"int8_speedup": 2.0, "int8_size_ratio": 3.5,
                          "channel_prune50_speedup": 1.5},
              "torch": torch.__version__, "machine": platform.machine(),
              "cpu_count": os.cpu_count()}
    atomic_write_json(result, args.out)
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
