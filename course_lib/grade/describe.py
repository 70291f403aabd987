"""Telling a student what happened, in one safe line.

- :func:`clean` / :func:`shorten`: text that came from the student's code (an exception
  message, a folder name) loses its control characters (no terminal escapes, no
  newlines, no bidirectional overrides) and is cut to a table cell.
- :func:`describe_exception`: ``"ValueError: bad shape (line 4 of the cell tagged ex3.1)"``,
  naming the innermost frame of the student's own code.
- :func:`is_not_implemented`: a stub's ``raise NotImplementedError`` (as opposed to a
  library saying an operation is unsupported).

Used where the student's code runs (the worker, or ``self_check`` in the notebook), so
that both tell the same story.
"""
from __future__ import annotations

import os
import sysconfig
import traceback
import unicodedata
from pathlib import Path

MAX_MESSAGE = 600  # characters: a table cell, not a traceback


def clean(text) -> str:
    """``text`` with every control or format character (category Cc/Cf: escapes, NUL,
    newlines, bidi overrides, zero-width marks) replaced by a space, runs of whitespace
    collapsed."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in str(text))
    return " ".join(text.split())


def shorten(text, limit: int = MAX_MESSAGE) -> str:
    """One clean line of at most ``limit`` characters."""
    text = clean(text)
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
    except (OSError, ValueError):
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


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when even that fails (the student's ``__str__``)."""
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        return "<message could not be read>"


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad shape (line 4 of your cell)"`` — one line a student can act on."""
    detail = shorten(exception_text(exc), 300)
    name = shorten(type(exc).__name__, 80)
    where = where_in_student_code(exc)
    return f"{name}: {detail}{where}" if detail else f"{name}{where}"


def _raised_by_student(exc: BaseException) -> bool:
    """Whether the innermost frame is student code (a stub's ``raise``), rather than a
    library saying an operation is unsupported."""
    frames = traceback.extract_tb(exc.__traceback__)
    student = _student_frames(exc)
    return bool(frames) and bool(student) and frames[-1] == student[-1]


def is_not_implemented(exc: BaseException, exercise_id: str) -> bool:
    return isinstance(exc, NotImplementedError) and (
        exception_text(exc).startswith(f"{exercise_id}:") or _raised_by_student(exc))
