"""The autograder and the notebooks' self-checks.

- In a notebook: ``from course_lib.grade import self_check`` (see :mod:`.selfcheck`).
- Declaring checks: :mod:`.api` (``@exercise``, ``expect``, ``CheckFailed``), one module
  per notebook in :mod:`.checks`, each written against "call the student's function"
  (:mod:`.calling`) with trusted objects from :mod:`.fixtures`. A check may return a
  fraction for partial credit (``return 0.5``; see :mod:`.judge`).
- Grading: ``python -m course_lib.grade PATH`` (:mod:`.__main__`, :mod:`.runner`,
  :mod:`.submissions`, :mod:`.output`). The judge (this process) runs the checks; student
  code runs in workers forked per exercise from a warm zygote (:mod:`.zygote`,
  :mod:`.worker`), under bubblewrap where it works (:mod:`.sandbox`); they talk in plain
  data (:mod:`.wire`).

Importing this package is cheap: the checks (and torch) load on first use.
"""
from course_lib.grade.api import EXERCISES, CheckFailed, Exercise, exercise, expect
from course_lib.grade.selfcheck import self_check

__all__ = ["EXERCISES", "CheckFailed", "Exercise", "exercise", "expect", "self_check"]
