"""The autograder as pytest: ``pytest tests/autograde [--notebooks DIR]``.

``--notebooks DIR`` (a folder of notebooks, one notebook, or a class folder) is what
``test_exercises.py`` grades, one test per registered exercise; the default is
``solutions/``, so the normal test run proves the masters score 100%.
``test_course.py`` checks the course itself: every exercise has wrong-answer fixtures
that lose points, and the committed student notebooks score 0.

Grading runs once per session, all exercises in parallel (two workers); each test then
looks up its own exercise's result.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from autograde_helpers import ROOT, WRONG_ANSWERS, course_checks, replace_exercise_cell

from course_lib.grade.runner import GradingError, Job, grade_jobs, plan

WORKERS = int(os.environ.get("COURSE_GRADE_WORKERS", "2"))

# Wrong answers are replacement cell sources and fixtures are check files, not tests.
collect_ignore = ["wrong_answers", "fixtures"]


def pytest_addoption(parser):
    parser.addoption("--notebooks", default=None, metavar="DIR",
                     help="notebooks that tests/autograde grades (a folder, a notebook or a "
                          "class folder; default: solutions/)")


def graded_path(config) -> tuple[Path, bool]:
    """(what to grade, whether the user chose it)."""
    # getoption's default covers runs where this conftest was not loaded at start-up.
    chosen = config.getoption("--notebooks", default=None)
    return (Path(chosen), True) if chosen else (ROOT / "solutions", False)


def _jobs(path: Path, explicit: bool) -> list[Job]:
    try:
        return plan(path, course_checks())[1]
    except GradingError as exc:
        if explicit:
            raise pytest.UsageError(f"--notebooks: {exc}") from None
        return []  # e.g. solutions/ has no notebooks yet


def _wrong_answer_cases() -> list[tuple]:
    cases = []
    for ex in sorted(course_checks().exercises.values(), key=lambda e: e.id):
        for file in sorted((WRONG_ANSWERS / ex.id).glob("*.py")):
            cases.append((ex, file))
    return cases


def pytest_generate_tests(metafunc):
    config = metafunc.config
    if "solution_job" in metafunc.fixturenames:
        path, explicit = graded_path(config)
        jobs = _jobs(path, explicit)
        many_students = len({j.student for j in jobs}) > 1
        metafunc.parametrize("solution_job", jobs, ids=[
            f"{j.student}/{j.exercise.id}" if many_students else j.exercise.id for j in jobs])
    if "student_job" in metafunc.fixturenames:
        jobs = _jobs(ROOT / "notebooks", False)
        metafunc.parametrize("student_job", jobs, ids=[j.exercise.id for j in jobs])
    if "registered_exercise" in metafunc.fixturenames:
        exercises = sorted(course_checks().exercises.values(), key=lambda e: e.id)
        metafunc.parametrize("registered_exercise", exercises, ids=[e.id for e in exercises])
    if "wrong_answer" in metafunc.fixturenames:
        cases = _wrong_answer_cases()
        metafunc.parametrize("wrong_answer", cases, ids=[f"{ex.id}/{f.stem}" for ex, f in cases])


class BatchGrader:
    """Grades all its jobs in one parallel batch, the first time any result is asked for.

    ``make_jobs()`` returns ``{key: Job}``; ``result(key)`` is that job's ExerciseResult.
    """

    def __init__(self, make_jobs):
        self.make_jobs = make_jobs
        self.results = None

    def result(self, key):
        if self.results is None:
            jobs = self.make_jobs()
            graded = grade_jobs(list(jobs.values()), course_checks(), workers=WORKERS)
            self.results = dict(zip(jobs, graded))
        return self.results[key]


@pytest.fixture(scope="session")
def solution_grader(pytestconfig):
    return BatchGrader(lambda: {job: job for job in _jobs(*graded_path(pytestconfig))})


@pytest.fixture(scope="session")
def student_grader():
    return BatchGrader(lambda: {job: job for job in _jobs(ROOT / "notebooks", False)})


@pytest.fixture(scope="session")
def wrong_answer_grader(tmp_path_factory):
    """Grades every wrong answer (the master with one exercise cell replaced) in one batch;
    keys are ``(exercise id, wrong-answer file)``."""
    def make_jobs():
        folder = tmp_path_factory.mktemp("wrong_answers")
        jobs = {}
        for ex, file in _wrong_answer_cases():
            master = ROOT / "solutions" / f"{ex.notebook}.ipynb"
            if master.exists():  # a missing master is reported by test_course.py
                dest = folder / ex.id / file.stem / master.name
                replace_exercise_cell(master, ex.id, file.read_text(encoding="utf-8"), dest)
                jobs[(ex.id, file)] = Job(f"{ex.id}/{file.stem}", dest, ex)
        return jobs

    return BatchGrader(make_jobs)
