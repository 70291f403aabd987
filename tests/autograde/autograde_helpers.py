"""Helpers shared by tests/autograde's conftest and test modules (a uniquely named
module, because ``import conftest`` is ambiguous when several folders have one)."""
from __future__ import annotations

import json
from pathlib import Path

from course_lib.grade.registry import load_checks

ROOT = Path(__file__).resolve().parents[2]
WRONG_ANSWERS = Path(__file__).resolve().parent / "wrong_answers"

_checks = None


def course_checks():
    """The course's registered exercises (loaded once)."""
    global _checks
    if _checks is None:
        _checks = load_checks()
    return _checks


def replace_exercise_cell(master: Path, exercise_id: str, source: str, dest: Path) -> Path:
    """Copy notebook ``master`` to ``dest`` with the cell tagged ``exercise_id`` holding
    ``source`` instead (plain JSON: only that cell changes)."""
    nb = json.loads(master.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if exercise_id in (c.get("metadata", {}).get("tags") or [])]
    if not tagged:
        raise AssertionError(f"{master.name} has no cell tagged {exercise_id}")
    tagged[0]["source"] = source
    nb["cells"] = [c for c in nb["cells"] if not any(c is t for t in tagged[1:])]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dest
