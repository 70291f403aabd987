#!/usr/bin/env python
"""Fetch the real datasets and weights of the workbook.

    python data_scripts/get_data.py --list              what is present, where, verified?
    python data_scripts/get_data.py cifar10 horse2zebra fetch (download, verify, install)
    python data_scripts/get_data.py 100-shot-obama --from ~/Downloads/sets.zip
    python data_scripts/get_data.py --info fid-inception URLs, checksum, licence, notes

Same as ``python -m course_lib data ...``; this file only calls it.
"""
import sys
from pathlib import Path

try:
    from course_lib.data.cli import get_data_main
except ImportError:  # run from a clone where course_lib is not installed yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from course_lib.data.cli import get_data_main

if __name__ == "__main__":
    sys.exit(get_data_main())
