"""``python -m course_lib.grade PATH [--json FILE] [--csv FILE] [--workers N]``

PATH is a notebook, a folder of notebooks, or a folder of submissions with one
sub-folder per student. Every exercise runs in its own fresh process with a time limit;
see :mod:`course_lib.grade.output` for the JSON and CSV formats.

Exit status: 0 whenever grading ran, whatever the scores; 2 when it could not run
(a bad PATH, broken checks), 1 when the results could not be written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib.grade.output import grading_table, to_csv_text, to_json_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.grade",
        description="Grade the exercises of a notebook, a folder of notebooks, or a class "
                    "folder (one sub-folder per student).")
    parser.add_argument("path", type=Path, help="a notebook, a folder of notebooks, or a class folder")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per student as CSV")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="exercises graded at a time (default: 2)")
    parser.add_argument("--only", action="append", metavar="ID",
                        help="grade only this exercise id (repeatable)")
    parser.add_argument("--checks", action="append", default=[], type=Path, metavar="FILE",
                        help="an extra checks file (for trying out new checks; repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    # Imported here so that `--help` stays instant.
    from course_lib.grade.registry import ChecksError
    from course_lib.grade.runner import GradingError, grade_path

    def progress(job, result):
        print(f"  {result.id:<10} {result.status:<16} {job.student}", file=sys.stderr, flush=True)

    try:
        print(f"grading {args.path} with {args.workers} worker(s)...", file=sys.stderr, flush=True)
        grading = grade_path(args.path, workers=args.workers, check_files=args.checks,
                             only=set(args.only) if args.only else None, progress=progress)
    except (GradingError, ChecksError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(grading_table(grading), end="")
    print(f"graded in {grading.seconds:.1f} s", file=sys.stderr)
    try:
        for target, text in ((args.json, to_json_text), (args.csv, to_csv_text)):
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text(grading), encoding="utf-8")
    except OSError as exc:
        print(f"error: could not write the results: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
