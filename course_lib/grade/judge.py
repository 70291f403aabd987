"""Turn one run of an exercise's check into a verdict: status, score and a sentence.

Used in both places a check runs — the grader's child process and ``self_check`` in a
notebook — so a student sees the same words in both.

What a check may return (see :mod:`course_lib.grade.api` for how checks are declared):

- ``None`` or ``True``: full points;
- ``False``: no points;
- a fraction in ``[0, 1]`` (e.g. ``return 0.5``): partial credit, that share of the points;
- ``(fraction, "why")``: partial credit with a sentence saying what was missing.

Anything short of full points has status ``failed``.
"""
from __future__ import annotations

import math
import os
import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path

from course_lib.grade.api import CheckFailed

STATUSES = ("passed", "failed", "not_implemented", "timeout", "error")
NOT_IMPLEMENTED = "not implemented yet"
MAX_MESSAGE = 600  # characters: a table cell, not a traceback


@dataclass(frozen=True)
class Verdict:
    status: str       # one of STATUSES
    fraction: float   # share of the exercise's points earned, 0..1
    message: str      # empty when passed


class TimeLimitExceeded(BaseException):
    """Raised into the check by ``self_check``'s alarm; a ``BaseException`` so that a
    student's ``except Exception`` does not swallow it."""


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Where library code lives: frames there are not the student's.
_LIBRARY_DIRS = tuple({str(Path(p).resolve()) + os.sep for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"], Path(__file__).resolve().parents[1])})


def is_student_frame(filename: str) -> bool:
    """True for code from a notebook cell (the grader names them ``<cell ...>``; Jupyter
    uses temporary files) rather than from Python, torch or course_lib."""
    if filename.startswith("<cell"):
        return True
    if filename.startswith("<"):
        return False
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return True
    return not resolved.startswith(_LIBRARY_DIRS)


def _student_frames(exc: BaseException) -> list:
    """The traceback frames that ran student code, innermost last. Cells run by the
    grader are named ``<cell ...>``; when there are any, they are the only student code."""
    frames = traceback.extract_tb(exc.__traceback__)
    cells = [f for f in frames if f.filename.startswith("<cell")]
    return cells or [f for f in frames if is_student_frame(f.filename)]


def where_in_student_code(exc: BaseException) -> str:
    """``" (line 4 of the cell tagged ex3.1)"`` for the innermost student frame, or ``""``."""
    frames = _student_frames(exc)
    if not frames:
        return ""
    frame = frames[-1]
    if frame.filename.startswith("<cell"):
        name = frame.filename[1:-1]  # "cell tagged ex3.1" or "cell 2 (setup)"
        return f" (line {frame.lineno} of {'the ' if name.startswith('cell tagged') else ''}{name})"
    return f" (line {frame.lineno} of your cell)"


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad shape (line 4 of your cell)"`` — one line a student can act on."""
    detail = shorten(str(exc), 300)
    name = type(exc).__name__
    return f"{name}: {detail}{where_in_student_code(exc)}" if detail else f"{name}{where_in_student_code(exc)}"


def _raised_by_student(exc: BaseException) -> bool:
    """Whether the innermost frame is student code (a stub's ``raise``), rather than a
    library saying an operation is unsupported."""
    frames = traceback.extract_tb(exc.__traceback__)
    student = _student_frames(exc)
    return bool(frames) and bool(student) and frames[-1] == student[-1]


def is_not_implemented(exc: BaseException, exercise_id: str) -> bool:
    return isinstance(exc, NotImplementedError) and (
        str(exc).startswith(f"{exercise_id}:") or _raised_by_student(exc))


def verdict_from_result(exercise, result) -> Verdict:
    """Interpret what a check returned (see the module docstring)."""
    message = ""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, message = result
    if hasattr(result, "item") and not isinstance(result, (bool, int, float)):
        result = result.item()  # a tensor or numpy scalar
    if result is None or result is True:
        return Verdict("passed", 1.0, "")
    if result is False:
        return Verdict("failed", 0.0, shorten(message or "wrong answer"))
    if isinstance(result, (int, float)) and math.isfinite(result) and 0 <= result <= 1:
        if result == 1:
            return Verdict("passed", 1.0, "")
        why = f" — {message}" if message else ""
        return Verdict("failed", float(result), shorten(f"partial credit: {float(result):.0%}{why}"))
    return Verdict("error", 0.0, shorten(
        f"the check of {exercise.id} returned {result!r}; a check returns None, True/False, a "
        f"fraction in [0, 1] or (fraction, message) — this is a bug in the check, tell your instructor"))


def run_check(exercise, fn, namespace: dict) -> Verdict:
    """Run ``exercise.check(fn, namespace)`` and say how it went. Never raises, except
    ``KeyboardInterrupt`` (someone asked to stop)."""
    try:
        result = exercise.check(fn, namespace)
    except KeyboardInterrupt:
        raise
    except TimeLimitExceeded:
        return Verdict("timeout", 0.0, f"took longer than {exercise.timeout:g} s — is there an "
                                       f"infinite loop, or a slow Python loop over pixels?")
    except CheckFailed as exc:
        return Verdict("failed", 0.0, shorten(str(exc) or "wrong answer"))
    except NotImplementedError as exc:
        if is_not_implemented(exc, exercise.id):
            return Verdict("not_implemented", 0.0, NOT_IMPLEMENTED)
        return Verdict("error", 0.0, f"{exercise.function} raised {describe_exception(exc)}")
    except SystemExit as exc:
        return Verdict("error", 0.0, f"{exercise.function} called sys.exit({exc.code!r}); "
                                     f"return the result instead of exiting")
    except BaseException as exc:  # anything the student's code raised
        return Verdict("error", 0.0, f"{exercise.function} raised {describe_exception(exc)}")
    try:
        return verdict_from_result(exercise, result)
    except Exception as exc:  # a result whose .item() fails, say
        return Verdict("error", 0.0, f"the check of {exercise.id} returned something unreadable "
                                     f"({describe_exception(exc)}); tell your instructor")
