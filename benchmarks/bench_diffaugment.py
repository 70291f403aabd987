"""How much does DiffAugment add to a DCGAN training step on this CPU?

The command line around :func:`course_lib.augment_cost.measure_augment_overhead` (see
its module for what is timed): runs it at the requested size and writes the figures to
``--out`` as JSON. The target is at most 15% of a step.

    python benchmarks/bench_diffaugment.py [--repeats 40] [--out build/benchmarks/diffaugment.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from course_lib.augment_cost import measure_augment_overhead


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="build/benchmarks/diffaugment.json")
    args = parser.parse_args(argv)

    result = measure_augment_overhead(batch=args.batch, width=args.width, repeats=args.repeats,
                                      warmup=args.warmup, threads=args.threads)
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
