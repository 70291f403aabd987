"""The course's grading is truthful (issue 3):

- every registered exercise has a master notebook with a cell tagged with its id;
- every exercise has at least one plausible wrong answer in ``wrong_answers/<id>/*.py``
  (each file: the full source of the exercise cell), and each one loses points;
- the committed student notebooks score 0, "not implemented yet" everywhere.

(``solutions/`` scoring 100% is ``test_exercises.py`` with its default ``--notebooks``.)
With no exercises registered yet, these have nothing to parametrise and are skipped.
"""
from autograde_helpers import ROOT, WRONG_ANSWERS, course_checks

from course_lib.notebook import load_cells


def test_every_exercise_has_a_master(registered_exercise):
    ex = registered_exercise
    master = ROOT / "solutions" / f"{ex.notebook}.ipynb"
    assert master.exists(), f"{ex.id} is registered for notebook {ex.notebook}, but {master} is missing"
    tagged = [c for c in load_cells(master) if ex.id in c.tags]
    assert tagged, f"{master.name} has no cell tagged {ex.id}"
    assert f"def {ex.function}" in tagged[0].source, (
        f"the cell tagged {ex.id} in {master.name} does not define {ex.function}")


def test_every_exercise_has_a_wrong_answer(registered_exercise):
    folder = WRONG_ANSWERS / registered_exercise.id
    assert sorted(folder.glob("*.py")), (
        f"add at least one plausible wrong answer for {registered_exercise.id} as "
        f"{folder.relative_to(ROOT)}/<what_it_gets_wrong>.py (the full source of the exercise cell)")


def test_wrong_answers_folders_match_exercises():
    known = set(course_checks().exercises)
    stale = sorted(p.name for p in WRONG_ANSWERS.iterdir() if p.is_dir() and p.name not in known) \
        if WRONG_ANSWERS.is_dir() else []
    assert not stale, f"wrong_answers/ has folders for unregistered exercises: {stale}"


def test_wrong_answer_loses_points(wrong_answer, wrong_answer_grader):
    ex, file = wrong_answer
    result = wrong_answer_grader.result((ex.id, file))
    assert result.points < result.max, (
        f"the wrong answer {file.relative_to(ROOT)} scored {result.points:g}/{result.max:g}: "
        f"the checks of {ex.id} do not catch it")
    assert result.status != "timeout", f"{file.name} timed out instead of failing a check"


def test_student_notebook_scores_zero(student_job, student_grader):
    result = student_grader.result(student_job)
    assert (result.status, result.points) == ("not_implemented", 0), (
        f"notebooks/{student_job.notebook.name}, {result.id}: expected 'not implemented yet' "
        f"and 0 points, got {result.status} {result.points:g}/{result.max:g} — {result.message}")
    assert result.message == "not implemented yet"
