"""The exercise checks, one module per notebook: ``nbNN_name.py`` (e.g. ``nb03_diffaugment.py``).

Importing this package imports every ``nb*.py`` module in it, so that all their
``@exercise`` registrations land in :data:`course_lib.grade.api.EXERCISES`. A module that
fails to import is recorded in :data:`IMPORT_ERRORS` rather than raised here, so one
broken module does not stop the self-checks of the other notebooks; the grader refuses
to run while any module is broken (:func:`course_lib.grade.registry.course_exercises`).

Checks run in the judge (the grader's own process) and in ``self_check``; the worker
that runs student code never imports them. ``COURSE_GRADE_LAZY_CHECKS=1`` skips the
import-everything step (for tools that load one module themselves).
"""
from __future__ import annotations

import importlib
import os
import pkgutil

IMPORT_ERRORS: dict[str, str] = {}


def load_all() -> dict[str, str]:
    """Import every ``nb*`` module of this package; return ``{module: error}`` for failures."""
    IMPORT_ERRORS.clear()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("nb"):
            continue
        name = f"{__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:
            IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"
    return dict(IMPORT_ERRORS)


if os.environ.get("COURSE_GRADE_LAZY_CHECKS") != "1":
    load_all()
