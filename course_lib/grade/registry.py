"""Which exercises exist: the course's checks, plus optional extra check files.

The course's checks live in ``course_lib/grade/checks/nb*.py`` and register themselves
in :data:`course_lib.grade.api.EXERCISES` when imported. Extra check files (``--checks
FILE``: the grader's own tests, or an instructor trying a new check) are loaded into a
private registry, so they never leak into the course's ``EXERCISES``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.grade.api import EXERCISES, QUESTIONS, Exercise, Question

COURSE_CHECKS = "course_lib.grade.checks"


class ChecksError(RuntimeError):
    """The checks themselves could not be loaded: the grader cannot run."""


def natural_key(exercise_id: str):
    """Sort ``ex3.2`` before ``ex3.10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", exercise_id)]


@dataclass
class Checks:
    exercises: dict[str, Exercise] = field(default_factory=dict)
    # where each exercise's check is defined (for messages about duplicates):
    # {"module": "course_lib.grade.checks.nb03_x"} or {"file": "/abs/path/checks.py"}
    origins: dict[str, dict] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)   # written, marked by hand

    def questions_for(self, stems) -> list[Question]:
        """The written questions of the notebooks ``stems``, in id order."""
        found = [q for q in self.questions.values() if q.notebook in set(stems)]
        return sorted(found, key=lambda q: natural_key(q.id))

    def for_notebook(self, stem: str) -> list[Exercise]:
        found = [ex for ex in self.exercises.values() if ex.notebook == stem]
        return sorted(found, key=lambda ex: natural_key(ex.id))

    @property
    def notebooks(self) -> list[str]:
        return sorted({ex.notebook for ex in self.exercises.values()})


def course_exercises(strict: bool = True) -> dict[str, Exercise]:
    """Import every course check module; with ``strict``, a broken module is an error."""
    checks = importlib.import_module(COURSE_CHECKS)
    errors = checks.load_all() if hasattr(checks, "load_all") else {}
    if strict and errors:
        lines = "; ".join(f"{name}: {why}" for name, why in sorted(errors.items()))
        raise ChecksError(f"cannot load the exercise checks ({lines})")
    return dict(EXERCISES)


def load_check_file(path: str | Path) -> dict[str, Exercise]:
    """Run a checks file and return what it registers, leaving ``EXERCISES`` as it was."""
    return _load_check_file(path)[0]


def _load_check_file(path: str | Path) -> tuple[dict[str, Exercise], dict[str, Question]]:
    """The exercises and the written questions a checks file registers; the course's
    registries are left as they were."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ChecksError(f"checks file {path} does not exist")
    name = "_course_grade_extra_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    saved, saved_questions = dict(EXERCISES), dict(QUESTIONS)
    EXERCISES.clear()
    QUESTIONS.clear()
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ChecksError(f"cannot load checks file {path}: {type(exc).__name__}: {exc}") from exc
        return dict(EXERCISES), dict(QUESTIONS)
    finally:
        sys.modules.pop(name, None)
        EXERCISES.clear()
        EXERCISES.update(saved)
        QUESTIONS.clear()
        QUESTIONS.update(saved_questions)


def load_checks(extra_files=()) -> Checks:
    """The course's exercises plus those of ``extra_files``."""
    checks = Checks()
    for ex in course_exercises().values():
        checks.exercises[ex.id] = ex
        checks.origins[ex.id] = {"module": ex.check.__module__}
    checks.questions.update(QUESTIONS)
    for path in extra_files:
        exercises, questions = _load_check_file(path)
        for q in questions.values():
            if q.id in checks.questions:
                raise ChecksError(f"written question {q.id} from {path} is already registered")
            checks.questions[q.id] = q
        for ex in exercises.values():
            if ex.id in checks.exercises:
                raise ChecksError(f"exercise {ex.id} from {path} is already registered by "
                                  f"{checks.origins[ex.id]}")
            checks.exercises[ex.id] = ex
            checks.origins[ex.id] = {"file": str(Path(path).resolve())}
    return checks
