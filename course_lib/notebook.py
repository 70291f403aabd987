"""Small helpers for notebooks as files: read, write, find cells by tag, strip outputs.

Shared by ``make student`` (:mod:`course_lib.student`), the grader and the tests.
Two ways to read:

- :func:`read_notebook` / :func:`write_notebook` go through ``nbformat`` (validated,
  written in Jupyter's own stable layout) — for the generator, which writes files.
- :func:`load_cells` is plain ``json`` — for the grader, which only reads sources. It is
  much faster to import than ``nbformat`` (which pulls in a JSON-schema validator) and it
  tolerates notebooks a student has half-broken by hand.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The kernelspec every notebook of the workbook declares (added if missing).
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# Exercise ids look like "ex3.1" (the tests also use ids like "extest.1").
EXERCISE_TAG = re.compile(r"^ex[0-9A-Za-z_]*\.[0-9A-Za-z_]+$")
# Written questions: the Markdown cell holding the answer is tagged "q1.2" (nbgrader's
# manually graded answer cells). Masters hold a model answer; students get the placeholder.
QUESTION_TAG = re.compile(r"^q[0-9A-Za-z_]*\.[0-9A-Za-z_]+$")
ANSWER_PLACEHOLDER = "✍️ YOUR ANSWER HERE (a few sentences)"
SETUP_TAGS = ("parameters", "setup")

# Cell metadata that only records how a run went; it would make regenerated files differ.
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


# --- reading and writing with nbformat (the generator) -----------------------------------

def read_notebook(path: str | os.PathLike):
    """The notebook at ``path`` as an ``nbformat.NotebookNode`` (version 4)."""
    import nbformat  # slow to import (~2 s): only the generator and the tests need it

    return nbformat.read(os.fspath(path), as_version=4)


def dumps_notebook(nb) -> str:
    """The exact text Jupyter would save: nbformat's layout plus a final newline."""
    import nbformat

    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb, path: str | os.PathLike) -> bool:
    """Write ``nb`` to ``path`` atomically if its text changed; return whether it did.

    Leaving an unchanged file alone keeps its modification time, so ``make`` and
    JupyterLab do not think it was edited.
    """
    return write_text_if_changed(dumps_notebook(nb), path)


def write_text_if_changed(text: str, path: str | os.PathLike) -> bool:
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


# --- tags ----------------------------------------------------------------------------------

def cell_tags(cell) -> list[str]:
    tags = (cell.get("metadata") or {}).get("tags") or []
    return [t for t in tags if isinstance(t, str)]


def exercise_tags(cell) -> list[str]:
    """The exercise ids a cell is tagged with (normally zero or one)."""
    return [t for t in cell_tags(cell) if EXERCISE_TAG.match(t)]


def question_tags(cell) -> list[str]:
    """The written-question ids a cell is tagged with (normally zero or one)."""
    return [t for t in cell_tags(cell) if QUESTION_TAG.match(t)]


def cells_tagged(nb, tag: str) -> list[tuple[int, dict]]:
    """``(index, cell)`` for every cell carrying ``tag``, in notebook order."""
    return [(i, c) for i, c in enumerate(nb["cells"]) if tag in cell_tags(c)]


def source_of(cell) -> str:
    """A cell's source as one string (files may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def describe_cell(path, index: int, cell) -> str:
    """How error messages name a cell: file, 1-based position, tags and id."""
    tags = cell_tags(cell)
    parts = [f"{Path(path).as_posix()}, cell {index + 1}"]
    if tags:
        parts.append(f"tagged {', '.join(tags)}")
    if cell.get("id"):
        parts.append(f"id {cell['id']}")
    return parts[0] + (f" ({'; '.join(parts[1:])})" if len(parts) > 1 else "")


# --- normalising ---------------------------------------------------------------------------

def strip_outputs(nb) -> None:
    """Remove outputs, execution counts, run timings and widget state, in place."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        for key in VOLATILE_CELL_METADATA:
            metadata.pop(key, None)


def normalise_metadata(nb, name: str) -> None:
    """Make a notebook's metadata reproducible, in place.

    Sets the workbook's kernelspec, drops the Python patch version (it depends on the
    machine that last ran the notebook), and gives every cell an id (nbformat 4.5)
    derived from the notebook's ``name`` and the cell's position, so that ids never come
    from a random generator.
    """
    metadata = nb.setdefault("metadata", {})
    metadata["kernelspec"] = dict(KERNELSPEC)
    language_info = metadata.get("language_info")
    if isinstance(language_info, dict):
        language_info.pop("version", None)
    nb["nbformat"], nb["nbformat_minor"] = 4, max(int(nb.get("nbformat_minor", 0)), 5)
    seen: set[str] = set()
    for i, cell in enumerate(nb["cells"]):
        cell_id = cell.get("id")
        if not cell_id or cell_id in seen:
            cell_id = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:8]
        cell["id"] = cell_id
        seen.add(cell_id)


