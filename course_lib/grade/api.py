"""How an exercise check is declared. One module per notebook in ``grade/checks/``::

    @exercise("ex3.1", notebook="03_diffaugment", function="rand_translation", points=2)
    def check_rand_translation(fn, ns):
        out = fn(torch.zeros(2, 3, 8, 8))
        expect(out.shape == (2, 3, 8, 8), f"shape: expected (2, 3, 8, 8), got {tuple(out.shape)}")

A check receives the student's function and the namespace it was defined in, and raises
:class:`CheckFailed` with a sentence a student can act on. Any other exception raised by
the student's code counts as an error in that exercise; ``NotImplementedError`` counts as
"not implemented yet".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


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
    timeout: float     # seconds for setup + the exercise cell + the check
    check: Callable    # check(fn, namespace) -> None, raises CheckFailed


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, *, notebook: str, function: str, points: float = 1.0, timeout: float = 60.0):
    """Register the decorated function as the check of exercise ``id``."""
    def register(check):
        if id in EXERCISES and EXERCISES[id].check.__qualname__ != check.__qualname__:
            raise ValueError(f"exercise {id} is registered twice")
        EXERCISES[id] = Exercise(id, notebook, function, points, timeout, check)
        return check
    return register
