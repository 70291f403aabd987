"""``python -m course_lib zoo``: what the model cache holds."""
from __future__ import annotations

import shutil

from course_lib import zoo


def add_arguments(parser):
    parser.add_argument("--clear", action="store_true", help="delete every cached model")


def run(args) -> int:
    root = zoo.cache_dir()
    if args.clear:
        if root.exists():
            shutil.rmtree(root)
        print(f"cleared {root}")
        return 0
    rows = zoo.entries()
    print(f"model cache: {root} ({len(rows)} entries)")
    for meta in rows:
        print(f"  {meta['name']:<28} {meta['preset']:<6} seed {meta['seed']:<3} "
              f"data: {meta.get('data_source') or '-'}  (course_lib {meta['library_version']})")
    return 0
