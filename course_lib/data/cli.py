"""``python -m course_lib data list|fetch|verify|info`` and ``data_scripts/get_data.py``.

Both front ends end up in :func:`cmd_list`, :func:`cmd_fetch`, :func:`cmd_verify`, so
they behave the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib import zoo
from course_lib.data.downloads import url_problem
from course_lib.data.errors import DataError
from course_lib.data.paths import DATA_ENV, data_root
from course_lib.data.registry import (REGISTRY, fetch, get_entry, local_file_problem,
                                      status, verify)
from course_lib.fileio import folder_blocker


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


# --- the commands --------------------------------------------------------------------------

def cmd_list(root: Path | None = None, out=None) -> int:
    """The data root and the model zoo's root, then one line per registry entry:
    present?, verified?, size, where."""
    shown = root or data_root()
    problem = folder_blocker(shown)
    if problem:
        raise DataError(f"the data root {shown} cannot hold datasets: {problem}. Give --root "
                        f"a folder, or set {DATA_ENV} to one")
    print(f"data root: {shown}  (set {DATA_ENV} to move it)", file=out)
    print(f"model zoo: {zoo.cache_dir()}  (trained models, a separate folder: "
          f"python -m course_lib zoo)", file=out)
    header = f"{'NAME':<33} {'STATE':<8} {'CHECK':<12} {'SIZE':>9}  WHERE"
    print(header, file=out)
    for name, entry in REGISTRY.items():
        st = status(name, root)
        if st["present"]:
            state, check = "present", "verified" if st["verified"] else "unverified"
            size = human_size(st["size"])
        else:
            state, check = "missing", "-"
            size = f"~{human_size(entry.size)}" if entry.size else "?"
        print(f"{name:<33} {state:<8} {check:<12} {size:>9}  {st['path']}", file=out)
    print("fetch with: python data_scripts/get_data.py NAME...  (details: --info NAME)",
          file=out)
    return 0


def cmd_fetch(names: list[str], root: Path | None = None, force: bool = False,
              source: str | None = None, url: str | None = None, progress: bool = True,
              out=None) -> int:
    """Fetch each name; keep going after a failure and report every one at the end."""
    out = out or sys.stdout
    if names == ["all"]:
        names = list(REGISTRY)
    if source and url:
        raise DataError("give --from FILE or --url URL, not both")
    if (source or url) and len(names) != 1:
        raise DataError("--from and --url apply to one dataset: give exactly one NAME")
    for name in names:
        get_entry(name)  # unknown names fail before any download starts
    failed = []
    for name in names:
        try:
            path = fetch(name, root, force=force, source=source,
                         urls=[url] if url else None, progress=progress)
        except DataError as exc:
            print(f"{name}: FAILED: {exc}", file=out)
            failed.append(name)
            continue
        st = status(name, root)
        check = "verified" if st["verified"] else st["check"]
        print(f"{name}: {path} ({human_size(st['size'])}, {check})", file=out)
    if failed:
        print(f"{len(failed)} of {len(names)} failed: {', '.join(failed)}", file=out)
        return 1
    return 0


def cmd_verify(names: list[str], root: Path | None = None, out=None) -> int:
    """Re-check each name on disk; exit 1 if any is absent, damaged or unverifiable."""
    out = out or sys.stdout
    bad = 0
    for name in (list(REGISTRY) if names == ["all"] else names):
        try:
            st = verify(name, root)
        except DataError as exc:
            print(f"{name}: FAILED: {exc}", file=out)
            bad += 1
            continue
        print(f"{name}: {st['check']} ({st['path']})", file=out)
        bad += not st["verified"]
    return 1 if bad else 0


def cmd_info(name: str, root: Path | None = None, out=None) -> int:
    """Everything the registry knows about one entry."""
    out = out or sys.stdout
    entry = get_entry(name)
    st = status(name, root)
    checksum = entry.sha256 or entry.md5 or entry.sha256_prefix or "none published"
    rows = [("name", entry.name), ("state", "present" if st["present"] else "missing"),
            ("check", st["check"]), ("path", st["path"]),
            ("urls", "\n       ".join(entry.urls) or "(none pinned: see notes)"),
            ("checksum", f"{entry.checksum_kind or '-'}: {checksum}"),
            ("size", human_size(entry.size)), ("licence", entry.licence),
            ("home", entry.homepage), ("notes", entry.notes)]
    for key, value in rows:
        print(f"{key:<8} {value}", file=out)
    return 0


# --- argument types: checked while parsing, so the message names the flag ----------------

def url_arg(value: str) -> str:
    """``--url``: a URL to download from, not a path (that is ``--from``)."""
    problem = url_problem(value)
    if problem is None:
        return value
    if problem.startswith("is a file path"):
        raise argparse.ArgumentTypeError(
            f"{value!r} {problem}: to install a file you already have, use --from {value}")
    raise argparse.ArgumentTypeError(f"{value!r} {problem}: give the full link, e.g. "
                                     f"https://host/file.zip")


def source_arg(value: str) -> Path:
    """``--from``: an existing file (whether it is the right kind is checked per NAME)."""
    path = Path(value).expanduser()
    problem = local_file_problem(path)
    if problem:
        # An unpacked image folder needs no installing: it can be used where it is.
        unpacked = (" (an unpacked image folder works where it is: train-gan --data PATH, "
                    "or load_image_folder(path, size))" if path.is_dir() else "")
        raise argparse.ArgumentTypeError(f"{value} {problem}: give the archive or weights "
                                         f"file you downloaded{unpacked}")
    return path


def root_arg(value: str) -> Path:
    """``--root``: a folder, or a path where one can be made."""
    path = Path(value).expanduser()
    problem = folder_blocker(path)
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}: give the folder that holds (or will "
                                         f"hold) the datasets")
    return path


# --- python -m course_lib data ... -----------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=root_arg, default=None,
                        help="data root (default: $COURSE_DATA or ~/.cache/...)")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.add_parser("list", help="what is present, where, its size, verified or not")
    f = sub.add_parser("fetch", help="download, verify and install datasets/weights")
    f.add_argument("names", nargs="+", metavar="NAME", help=f"'all' or: {', '.join(REGISTRY)}")
    f.add_argument("--force", action="store_true", help="fetch again even if present")
    f.add_argument("--from", dest="source", metavar="FILE", type=source_arg,
                   help="install a file you downloaded yourself instead of downloading")
    f.add_argument("--url", type=url_arg,
                   help="download from this URL instead of the registry's")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = sub.add_parser("verify", help="check fetched files against their checksums")
    v.add_argument("names", nargs="+", metavar="NAME")
    i = sub.add_parser("info", help="URLs, checksum, licence and notes of one entry")
    i.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "data_command", None) or "list"
    if action == "list":
        return cmd_list(args.root)
    if action == "fetch":
        return cmd_fetch(args.names, args.root, force=args.force, source=args.source,
                         url=args.url, progress=not args.no_progress)
    if action == "verify":
        return cmd_verify(args.names, args.root)
    return cmd_info(args.name, args.root)


# --- data_scripts/get_data.py ----------------------------------------------------------------

def get_data_main(argv: list[str] | None = None) -> int:
    """``get_data.py NAME...`` fetches; ``--list``, ``--verify NAME...``, ``--info NAME``."""
    parser = argparse.ArgumentParser(
        prog="get_data.py",
        description="Fetch the real datasets and weights of the workbook (the notebooks "
                    "use embedded stand-ins until you do).",
        epilog=f"names: {', '.join(REGISTRY)}, or 'all'")
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument("--list", action="store_true", help="show what is present")
    parser.add_argument("--verify", action="store_true", help="check NAMEs on disk")
    parser.add_argument("--info", action="store_true", help="details of NAMEs")
    parser.add_argument("--force", action="store_true", help="fetch again even if present")
    parser.add_argument("--from", dest="source", metavar="FILE", type=source_arg,
                        help="install a file you downloaded yourself")
    parser.add_argument("--url", type=url_arg, help="download from this URL instead")
    parser.add_argument("--root", type=root_arg, default=None, help="data root")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.list or not args.names:
            return cmd_list(args.root)
        if args.verify:
            return cmd_verify(args.names, args.root)
        if args.info:
            return max(cmd_info(n, args.root) for n in args.names)
        return cmd_fetch(args.names, args.root, force=args.force, source=args.source,
                         url=args.url, progress=not args.no_progress)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (nothing half-written was kept)", file=sys.stderr)
        return 130
