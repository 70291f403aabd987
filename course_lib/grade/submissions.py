"""What to grade in a path: one notebook, one student's folder, or a class.

:func:`find_submissions` returns every student with the notebook it will grade for each
registered notebook name, plus a note for everything it did *not* grade and why — nothing
is dropped silently. The layouts it knows:

- **a notebook** (``03_diffaugment.ipynb``), or **a folder of notebooks** (one student,
  e.g. ``notebooks/``);
- **a class folder**, one sub-folder per student, notebooks anywhere inside it
  (``class/alice/03_diffaugment.ipynb``, ``class/bob/work/03_diffaugment (1).ipynb``);
- **Moodle's** "download all submissions" with one folder per submission
  (``Alice Smith_12345_assignsubmission_file_/03_diffaugment.ipynb``) or flat
  (``Alice Smith_12345_assignsubmission_file_03_diffaugment.ipynb``);
- **Canvas's** flat download (``smithalice_12345_67890_03_diffaugment.ipynb``, late ones
  ``smithalice_LATE_12345_67890_...``; a resubmitted file may end in ``-1``).

Rules:

- Links are never followed inside a class folder: a symbolic link (to a folder or a
  notebook) is skipped with a note, so a "student" that links to the course repository
  cannot get the instructor's masters graded as theirs.
- A registered notebook name may carry a suffix (``03_diffaugment (1).ipynb`` from a
  browser, ``03_diffaugment-2.ipynb`` from Canvas, ``03_diffaugment_final.ipynb``). When a
  student has several files for one notebook, the exact name or a download suffix wins
  over other suffixes, then the most recently modified file; the note says which.
- A notebook whose name matches no registered notebook is "not graded: expected one of ...".
- Hidden folders (``.git``, ``.ipynb_checkpoints``...) and hidden files are skipped;
  Jupyter's checkpoint copies silently, anything else with a note.
- A folder of notebooks none of which has a registered name, but whose names contain
  one (``alice_03_diffaugment.ipynb``), is an LMS layout not recognised: refused, with a
  message saying how to arrange the folder.

Student names are cleaned of control characters (they reach the terminal and the CSV).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.grade.describe import clean

CANVAS = re.compile(r"^(?P<name>[^_]+)(?:_LATE)?_(?P<id>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
MOODLE_FILE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_file_(?P<file>.+)$")
MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<what>[a-z]+)_?$")
SUFFIX = re.compile(r"^(?:\s*\(\d+\)|-\d+|_\d+|\s+copy(?:\s*\d+)?|\s*-\s*Copy(?:\s*\(\d+\))?)$", re.IGNORECASE)
CHECKPOINTS = ".ipynb_checkpoints"


class GradingError(Exception):
    """The grader cannot run (bad path, nothing to grade...); the message says why."""


@dataclass
class Submissions:
    kind: str                                   # "notebook" | "folder" | "class"
    students: dict[str, dict[str, Path]]        # student -> {registered name: notebook}
    ungraded: dict[str, list[Path]] = field(default_factory=dict)  # student -> unregistered notebooks
    notes: list[str] = field(default_factory=list)
    layout: str = ""                            # "", "folders", "moodle", "canvas"

    @property
    def expected(self) -> list[str]:
        """Registered notebook names anybody handed in: what every student is graded on."""
        return sorted({stem for found in self.students.values() for stem in found})


def registered_stem(name: str, stems) -> str | None:
    """The checks' name for a notebook file stem: exact, else the longest registered name
    it starts with (``03_diffaugment (1)`` -> ``03_diffaugment``)."""
    if name in stems:
        return name
    prefixes = [s for s in stems if name.startswith(s)]
    return max(prefixes, key=len) if prefixes else None


def _tier(name: str, stem: str) -> int:
    """0: the exact name, 1: a download suffix (" (1)", "-2", " copy"), 2: anything else."""
    return 0 if name == stem else 1 if SUFFIX.match(name[len(stem):]) else 2


def _rel(path: Path, root: Path) -> str:
    try:
        return clean(path.relative_to(root).as_posix())
    except ValueError:
        return clean(path.as_posix())


def _link_note(path: Path, root: Path) -> str:
    try:
        target = Path(os.path.realpath(path))
        inside = root == target or root in target.parents
    except OSError:
        inside = False
    where = "inside" if inside else "outside"
    return f"skipped {_rel(path, root)}: a symbolic link (to a place {where} the class folder); links are not followed"


def _scan(folder: Path, root: Path, notes: list[str]) -> list[Path]:
    """Every notebook under ``folder``, never through a link, hidden folders skipped."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        here = Path(current)
        keep = []
        for d in sorted(dirs):
            path = here / d
            if path.is_symlink():
                notes.append(_link_note(path, root))
            elif d.startswith(".") or d == "__MACOSX":
                if d != CHECKPOINTS and any(Path(r).glob("*.ipynb") for r, _, _ in os.walk(path)):
                    notes.append(f"ignored the hidden folder {_rel(path, root)}")
            else:
                keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if not f.endswith(".ipynb"):
                continue
            path = here / f
            if path.is_symlink():
                notes.append(_link_note(path, root))
            elif f.startswith("."):
                notes.append(f"ignored the hidden notebook {_rel(path, root)}")
            elif path.is_file():
                found.append(path)
    return found


