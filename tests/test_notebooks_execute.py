"""Every notebook runs top to bottom under ``COURSE_PRESET=ci``: the masters in
``solutions/`` and the student versions in ``notebooks/`` (where Run All must complete:
stubs raise only when called, and self-checks report "not implemented yet").

Notebooks are found by globbing, so a new notebook is tested as soon as it exists.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from course_lib.workbook import NotebookError, execute_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds; the ci preset keeps every cell far below this

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def course_env(tmp_path_factory):
    """One model cache for the whole session (later notebooks reuse earlier models, as in
    class) and a results folder outside the repository."""
    tmp = tmp_path_factory.mktemp("notebooks")
    return {"COURSE_CACHE": str(tmp / "cache"), "COURSE_RESULTS_DIR": str(tmp / "results"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def run(path: Path, workdir: Path, env: dict):
    """Execute a copy of ``path`` in ``workdir``; fail with notebook, cell and error."""
    copy = workdir / path.name
    copy.write_bytes(path.read_bytes())  # the kernel may write next to the notebook
    started = time.perf_counter()
    try:
        result = execute_notebook(copy, workdir, preset="ci", env=env, timeout=CELL_TIMEOUT)
    except NotebookError as exc:
        detail = exc.traceback[-3000:] if exc.traceback else ""
        pytest.fail(f"{path.parent.name}/{path.name}, cell {exc.cell_index}: {exc.ename}: "
                    f"{exc.evalue}\n--- cell source ---\n{exc.source}\n{detail}", pytrace=False)
    print(f"{path.parent.name}/{path.name}: {time.perf_counter() - started:.1f} s")
    return result


def error_outputs(nb) -> list[str]:
    return [f"cell {i}: {o['ename']}: {o['evalue']}" for i, c in enumerate(nb.cells)
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_runs(path, tmp_path, course_env):
    result = run(path, tmp_path, course_env)
    assert not error_outputs(result.notebook)
    # Every notebook records its headline figures, in context (issue 2, DESIGN.md).
    results = Path(course_env["COURSE_RESULTS_DIR"]) / f"{path.stem}.json"
    assert results.exists(), f"{path.name} did not call course_lib.report.record({path.stem!r}, ...)"
    figures = json.loads(results.read_text())
    for key in ("preset", "data_source"):
        assert key in figures, f"{results.name} lacks {key!r}: pass it to report.record"
    assert figures["preset"] == "ci", f"{path.name} recorded preset {figures['preset']!r} under COURSE_PRESET=ci"


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.stem)
def test_student_notebook_run_all_completes(path, tmp_path, course_env):
    result = run(path, tmp_path, course_env)
    # A stub is only called by its self-check, which reports instead of raising.
    assert not error_outputs(result.notebook)
    printed = "".join(o.get("text", "") for c in result.notebook.cells
                      for o in c.get("outputs", []) if o.get("output_type") == "stream")
    n_exercises = sum(any(t.startswith("ex") for t in c.metadata.get("tags", []))
                      for c in result.notebook.cells)
    assert printed.count("not implemented yet") >= n_exercises, (
        f"{path.name}: {n_exercises} exercise(s), but the self-checks reported "
        f"'not implemented yet' {printed.count('not implemented yet')} time(s)")


def test_there_are_notebooks_and_they_pair_up():
    assert SOLUTIONS, "solutions/ holds no notebooks"
    assert [p.name for p in SOLUTIONS] == [p.name for p in STUDENT], \
        "solutions/ and notebooks/ hold different notebooks: run `make student`"


# --- make workbook -------------------------------------------------------------------------

def tiny_notebook(path: Path, *sources: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_workbook_runs_copies_and_reports(tmp_path, monkeypatch, capsys):
    from course_lib.workbook import run_workbook

    source, out = tmp_path / "solutions", tmp_path / "build"
    source.mkdir()
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    tiny_notebook(source / "01_good.ipynb",
                  "import os, pathlib\nfrom course_lib import report",
                  "report.record('01_good', preset=os.environ['COURSE_PRESET'], data_source='none', "
                  "cwd=os.getcwd())",
                  "import torch\nfrom course_lib.widgets import dataset_browser\n"
                  "dataset_browser([torch.zeros(3, 4, 4)] * 3)")
    tiny_notebook(source / "02_bad.ipynb", "x = 1", "print('before')\n1 / 0", "print('never')")

    assert run_workbook("ci", source=source, out=out) == 1
    printed = capsys.readouterr()
    assert "02_bad.ipynb: cell 1" in printed.out and "ZeroDivisionError" in printed.err
    # Executed copies and HTML, timings, the results table; the masters are untouched.
    for name in ("01_good.ipynb", "01_good.html", "02_bad.ipynb", "02_bad.html", "timings.json"):
        assert (out / name).exists(), name
    timings = json.loads((out / "timings.json").read_text())
    assert timings["preset"] == "ci" and set(timings["seconds"]) == {"01_good", "02_bad"}
    figures = json.loads((tmp_path / "results" / "01_good.json").read_text())
    assert figures["preset"] == "ci" and Path(figures["cwd"]) == out  # ran in the copy's folder
    assert "| 01_good | preset | ci |" in (tmp_path / "results" / "summary.md").read_text()
    # The HTML shows the widget's snapshot, readable offline.
    assert "data:image/png;base64," in (out / "01_good.html").read_text()
    assert not any(c.get("outputs") for c in json.loads((source / "01_good.ipynb").read_text())["cells"])

    # --only picks one notebook by stem or prefix; an unknown name is an error that lists them.
    assert run_workbook("ci", only="01", source=source, out=out) == 0
    with pytest.raises(ValueError, match="01_good, 02_bad"):
        run_workbook("ci", only="99", source=source, out=out)
