"""One test per registered exercise of the notebooks being graded (``--notebooks DIR``,
default ``solutions/``): it passes when the exercise earns full points, and otherwise
fails with the grader's message — the same words ``python -m course_lib.grade`` prints."""


def test_exercise(solution_job, solution_grader):
    result = solution_grader.result(solution_job)
    assert result.status == "passed" and result.points == result.max, (
        f"{result.id} ({result.function}) in {solution_job.student}: {result.status}, "
        f"{result.points:g}/{result.max:g} — {result.message}")
