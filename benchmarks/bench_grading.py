"""How long grading takes: the workbook, or a whole class of copies of it.

    python benchmarks/bench_grading.py                  # every exercise of solutions/
    python benchmarks/bench_grading.py --class 30       # 30 students, each a copy of solutions/
    python benchmarks/bench_grading.py --class 30 --notebooks 00 01 02 03 04   # issue 10's class

Times ``python -m course_lib.grade``'s own code path (``grade_path``: the sandbox when
bubblewrap works here, one lane per core unless ``--workers``) end to end, and reports
the wall time of each exercise (mean and slowest over the students) and in all. It also
measures the fixed cost of one exercise on a warm lane — fork a worker, run a setup cell
and a one-line exercise cell, one call, clean up — by grading a probe notebook of trivial
exercises. Writes ``build/benchmarks/grading.json`` (``grading-class-N.json`` with
``--class``) and prints a summary with the machine's load average, since figures taken
on a busy machine overstate the cost.

Targets: the workbook in 2 minutes (issue 3); a class of 30 copies of notebooks 00-04 in
3 minutes on 2 cores, every student at 100% (issue 10).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.grade.registry import load_checks  # noqa: E402
from course_lib.grade.runner import grade_path  # noqa: E402

WORKBOOK_TARGET = 120.0
CLASS_TARGET = {30: 180.0}
PROBES = 12

# Trivial torch exercises: what every exercise costs before doing any real work.
PROBE_CHECKS = '''
from course_lib.grade.api import exercise, expect
for _i in range({n}):
    @exercise(f"exprobe.{{_i + 1}}", notebook="probe", function="f", timeout=60)
    def _check(student):
        expect(float(student()) == 1.0, "f() should be 1")
'''
PROBE_NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [{"cell_type": "code", "id": "s", "metadata": {"tags": ["setup"]}, "outputs": [],
               "execution_count": None, "source": "import torch"}]
    + [{"cell_type": "code", "id": f"e{i}", "metadata": {"tags": [f"exprobe.{i}"]}, "outputs": [],
        "execution_count": None, "source": "def f():\n    return torch.ones(1).sum()"}
       for i in range(1, PROBES + 1)],
}


def load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def measure_overhead(workers: int) -> dict:
    """Per-exercise cost on warm lanes (the lanes' start-up is reported apart)."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        checks_file = Path(tmp) / "probe_checks.py"
        checks_file.write_text(PROBE_CHECKS.format(n=PROBES))
        notebook = Path(tmp) / "probe.ipynb"
        notebook.write_text(json.dumps(PROBE_NOTEBOOK))
        checks = load_checks([checks_file])
        started = time.monotonic()
        grading = grade_path(notebook, workers=workers, checks=checks)
        wall = time.monotonic() - started
    results = next(iter(grading.reports.values())).results
    assert all(r.status == "passed" for r in results), [(r.id, r.status, r.message) for r in results]
    return {"exercises": len(results), "wall_seconds": round(wall, 2),
            "per_exercise_seconds": round(statistics.median(r.seconds for r in results), 3)}


def build_class(folder: Path, n: int, source: Path, stems: list[str]) -> int:
    """``n`` students, each with a copy of the registered notebooks of ``source``."""
    notebooks = [source / f"{stem}.ipynb" for stem in stems if (source / f"{stem}.ipynb").exists()]
    for i in range(1, n + 1):
        student = folder / f"student{i:03d}"
        student.mkdir(parents=True)
        for nb in notebooks:
            shutil.copyfile(nb, student / nb.name)
    return len(notebooks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=ROOT / "solutions")
    parser.add_argument("--class", dest="students", type=int, default=0, metavar="N",
                        help="grade a class of N copies of --path instead of --path itself")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NN",
                        help="with --class: copy only the notebooks whose names start with these "
                             "(e.g. 00 01 02 03 04); default: every registered notebook")
    parser.add_argument("--workers", type=int, default=None, help="lanes (default: one per core)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    out = args.out or ROOT / "build" / "benchmarks" / (
        f"grading-class-{args.students}.json" if args.students else "grading.json")

    load_before = load()
    checks = load_checks()
    tmp = None
    path = args.path
    if args.students:
        tmp = Path(tempfile.mkdtemp(prefix="bench-class-"))
        path = tmp / "class"
        stems = [stem for stem in checks.notebooks
                 if not args.notebooks or stem.startswith(tuple(args.notebooks))]
        if not stems:
            parser.error(f"--notebooks {' '.join(args.notebooks)} matches none of {', '.join(checks.notebooks)}")
        copies = build_class(path, args.students, args.path, stems)
        print(f"built a class of {args.students} students x {copies} notebooks in {path}", flush=True)
    started = time.monotonic()
    try:
        grading = grade_path(path, workers=workers, checks=checks, allow_unsandboxed=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.monotonic() - started
    load_after = load()
    results = [r for report in grading.reports.values() for r in report.results]
    full = [name for name, rep in grading.reports.items() if rep.results and rep.total == rep.max]
    overhead = measure_overhead(workers)

    per_exercise = {}
    for r in results:
        per_exercise.setdefault(r.id, []).append(r.seconds)
    table = {ex: {"mean": round(statistics.mean(v), 3), "max": round(max(v), 3), "n": len(v)}
             for ex, v in sorted(per_exercise.items())}
    target = CLASS_TARGET.get(args.students) if args.students else WORKBOOK_TARGET
    record = {
        "path": str(args.path), "notebooks": args.notebooks, "students": args.students or 1, "workers": workers,
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "sandbox": grading.sandbox, "exercises": len(results),
        "passed": sum(r.status == "passed" for r in results),
        "students_at_100_percent": len(full),
        "seconds_total": round(total, 2), "target_seconds": target,
        "within_target": None if target is None else total <= target,
        "per_exercise_seconds": table, "overhead_probe": overhead,
        "load_average_before": load_before, "load_average_after": load_after,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")

    what = f"a class of {args.students}" if args.students else str(args.path)
    verdict = "" if target is None else f" (target {target:.0f} s: {'ok' if total <= target else 'OVER'})"
    print(f"graded {what}: {len(results)} exercises with {workers} lanes in {total:.1f} s{verdict}; "
          f"{record['passed']} passed, {len(full)}/{len(grading.reports)} students at 100%")
    print(f"  {grading.sandbox}")
    print(f"  {'exercise':<9} {'mean s':>7} {'max s':>7}")
    for ex, row in table.items():
        print(f"  {ex:<9} {row['mean']:7.2f} {row['max']:7.2f}")
    print(f"fixed cost of one exercise on a warm lane (fork, setup, one call, clean-up): "
          f"{overhead['per_exercise_seconds']:.3f} s (median of {overhead['exercises']}; "
          f"{overhead['wall_seconds']:.1f} s with lane start-up)")
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} cores)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