def _choose(student: str, notebooks: list[Path], stems, root: Path, notes: list[str],
            name_of=lambda p: p.stem) -> tuple[dict[str, Path], list[Path]]:
    """``({registered name: notebook}, unregistered notebooks)`` for one student."""
    by_stem: dict[str, list[Path]] = {}
    unregistered = []
    for nb in notebooks:
        stem = registered_stem(name_of(nb), stems)
        if stem is None:
            unregistered.append(nb)
        else:
            by_stem.setdefault(stem, []).append(nb)
    chosen = {}
    for stem, candidates in sorted(by_stem.items()):
        def rank(p: Path):
            try:
                mtime = p.stat().st_mtime
            except OSError:
                mtime = 0.0
            return (_tier(name_of(p), stem) < 2, mtime, name_of(p) == stem, str(p))
        ranked = sorted(candidates, key=rank, reverse=True)
        chosen[stem] = ranked[0]
        if len(ranked) > 1:
            others = ", ".join(repr(clean(p.name)) for p in ranked[1:])
            why = "its name" if (_tier(name_of(ranked[0]), stem) < 2) > (_tier(name_of(ranked[1]), stem) < 2) \
                else "the most recently modified"
            notes.append(f"{student}: {len(ranked)} files for {stem}: graded {clean(ranked[0].name)!r} "
                         f"({why}), ignored {others}")
    return chosen, unregistered


def _unique(name: str, taken: set) -> str:
    name = clean(name) or "(unnamed)"
    if name not in taken:
        return name
    i = 2
    while f"{name} ({i})" in taken:
        i += 1
    return f"{name} ({i})"


def _lms_file(stem: str, stems):
    """``(student, registered name)`` if ``stem`` is a Canvas or Moodle flat file name."""
    for pattern in (MOODLE_FILE, CANVAS):
        m = pattern.match(stem)
        if m:
            registered = registered_stem(m["file"], stems)
            if registered:
                return f"{m['name']}_{m['id']}", registered, "moodle" if pattern is MOODLE_FILE else "canvas"
    return None


def _expected_list(stems) -> str:
    return ", ".join(f"{s}.ipynb" for s in sorted(stems))


def _refuse_unknown_layout(path: Path, top: list[Path], examples: list[Path]):
    raise GradingError(
        f"{path} holds {len(top)} notebooks whose names contain a notebook of the course "
        f"(e.g. {clean(examples[0].name)!r}, {clean(examples[1].name)!r}) in a layout the grader does not "
        f"know (Canvas: name_12345_67890_03_diffaugment.ipynb; Moodle: "
        f"Name_12345_assignsubmission_file_03_diffaugment.ipynb). Arrange it as one folder per "
        f"student — {path}/alice/03_diffaugment.ipynb, {path}/bob/03_diffaugment.ipynb — and grade again")


