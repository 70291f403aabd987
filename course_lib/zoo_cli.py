"""``python -m course_lib zoo``: what the model zoo holds, and ``--clear`` to empty it.

``--clear`` deletes trained entries only, recognised by their metadata: it lists them and
asks first (``--yes`` skips the question). Records of fetched weights, the fetched data
(another root) and anything else in the folder are left alone.
"""
from __future__ import annotations

import sys

from course_lib import zoo
from course_lib.data.paths import DATA_ENV, data_root
from course_lib.fileio import is_within
from course_lib.report import ENV_VAR as RESULTS_ENV
from course_lib.report import results_dir

# How many unrecognised files to name before summing up the rest.
SHOW_SKIPPED = 10


def add_arguments(parser):
    parser.add_argument("--clear", action="store_true",
                        help="delete every trained model in the zoo (lists them and asks "
                             "first; fetched data and other files are never touched)")
    parser.add_argument("--yes", action="store_true", help="with --clear: do not ask")


def _megabytes(paths) -> float:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total / 1e6


def print_roots(out=None) -> None:
    """The three homes: the zoo, the fetched data, the run outputs (never nested by
    default; a line says so if the user's settings nest them)."""
    zoo_root, data = zoo.cache_dir().resolve(), data_root().resolve()
    print(f"model zoo:   {zoo_root}  (set {zoo.ENV_VAR} to move it)", file=out)
    print(f"data root:   {data}  (set {DATA_ENV} to move it; `zoo --clear` never "
          f"touches it)", file=out)
    print(f"run outputs: {results_dir()} (set {RESULTS_ENV}) and each run's --out",
          file=out)
    if is_within(data, zoo_root) or is_within(zoo_root, data):
        print("note: the data root and the zoo share a folder (your settings); the zoo "
              "still deletes only its own entries", file=out)


def _entry_line(entry: zoo.ZooEntry) -> str:
    m = entry.meta
    if entry.kind == "fetched":
        line = f"  {m['name']:<32} fetched  {m['path']}"
    else:
        made = f"course_lib {m.get('library_version', '?')}"
        task = f"  task: {m['task']}" if m.get("task") else ""
        line = (f"  {m['name']:<32} {m['preset']:<6} seed {m['seed']:<3} recipe "
                f"{m.get('recipe', 1)}{task}  data: {m.get('data_source') or '-'}  ({made})")
    return line + (f"\n      ! {entry.problem}" if entry.problem else "")


def _print_skipped(scan: zoo.Scan, out) -> None:
    if not scan.skipped:
        return
    print(f"left alone: {len(scan.skipped)} file(s) where entries go that are not zoo "
          f"entries:", file=out)
    for path, reason in scan.skipped[:SHOW_SKIPPED]:
        print(f"  {path}: {reason}", file=out)
    if len(scan.skipped) > SHOW_SKIPPED:
        print(f"  ... and {len(scan.skipped) - SHOW_SKIPPED} more", file=out)


def list_zoo(out=None) -> int:
    print_roots(out)
    scan = zoo.scan()
    if scan.problem:
        print(f"error: {scan.problem}", file=sys.stderr)
        return 1
    trained = [e for e in scan.entries if e.kind == "trained"]
    fetched = [e for e in scan.entries if e.kind == "fetched"]
    print(f"{len(trained)} trained, {len(fetched)} fetched", file=out)
    for entry in trained + fetched:
        print(_entry_line(entry), file=out)
    _print_skipped(scan, out)
    return 0


def clear_zoo(yes: bool, out=None) -> int:
    scan = zoo.scan()
    if scan.problem:
        raise zoo.ZooError(f"nothing cleared: {scan.problem}")
    doomed = [e for e in scan.entries if e.kind == "trained"]
    kept = len(scan.entries) - len(doomed)
    root = scan.root.resolve()
    if not doomed:
        print(f"nothing to clear: no trained models in {root}", file=out)
        return 0
    files = [f for e in doomed for f in e.files]
    print(f"will delete {len(doomed)} trained model(s), {len(files)} files, "
          f"{_megabytes(files):.1f} MB, from {root}:", file=out)
    for entry in doomed:
        print(_entry_line(entry), file=out)
    print(f"kept: {kept} fetched record(s), the data root, and every other file", file=out)
    if not yes:
        try:
            answer = input("delete them? [y/N] ")
        except EOFError:  # no terminal to answer from (a script, a pipe)
            print(file=out)
            print("nothing deleted: no answer (pass --yes to clear without asking)",
                  file=out)
            return 1
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=out)
            return 0
    removed = [p for e in doomed for p in zoo.remove(e)]
    print(f"deleted {len(doomed)} trained model(s) ({len(removed)} files) from "
          f"{root}", file=out)
    return 0


def run(args) -> int:
    if args.clear:
        return clear_zoo(args.yes)
    if args.yes:
        raise zoo.ZooError("--yes only goes with --clear")
    return list_zoo()
