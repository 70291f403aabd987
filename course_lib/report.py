"""Headline figures: every notebook records its numbers in ``build/results/<notebook>.json``.

A whole-workbook run (``make workbook``) therefore yields one table of results,
``build/results/summary.md``, made by :func:`summary_table`.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path

from course_lib.fileio import atomic_write_json

ENV_VAR = "COURSE_RESULTS_DIR"


def project_root() -> Path | None:
    """The project checkout this library runs from (``course_lib/`` next to
    ``pyproject.toml``), or None when ``course_lib`` is installed on its own."""
    package = Path(__file__).resolve().parent
    root = package.parent
    return root if (root / "pyproject.toml").is_file() and package.name == "course_lib" else None


def build_dir() -> Path:
    """Where generated files go: the checkout's ``build/``, else ``./build``."""
    root = project_root()
    return (root if root is not None else Path.cwd()) / "build"


def results_dir() -> Path:
    """``$COURSE_RESULTS_DIR``, else ``build/results`` in the project checkout, else in
    the current folder (when the library is installed on its own)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return build_dir() / "results"


def plain(value):
    """JSON-friendly: tensors and numpy scalars become floats, NaN becomes None."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def record(notebook: str, **figures) -> Path:
    """Merge ``figures`` into ``build/results/<notebook>.json`` and return its path.

    Call it as often as you like; later values replace earlier ones of the same name.
    Always include ``preset`` and ``data_source`` so a figure can be read in context.
    """
    if not notebook or "/" in notebook:
        raise ValueError(f"notebook name must be a plain name like '03_diffaugment', got {notebook!r}")
    path = results_dir() / f"{notebook}.json"
    data = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}  # a damaged results file is rebuilt from this run
    data.update(plain(figures))
    data["notebook"] = notebook
    data["recorded_at"] = _dt.datetime.now().isoformat(timespec="seconds")
    return atomic_write_json(data, path)


def load_results(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    directory = Path(directory) if directory else results_dir()
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def summary_table(directory: str | os.PathLike | None = None) -> str:
    """A Markdown table of every recorded figure, one row per (notebook, figure)."""
    rows = ["| notebook | figure | value |", "|---|---|---|"]
    for name, figures in load_results(directory).items():
        for key, value in figures.items():
            if key in ("notebook", "recorded_at"):
                continue
            if isinstance(value, float):
                value = f"{value:.4g}"
            rows.append(f"| {name} | {key} | {value} |")
    return "\n".join(rows) + "\n"
