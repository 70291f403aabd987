"""``python -m course_lib.grade PATH [--json FILE] [--csv FILE] [--workers N] ...``

PATH is a notebook, a folder of notebooks (one student), or a class folder (one
sub-folder per student; Canvas and Moodle downloads are recognised — see
:mod:`course_lib.grade.submissions`). Student code runs in a bubblewrap sandbox where
there is one (:mod:`course_lib.grade.sandbox`); grading a class without it is refused
unless ``--allow-unsandboxed``. See :mod:`course_lib.grade.output` for the JSON and CSV
formats; both are written atomically, never inside the folder being graded nor over a
notebook.

Exit status: 0 whenever grading ran, whatever the scores; 2 when it could not run (a bad
PATH or option, broken checks, no sandbox for a class); 1 when the results could not be
written; 128 + the signal's number when interrupted (130 for Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from course_lib.fileio import folder_blocker
from course_lib.grade.output import Progress, grading_table, to_csv_text, to_json_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.grade",
        description="Grade the exercises of a notebook, a folder of notebooks, or a class "
                    "folder (one sub-folder per student, or a Canvas/Moodle download).")
    parser.add_argument("path", type=Path, help="a notebook, a folder of notebooks, or a class folder")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per student as CSV")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"exercises graded at a time (default: one per core, {os.cpu_count()} here)")
    parser.add_argument("--only", action="append", metavar="ID",
                        help="grade only this exercise id (repeatable)")
    parser.add_argument("--checks", action="append", default=[], type=Path, metavar="FILE",
                        help="an extra checks file (for trying out new checks; repeatable)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="auto: bubblewrap when it works here (default); bwrap: require it; "
                             "none: plain processes")
    parser.add_argument("--allow-unsandboxed", action="store_true",
                        help="grade several students even without the bubblewrap sandbox")
    return parser


def check_output_path(option: str, target: Path | None, graded: Path) -> str | None:
    """Why ``target`` may not receive results, or None."""
    if target is None:
        return None
    if target.is_dir():
        return f"{option} {target} is a folder; give a file name, e.g. {target / ('grades' + option.replace('--', '.'))}"
    if target.suffix.lower() == ".ipynb":
        return f"{option} {target} would overwrite a notebook; write the results to a .{option[2:]} file"
    blocker = folder_blocker(target.parent)   # found now, not after grading the whole class
    if blocker:
        return f"{option} {target} cannot be written: {blocker}"
    resolved = target.parent.resolve() / target.name
    root = graded.resolve()
    if resolved == root or (root.is_dir() and root in resolved.parents):
        return (f"{option} {target} is inside the folder being graded; write the results elsewhere "
                f"(e.g. {root.parent / ('grades' + option.replace('--', '.'))})")
    return None


def _write(target: Path, text: str) -> None:
    from course_lib.fileio import atomic_write_text

    atomic_write_text(text, target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    problems = [p for p in (check_output_path("--json", args.json, args.path),
                            check_output_path("--csv", args.csv, args.path)) if p]
    if args.json and args.csv and args.json.resolve() == args.csv.resolve():
        problems.append("--json and --csv name the same file; give two different files")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    # Imported here so that `--help` stays instant.
    from course_lib.grade.registry import ChecksError
    from course_lib.grade.runner import GradingError, Interrupted, grade_path
    from course_lib.grade.sandbox import SandboxError, limits_from_env

    try:
        limits = limits_from_env()
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = Progress()
    workers = args.workers or os.cpu_count() or 1

    def on_start(grading, jobs):
        torch = sys.modules.get("torch")   # imported by the checks by now
        if torch is not None:
            torch.set_num_threads(1)       # the checks run in one thread per lane: a core each
        progress.start(grading, jobs)
        students = f", {len(grading.reports) or len({j.student for j in jobs})} students" \
            if grading.kind == "class" else ""
        print(f"grading {args.path}: {len(jobs)} exercises{students}, {workers} at a time; "
              f"{grading.sandbox}", file=sys.stderr, flush=True)

    try:
        grading = grade_path(args.path, workers=workers, check_files=args.checks,
                             only=set(args.only) if args.only else None, progress=progress,
                             sandbox=args.sandbox, allow_unsandboxed=args.allow_unsandboxed,
                             limits=limits, on_start=on_start)
    except (GradingError, ChecksError, SandboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else 2
        print("\ninterrupted: every process running student code was stopped and the temporary "
              "folders removed; nothing was written", file=sys.stderr)
        return 128 + signum
    print(grading_table(grading), end="")
    print(f"graded in {grading.seconds:.1f} s", file=sys.stderr)
    try:
        for target, text in ((args.json, to_json_text), (args.csv, to_csv_text)):
            if target is not None:
                _write(target, text(grading))
    except OSError as exc:
        print(f"error: could not write the results: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # ``python -m`` put the current folder first on sys.path: drop it, so that nothing
    # there (a planted json.py...) can shadow a module the grader imports later.
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    sys.exit(main())
