"""Turn one run of an exercise's check into a verdict: status, score and a sentence.

The judge's side of grading. A check runs here, against a
:class:`~course_lib.grade.calling.Student`; whatever the student's code does — raise,
exit, call the reference, hang — arrives as an exception from that interface, and
:func:`run_check` turns it into the same words in ``self_check`` and in the grader.

What a check may return (see :mod:`course_lib.grade.api` for how checks are declared):

- ``None`` or ``True``: full points;
- ``False``: no points;
- a fraction in ``[0, 1]`` (e.g. ``return 0.5``): partial credit, that share of the points;
- ``(fraction, "why")``: partial credit with a sentence saying what was missing.

Anything short of full points has status ``failed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from course_lib.grade.api import CheckFailed
from course_lib.grade.calling import Delegated, StudentRaised, WorkerGone
from course_lib.grade.describe import describe_exception, shorten

STATUSES = ("passed", "failed", "not_implemented", "timeout", "error")
NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class Verdict:
    status: str       # one of STATUSES
    fraction: float   # share of the exercise's points earned, 0..1
    message: str      # empty when passed


class TimeLimitExceeded(BaseException):
    """Raised into the check by ``self_check``'s alarm; a ``BaseException`` so that a
    student's ``except Exception`` does not swallow it."""


def timeout_message(seconds: float) -> str:
    return (f"took longer than {seconds:g} s — is there an infinite loop, or a slow Python "
            f"loop over pixels?")


def delegation_message(function: str, name: str) -> str:
    short = name.rpartition(".")[2]
    whose = "course_lib's own" if name.startswith("course_lib.") else "the ready-made"
    return (f"{function} calls {whose} {short} ({name}): write it yourself — an answer "
            f"that hands the work to the reference earns no points")


def verdict_from_raised(function: str, info: dict) -> Verdict:
    """The verdict when the student's function raised (``StudentRaised.info``)."""
    if info.get("not_implemented"):
        return Verdict("not_implemented", 0.0, NOT_IMPLEMENTED)
    if info.get("type") == "SystemExit":
        return Verdict("error", 0.0, f"{function} called sys.exit({info.get('exit_code')}); "
                                     f"return the result instead of exiting")
    return Verdict("error", 0.0, shorten(f"{function} raised {info.get('text', '')}"))


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


def run_check(exercise, student) -> Verdict:
    """Run ``exercise.check(student)`` and say how it went. Never raises, except
    ``KeyboardInterrupt`` (someone asked to stop) and ``WorkerGone`` (the grader's worker
    stopped answering; the runner says why)."""
    try:
        result = exercise.check(student)
    except (KeyboardInterrupt, WorkerGone):
        raise
    except TimeLimitExceeded:
        return Verdict("timeout", 0.0, timeout_message(exercise.timeout))
    except CheckFailed as exc:
        return Verdict("failed", 0.0, shorten(str(exc) or "wrong answer"))
    except Delegated as exc:
        return Verdict("failed", 0.0, delegation_message(exercise.function, exc.name))
    except StudentRaised as exc:
        return verdict_from_raised(exercise.function, exc.info)
    except Exception as exc:  # the check could not make sense of what came back
        return Verdict("error", 0.0, shorten(
            f"the check of {exercise.id} could not use what {exercise.function} returned "
            f"({type(exc).__name__}: {exc}); return what the exercise asks for"))
    try:
        return verdict_from_result(exercise, result)
    except Exception as exc:  # a result whose .item() fails, say
        return Verdict("error", 0.0, f"the check of {exercise.id} returned something unreadable "
                                     f"({describe_exception(exc)}); tell your instructor")
