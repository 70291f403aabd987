"""How long grading the whole workbook takes: every exercise of ``solutions/``.

    python benchmarks/bench_grading.py [--path solutions] [--workers 2]

Times ``python -m course_lib.grade``'s own code path (``grade_path``) end to end — loading
the checks, one fresh process per exercise, two at a time — and, separately, the fixed
cost of one exercise (a fresh process that imports torch and runs a trivial check), which
is what the number of exercises multiplies. Writes ``build/benchmarks/grading.json`` and
prints a summary. The target (issue 3) is 2 minutes for all exercises on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.grade.registry import load_checks  # noqa: E402
from course_lib.grade.runner import grade_path  # noqa: E402

TARGET_SECONDS = 120.0
OVERHEAD_REPEATS = 4

# One trivial torch exercise: what every exercise costs before doing any real work.
PROBE_CHECKS = '''
from course_lib.grade.api import exercise, expect
for _i in range({n}):
    @exercise(f"exprobe.{{_i + 1}}", notebook="probe", function="f", timeout=60)
    def _check(fn, ns):
        expect(float(fn()) == 1.0, "f() should be 1")
'''
PROBE_NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [{"cell_type": "code", "id": "s", "metadata": {"tags": ["setup"]}, "outputs": [],
               "execution_count": None, "source": "import torch"}]
    + [{"cell_type": "code", "id": f"e{i}", "metadata": {"tags": [f"exprobe.{i}"]}, "outputs": [],
        "execution_count": None, "source": "def f():\n    return torch.ones(1).sum()"}
       for i in range(1, OVERHEAD_REPEATS + 1)],
}


def measure_overhead(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        checks_file = Path(tmp) / "probe_checks.py"
        checks_file.write_text(PROBE_CHECKS.format(n=OVERHEAD_REPEATS))
        notebook = Path(tmp) / "probe.ipynb"
        notebook.write_text(json.dumps(PROBE_NOTEBOOK))
        checks = load_checks([checks_file])
        started = time.monotonic()
        grading = grade_path(notebook, workers=workers, checks=checks)
        wall = time.monotonic() - started
    results = next(iter(grading.reports.values())).results
    assert all(r.status == "passed" for r in results), [(r.id, r.status, r.message) for r in results]
    return {"exercises": len(results), "wall_seconds": round(wall, 2),
            "per_exercise_seconds": round(sum(r.seconds for r in results) / len(results), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=ROOT / "solutions")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "grading.json")
    args = parser.parse_args(argv)

    started = time.monotonic()
    checks = load_checks()
    load_seconds = time.monotonic() - started
    has_notebooks = args.path.is_dir() and any(args.path.glob("*.ipynb"))
    if has_notebooks:
        grading = grade_path(args.path, workers=args.workers, checks=checks)
        results = [r for report in grading.reports.values() for r in report.results]
    else:
        results = []
    total = time.monotonic() - started
    overhead = measure_overhead(args.workers)

    slowest = sorted(results, key=lambda r: -r.seconds)[:5]
    record = {
        "path": str(args.path), "workers": args.workers, "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "exercises": len(results),
        "passed": sum(r.status == "passed" for r in results),
        "seconds_total": round(total, 2),
        "seconds_loading_checks": round(load_seconds, 2),
        "target_seconds": TARGET_SECONDS,
        "within_target": total <= TARGET_SECONDS,
        "per_exercise": [{"id": r.id, "status": r.status, "seconds": r.seconds} for r in results],
        "overhead_probe": overhead,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")

    print(f"graded {len(results)} exercises of {args.path} with {args.workers} workers "
          f"in {total:.1f} s (target {TARGET_SECONDS:.0f} s: "
          f"{'ok' if record['within_target'] else 'OVER'}); {record['passed']} passed")
    for r in slowest:
        print(f"  {r.id:<10} {r.seconds:6.2f} s  {r.status}")
    print(f"fixed cost of one exercise (fresh process + torch + trivial check): "
          f"{overhead['per_exercise_seconds']:.2f} s; {overhead['exercises']} such exercises took "
          f"{overhead['wall_seconds']:.2f} s with {args.workers} workers")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