def find_submissions(path, stems) -> Submissions:
    """What to grade at ``path`` for the registered notebook names ``stems``."""
    path = Path(path)
    stems = sorted(stems)
    if not path.exists():
        raise GradingError(f"{path}: no such file or folder")
    root = path.resolve()
    if root.is_file():
        if root.suffix != ".ipynb":
            raise GradingError(f"{path} is not a notebook (.ipynb)")
        stem = registered_stem(root.stem, stems)
        name = clean(path.name)
        if stem is None:
            return Submissions("notebook", {name: {}}, {name: [root]})
        return Submissions("notebook", {name: {stem: root}})
    if not root.is_dir():
        raise GradingError(f"{path} is neither a notebook nor a folder")

    notes: list[str] = []
    top, folders = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        entry_path = Path(entry.path)
        if entry.is_symlink():
            if entry.name.endswith(".ipynb") or entry.is_dir():
                notes.append(_link_note(entry_path, root))
            continue
        if entry.name.startswith(".") or entry.name == "__MACOSX":
            if entry.is_dir() and entry.name != CHECKPOINTS and \
                    any(Path(r).glob("*.ipynb") for r, _, _ in os.walk(entry_path)):
                notes.append(f"ignored the hidden folder {clean(entry.name)}")
            elif entry.name.endswith(".ipynb"):
                notes.append(f"ignored the hidden notebook {clean(entry.name)}")
            continue
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry_path)
        elif entry.is_file(follow_symlinks=False) and entry.name.endswith(".ipynb"):
            top.append(entry_path)

    registered_top = [nb for nb in top if registered_stem(nb.stem, stems)]
    lms = {nb: _lms_file(nb.stem, stems) for nb in top}
    lms = {nb: found for nb, found in lms.items() if found}

    # 1. One student's folder of notebooks (unless it is really a flat class).
    free_form: dict[str, int] = {}
    for nb in registered_top:
        stem = registered_stem(nb.stem, stems)
        if _tier(nb.stem, stem) == 2:
            free_form[stem] = free_form.get(stem, 0) + 1
    if any(n >= 2 for n in free_form.values()):
        _refuse_unknown_layout(path, top, [nb for nb in registered_top if _tier(nb.stem, registered_stem(nb.stem, stems)) == 2])
    if registered_top:
        name = clean(root.name) or "(unnamed)"
        chosen, unregistered = _choose(name, top, stems, root, notes)
        holding = [clean(f.name) for f in folders if _scan(f, root, [])]
        if holding:
            notes.append(f"ignored the sub-folders {', '.join(holding)}: this folder has notebooks of its "
                         f"own, so it is graded as one student's work (to grade a class, give a folder "
                         f"holding one sub-folder per student and no notebooks)")
        return Submissions("folder", {name: chosen}, {name: unregistered} if unregistered else {}, notes)

    # 2. A flat Canvas or Moodle download.
    if lms:
        students: dict[str, dict[str, Path]] = {}
        grouped: dict[str, list[Path]] = {}
        layout = next(iter(lms.values()))[2]
        for nb, (student, _, _) in lms.items():
            grouped.setdefault(student, []).append(nb)
        taken: set = set()
        for student, notebooks in sorted(grouped.items()):
            key = _unique(student, taken)
            taken.add(key)
            chosen, _ = _choose(key, notebooks, stems, root, notes,
                                name_of=lambda p: _lms_file(p.stem, stems)[1] if _lms_file(p.stem, stems) else p.stem)
            students[key] = chosen
        for nb in top:
            if nb not in lms:
                notes.append(f"not graded: {clean(nb.name)} (not a {layout.capitalize()} submission file, "
                             f"and not one of {_expected_list(stems)})")
        for f in folders:
            if _scan(f, root, []):
                notes.append(f"ignored the folder {clean(f.name)}: this is a flat {layout.capitalize()} download")
        return Submissions("class", students, {}, notes, layout)

    # 3. A class: one sub-folder per student (Moodle's folders included).
    students, ungraded = {}, {}
    moodle = {f: MOODLE_FOLDER.match(f.name) for f in folders}
    if any(moodle.values()):
        layout = "moodle"
    else:
        layout = "folders"
    grouped: dict[str, list[Path]] = {}
    has_folders = False
    for f in folders:
        notebooks = _scan(f, root, notes)
        m = moodle.get(f)
        if m:
            if m["what"] != "file" and not notebooks:
                continue  # Moodle's online-text folders hold HTML, not notebooks
            student = f"{m['name']}_{m['id']}"
        else:
            student = f.name
        has_folders = has_folders or bool(notebooks)
        grouped.setdefault(student, []).extend(notebooks)
    if has_folders:
        taken = set()
        for student, notebooks in sorted(grouped.items()):
            key = _unique(student, taken)
            taken.add(key)
            if not notebooks:
                notes.append(f"{key}: the folder holds no notebook; graded as handing in nothing")
            chosen, unregistered = _choose(key, notebooks, stems, root, notes)
            students[key] = chosen
            if unregistered:
                ungraded[key] = unregistered
        for nb in top:
            notes.append(f"ignored {clean(nb.name)} at the top of the class folder: each student's "
                         f"notebooks go in their own sub-folder")
        return Submissions("class", students, ungraded, notes, layout)

    # 4. Notebooks at the top, none with a registered name.
    if top:
        named_like = [nb for nb in top if any(s in nb.stem for s in stems)]
        if len(named_like) >= 2:
            _refuse_unknown_layout(path, top, named_like)
        name = clean(root.name) or "(unnamed)"
        return Submissions("folder", {name: {}}, {name: top}, notes)

    why = f" ({'; '.join(notes)})" if notes else ""
    raise GradingError(f"{path}: no notebooks (.ipynb) here, nor in sub-folders (one per student){why}")
