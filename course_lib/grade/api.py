"""How an exercise check is declared. One module per notebook in ``grade/checks/``::

    @exercise("ex0.1", notebook="00_welcome", function="to_unit_range", points=1,
              reference="course_lib.plotting.to_unit_range")
    def check_to_unit_range(student):
        out = student(torch.tensor([-1.0, 0.0, 1.0]))
        expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type_name(out)}")

A check receives a :class:`~course_lib.grade.calling.Student` — "call the student's
function" — and nothing else: it never sees the student's function, namespace or
process. It raises :class:`CheckFailed` (via :func:`expect`) with a sentence a student can
act on, or returns a fraction for partial credit (see :mod:`course_lib.grade.judge`).
The same check runs in ``self_check`` (the notebook's kernel) and in the grader (through
the sandboxed worker); see AUTHORING.md for how to write one.

``reference`` names course_lib's own implementation(s) of the exercise, and any function
of an installed package that computes the answer outright (``"torchprofile.profile_macs"``
for a MAC count): calling them from the answer trips a wire and earns no points (a
deterrent; see :mod:`.calling`).
``provides`` maps names the exercise cell may use without defining (because the grader
runs each exercise on its own) to trusted course_lib functions, ``"module.attr"``.

A written question is declared next to the exercises of its notebook::

    written("q3.1", notebook="03_diffaugment", points=1, prompt="Why must T be differentiable?")

Its answer is the Markdown cell tagged ``q3.1``. The grader never runs or judges it: it
collects the text for the instructor (the CSV's columns after the exercises) and scores
it 0 of 0 automatic points; ``points`` is what the instructor marks it out of by hand, as
nbgrader's manually graded answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from course_lib.grade.wire import type_name  # noqa: F401 - re-exported for checks


class CheckFailed(AssertionError):
    """A check found a wrong answer; the message says what and, if possible, why."""


def expect(condition, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Exercise:
    id: str            # e.g. "ex3.1"; also the tag of the notebook cell holding it
    notebook: str      # notebook stem, e.g. "03_diffaugment"
    function: str      # the name the exercise cell must define
    points: float
    timeout: float     # seconds of the student's code: setup + the exercise cell + the calls
    check: Callable    # check(student) -> None | bool | fraction | (fraction, why)
    reference: tuple[str, ...] = ()              # "course_lib.module.function" (or a package's), tripwired
    provides: tuple = ()   # ((name, "course_lib.module.function"), ...)


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, *, notebook: str, function: str, points: float = 1.0, timeout: float = 60.0,
             reference: str | tuple[str, ...] = (), provides: dict | None = None):
    """Register the decorated function as the check of exercise ``id``."""
    references = (reference,) if isinstance(reference, str) else tuple(reference)
    for path in references:
        if "." not in path.strip("."):
            raise ValueError(f"{id}: reference {path!r} must name a function in a module, "
                             f"e.g. 'course_lib.latent.slerp' or 'torchprofile.profile_macs'")
    for path in (provides or {}).values():      # lent to the answer: course_lib's, trusted
        if not path.startswith("course_lib.") or "." not in path[len("course_lib."):]:
            raise ValueError(f"{id}: {path!r} must name a function of course_lib, "
                             f"e.g. 'course_lib.latent.slerp'")

    def register(check):
        if id in EXERCISES and EXERCISES[id].check.__qualname__ != check.__qualname__:
            raise ValueError(f"exercise {id} is registered twice")
        EXERCISES[id] = Exercise(id, notebook, function, points, timeout, check,
                                 references, tuple(sorted((provides or {}).items())))
        return check
    return register


@dataclass(frozen=True)
class Question:
    id: str            # e.g. "q3.1"; also the tag of the Markdown cell holding the answer
    notebook: str
    prompt: str        # the question, in short (for the instructor's columns)
    points: float      # marked by hand, out of this


QUESTIONS: dict[str, Question] = {}


def written(id: str, *, notebook: str, prompt: str, points: float = 1.0) -> Question:
    """Register the written question ``id`` of ``notebook`` (see the module docstring)."""
    from course_lib.notebook import QUESTION_TAG

    if not QUESTION_TAG.match(id):
        raise ValueError(f"a written question's id looks like 'q3.1', got {id!r}")
    question = Question(id, notebook, prompt, float(points))
    if QUESTIONS.get(id, question) != question:
        raise ValueError(f"written question {id} is registered twice")
    QUESTIONS[id] = question
    return question
