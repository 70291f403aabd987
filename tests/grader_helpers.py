"""Shared by the grader's tests: the pretend ``extest`` notebook (checks in
tests/autograde/fixtures/extest_checks.py) and copies of the course's masters with one
exercise cell replaced."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.grade.sandbox import find_bubblewrap

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ROOT / "tests" / "autograde" / "fixtures" / "extest_checks.py"

SOLUTIONS = {
    "extest.1": "def double(x):\n    \"\"\"x -> 2x\"\"\"\n    ### BEGIN SOLUTION\n    return x * SCALE\n    ### END SOLUTION",
    "extest.2": "def clip(xs, lo, hi):\n    ### BEGIN SOLUTION\n    return [min(max(x, lo), hi) for x in xs]\n    ### END SOLUTION",
    "extest.3": "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION",
}
RIGHT = {"extest.1": "def double(x):\n    return x * SCALE",
         "extest.2": "def clip(xs, lo, hi):\n    return [min(max(x, lo), hi) for x in xs]",
         "extest.3": "def mean(xs):\n    return sum(xs) / len(xs)"}


def bubblewrap_problem() -> str:
    """Why the OS sandbox cannot be used here ("" when it can)."""
    return find_bubblewrap().problem


def tagged(source: str, *tags: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


def make_notebook(path: Path, cells: dict | None = None, solutions: bool = False) -> Path:
    """An ``extest`` notebook: parameters and setup cells, then the three exercises (each
    followed by its self-check cell). ``cells`` overrides exercise cells (None drops one)."""
    sources = dict(SOLUTIONS if solutions else RIGHT)
    sources.update(cells or {})
    nb = new_notebook(cells=[new_markdown_cell("# A pretend notebook"),
                             tagged('PRESET = "class"', "parameters"),
                             tagged("%matplotlib inline\nimport math\nSCALE = 2", "setup")])
    for ex_id, source in sources.items():
        if source is not None:
            nb.cells.append(tagged(source, ex_id))
            nb.cells.append(new_code_cell(f'self_check("{ex_id}", None)'))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def master_with(notebook: str, exercise_id: str, source: str, dest: Path) -> Path:
    """A copy of ``solutions/<notebook>.ipynb`` at ``dest`` whose cell tagged
    ``exercise_id`` holds ``source``."""
    return master_with_cells(notebook, {exercise_id: source}, dest)


def master_with_cells(notebook: str, cells: dict[str, str], dest: Path) -> Path:
    """A copy of ``solutions/<notebook>.ipynb`` at ``dest`` with the cells tagged with the
    keys of ``cells`` holding their values."""
    master = ROOT / "solutions" / f"{notebook}.ipynb"
    nb = json.loads(master.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for exercise_id, source in cells.items():
            if exercise_id in (cell.get("metadata", {}).get("tags") or []):
                cell["source"] = source
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dest
