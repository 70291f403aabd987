"""Run the whole workbook headless: ``python -m course_lib.workbook --preset ci|class``.

Every ``solutions/*.ipynb`` is copied to ``build/workbook/`` and executed there (so the
notebook's working folder is the copy's) with ``COURSE_PRESET`` set. The executed
notebook and an HTML rendering stay in ``build/workbook/``; per-notebook wall times go to
``build/workbook/timings.json``; the notebooks' headline figures are gathered into
``build/results/summary.md``. On an error the run names the notebook and the cell, and
exits non-zero.

The tests use :func:`execute_notebook` too, so "it runs in the tests" and "it runs with
``make workbook``" mean the same thing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course_lib.presets import ENV_VAR as PRESET_ENV, PRESETS
from course_lib.report import project_root

# nbformat, nbclient, nbconvert and torch load inside the functions that use them, so
# `--help` answers at once.

ROOT = project_root() or Path.cwd()   # solutions/ and build/ of the checkout
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class NotebookError(RuntimeError):
    """A cell of a notebook raised: which notebook, which cell, and the error."""

    def __init__(self, notebook: str, cell_index: int, ename: str, evalue: str, source: str,
                 traceback: str = ""):
        self.notebook, self.cell_index = notebook, cell_index
        self.ename, self.evalue, self.source, self.traceback = ename, evalue, source, traceback
        first_line = source.strip().splitlines()[0] if source.strip() else "(empty cell)"
        super().__init__(f"{notebook}: cell {cell_index} ({first_line[:60]!r}) raised "
                         f"{ename}: {evalue}")


@dataclass
class Run:
    """One executed notebook."""
    name: str
    seconds: float
    notebook: "nbformat.NotebookNode"
    error: NotebookError | None = None


def _strip_ansi(text: str) -> str:
    import re
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def execute_notebook(path: str | os.PathLike, workdir: str | os.PathLike | None = None, *,
                     preset: str = "ci", env: dict | None = None, timeout: int = 600,
                     raise_on_error: bool = True) -> Run:
    """Execute the notebook at ``path`` cell by cell with ``COURSE_PRESET=preset``.

    ``workdir`` is the kernel's working folder (default: the notebook's own folder);
    ``env`` adds environment variables for the kernel; ``timeout`` is per cell, seconds.
    Raises :class:`NotebookError` naming the cell that failed (or, with
    ``raise_on_error=False``, returns it in ``Run.error`` with the partly run notebook).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    workdir = Path(workdir) if workdir else path.parent
    kernel_env = {**os.environ, **(env or {}), PRESET_ENV: preset}
    # Keep the kernel from matplotlib's GUI backends and from competing for threads.
    kernel_env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    error = None
    start = time.perf_counter()
    with client.setup_kernel(env=kernel_env, cwd=str(workdir)):
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                ename, evalue = getattr(exc, "ename", "Error"), getattr(exc, "evalue", str(exc))
                error = NotebookError(path.name, index, ename, evalue, cell.source,
                                      _strip_ansi(str(exc)))
                break
            except (CellTimeoutError, DeadKernelError) as exc:
                error = NotebookError(path.name, index, type(exc).__name__, str(exc).strip()[:300],
                                      cell.source)
                break
        client.set_widgets_metadata()  # so the HTML shows the widgets' last state
    seconds = time.perf_counter() - start
    if error and raise_on_error:
        raise error
    return Run(path.stem, seconds, nb, error)


def write_html(nb: "nbformat.NotebookNode", path: Path) -> Path:
    from nbconvert import HTMLExporter

    from nbconvert.utils.base import NbConvertBase
    from traitlets.config import Config

    # Prefer a widget's static snapshot (see CourseWidget.snapshot) to its live view: the
    # live view needs the widget JavaScript from a CDN, so it is blank when read offline.
    priority = list(NbConvertBase().display_data_priority)
    if "image/png" in priority and WIDGET_VIEW in priority:
        priority.remove("image/png")
        priority.insert(priority.index(WIDGET_VIEW), "image/png")
    exporter = HTMLExporter(config=Config({"NbConvertBase": {"display_data_priority": priority}}))
    body, _ = exporter.from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")
    return path


def select(notebooks: list[Path], only: str | None) -> list[Path]:
    """Notebooks whose stem equals ``only``, or starts with it (``--only 03``)."""
    if not only:
        return notebooks
    only = Path(only).stem if only.endswith(".ipynb") else only
    exact = [p for p in notebooks if p.stem == only]
    chosen = exact or [p for p in notebooks if p.stem.startswith(only)]
    if not chosen:
        names = ", ".join(p.stem for p in notebooks) or "none"
        raise ValueError(f"no notebook in solutions/ matches {only!r} (there are: {names})")
    return chosen


def run_workbook(preset: str, only: str | None = None, source: Path = ROOT / "solutions",
                 out: Path = ROOT / "build" / "workbook", timeout: int | None = None) -> int:
    """Execute the notebooks; return the exit status (0 = every notebook ran)."""
    import nbformat

    from course_lib.fileio import atomic_write_json
    from course_lib.report import results_dir, summary_table

    notebooks = select(sorted(source.glob("*.ipynb")), only)
    if not notebooks:
        print(f"no notebooks in {source}")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    timeout = timeout or (600 if preset == "ci" else 3600)
    timings, failures = {}, []
    print(f"workbook: {len(notebooks)} notebook(s), preset {preset}, output in {out}")
    for path in notebooks:
        copy = out / path.name
        copy.write_bytes(path.read_bytes())  # run the copy, in the copy's folder
        run = execute_notebook(copy, out, preset=preset, timeout=timeout, raise_on_error=False)
        nbformat.write(run.notebook, copy)
        write_html(run.notebook, copy.with_suffix(".html"))
        timings[run.name] = round(run.seconds, 2)
        status = "ok" if run.error is None else "FAILED"
        print(f"  {run.name:<32} {run.seconds:8.1f} s  {status}", flush=True)
        if run.error:
            failures.append(run.error)
            print(f"    {run.error}\n    (the executed copy with the error: {copy})", flush=True)
    atomic_write_json({"preset": preset, "seconds": timings,
                       "total_seconds": round(sum(timings.values()), 2)}, out / "timings.json")
    results = results_dir()
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.md").write_text(summary_table(results))
    print(f"total {sum(timings.values()):.1f} s; timings in {out / 'timings.json'}; "
          f"results table in {results / 'summary.md'}")
    if failures:
        print("errors:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.workbook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="class",
                        help="sizes of every long step (default: class)")
    parser.add_argument("--only", metavar="NAME", help="run only this notebook (stem or prefix, e.g. 03)")
    parser.add_argument("--timeout", type=int, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    try:
        return run_workbook(args.preset, args.only, timeout=args.timeout)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