# --- plain-JSON reading (the grader) -------------------------------------------------------

@dataclass(frozen=True)
class CodeCell:
    index: int          # 0-based position in the notebook
    tags: tuple[str, ...]
    source: str

    @property
    def label(self) -> str:
        tags = ", ".join(self.tags)
        return f"cell {self.index + 1}" + (f" (tagged {tags})" if tags else "")


MAX_NOTEBOOK_BYTES = 200 * 2**20   # a notebook with outputs is a few MB; this is not one


def _malformed(path: Path, what: str) -> ValueError:
    return ValueError(f"{path.name} is damaged: {what} — was it edited by hand? Open it in "
                      f"Jupyter and save it again, or start again from the original notebook")


def _checked_cell(path: Path, i: int, cell) -> CodeCell | None:
    """A code cell of a notebook file, its fields checked: the file may be anything."""
    if not isinstance(cell, dict):
        raise _malformed(path, f"cell {i + 1} is a JSON {type(cell).__name__}, not an object")
    kind = cell.get("cell_type")
    if not isinstance(kind, str):
        raise _malformed(path, f"cell {i + 1} has no cell_type")
    metadata = cell.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _malformed(path, f"the metadata of cell {i + 1} is a JSON {type(metadata).__name__}, "
                               f"not an object")
    tags = metadata.get("tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _malformed(path, f"the tags of cell {i + 1} are not a list of names")
    source = cell.get("source", "")
    if isinstance(source, list):
        if not all(isinstance(line, str) for line in source):
            raise _malformed(path, f"the source of cell {i + 1} holds something other than text")
        source = "".join(source)
    elif not isinstance(source, str):
        raise _malformed(path, f"the source of cell {i + 1} is not text")
    return CodeCell(i, tuple(tags), source) if kind == "code" else None


def load_cells(path: str | os.PathLike) -> list[CodeCell]:
    """The code cells of a notebook, read as plain JSON.

    Raises ``ValueError`` with one sentence naming the file when it is not a (version 4)
    notebook: not JSON, JSON of another shape, an old nbformat 3 file, a damaged cell.
    """
    path = Path(path)
    cells = []
    for i, cell in enumerate(_notebook_json(path)["cells"]):
        checked = _checked_cell(path, i, cell)
        if checked is not None:
            cells.append(checked)
    return cells


def load_answers(path: str | os.PathLike) -> dict[str, str]:
    """``{question id: answer text}`` from the Markdown cells tagged with a question id
    (``q1.2``), read as plain JSON; an untouched placeholder reads as "". Several cells with
    one tag are joined in order. Raises ``ValueError`` as :func:`load_cells` does."""
    path = Path(path)
    answers: dict[str, list[str]] = {}
    for i, cell in enumerate(_notebook_json(path)["cells"]):
        _checked_cell(path, i, cell)        # the same checks of the cell's fields
        if cell.get("cell_type") != "markdown":
            continue
        text = source_of(cell).strip()
        for tag in question_tags(cell):
            answers.setdefault(tag, []).append("" if text == ANSWER_PLACEHOLDER else text)
    return {tag: "\n\n".join(t for t in texts if t) for tag, texts in answers.items()}


def _notebook_json(path: Path) -> dict:
    """The notebook file as JSON, checked to be a version 4 notebook with a list of cells."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror})") from None
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is {size / 2**20:.0f} MB, too large for a notebook "
                         f"(clear its outputs: Edit > Clear Outputs of All Cells, then save)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not a text file ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} is not valid notebook JSON (line {exc.lineno}: "
                         f"{exc.msg}); was it saved completely?") from None
    except RecursionError:
        raise ValueError(f"{path.name} is not a notebook (its JSON is nested thousands of "
                         f"levels deep)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is JSON but not a Jupyter notebook (no list of cells)")
    version = data.get("nbformat")
    if "worksheets" in data or (isinstance(version, int) and not isinstance(version, bool) and version < 4):
        raise ValueError(f"{path.name} is an old nbformat {version if isinstance(version, int) else 3} "
                         f"notebook; open it in Jupyter (version 4 or newer) and save it, which "
                         f"converts it")
    if not isinstance(data.get("cells"), list):
        raise ValueError(f"{path.name} is JSON but not a Jupyter notebook (no list of cells)")
    return data
