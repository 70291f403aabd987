"""Written questions (issue 12): Markdown answer cells tagged ``q<N>.<k>`` that the grader
never runs nor judges. It collects them for the instructor (the CSV's columns after the
exercises, the JSON's "written" list) at 0 automatic points; ``make student`` blanks them.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat
import pytest
from grader_helpers import CHECKS, ROOT, make_notebook
from nbformat.v4 import new_markdown_cell

from course_lib.grade.__main__ import main as grade_main
from course_lib.grade.registry import load_checks
from course_lib.notebook import ANSWER_PLACEHOLDER, load_answers, question_tags
from course_lib.student import AuthoringError, student_version

WRITTEN = ROOT / "tests" / "autograde" / "fixtures" / "extest_written.py"


def with_answer(path: Path, answer: str | None, tag: str = "qtest.1") -> Path:
    """``path`` (an extest notebook) with a question and, unless None, its answer cell."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_markdown_cell("✍️ **Question.** Why is doubling adding x to itself?"))
    if answer is not None:
        cell = new_markdown_cell(answer)
        cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_student_version_blanks_the_model_answer(tmp_path):
    nb = nbformat.read(with_answer(make_notebook(tmp_path / "extest.ipynb", solutions=True),
                                   "Because x + x = 2x: the model answer."), as_version=4)
    student = student_version(nb, tmp_path / "extest.ipynb")
    answers = [c for c in student.cells if question_tags(c)]
    assert [c.source for c in answers] == [ANSWER_PLACEHOLDER]
    assert "model answer" not in json.dumps(student)


@pytest.mark.parametrize("tags", [["qtest.1", "qtest.2"], ["qtest.1", "extest.1"]])
def test_a_malformed_answer_cell_is_an_authoring_error(tmp_path, tags):
    nb = nbformat.read(make_notebook(tmp_path / "extest.ipynb", solutions=True), as_version=4)
    cell = new_markdown_cell("an answer")
    cell.metadata["tags"] = tags
    nb.cells.append(cell)
    with pytest.raises(AuthoringError):
        student_version(nb, tmp_path / "extest.ipynb")


def test_load_answers_reads_markdown_and_ignores_the_placeholder(tmp_path):
    path = with_answer(make_notebook(tmp_path / "extest.ipynb"), "  my answer\n\nin two paragraphs ")
    assert load_answers(path) == {"qtest.1": "my answer\n\nin two paragraphs"}
    blank = with_answer(make_notebook(tmp_path / "blank" / "extest.ipynb"), ANSWER_PLACEHOLDER)
    assert load_answers(blank) == {"qtest.1": ""}


def test_class_csv_has_the_answers_after_the_exercises(tmp_path):
    folder = tmp_path / "class"
    with_answer(make_notebook(folder / "alice" / "extest.ipynb"),
                "Because x + x = 2 x.\n\nAnd =1+1 is 2.")
    with_answer(make_notebook(folder / "bob" / "extest.ipynb"), ANSWER_PLACEHOLDER)
    with_answer(make_notebook(folder / "carol" / "extest.ipynb"), "=HYPERLINK(\"http://x\")")
    out = tmp_path / "out"
    assert grade_main([str(folder), "--checks", str(CHECKS), "--checks", str(WRITTEN),
                       "--csv", str(out / "g.csv"), "--json", str(out / "g.json")]) == 0
    rows = list(csv.reader(io.StringIO((out / "g.csv").read_text())))
    assert rows[0] == ["student", "total", "max", "extest.1", "extest.2", "extest.3", "qtest.1"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["alice"][1:] == ["6", "6", "2", "3", "1", "Because x + x = 2 x. And =1+1 is 2."]
    assert by_name["bob"][-1] == ""
    assert by_name["carol"][-1] == "'=HYPERLINK(\"http://x\")"   # shown as text, never run
    data = json.loads((out / "g.json").read_text())["students"]
    (alice,) = data["alice"]["written"]
    assert alice == {"notebook": "extest", "id": "qtest.1", "points": 0.0, "max": 0.0, "manual_max": 2.0,
                     "status": "needs manual grading", "answer": "Because x + x = 2 x.\n\nAnd =1+1 is 2."}
    assert data["bob"]["written"][0]["status"] == "unanswered"
    assert data["alice"]["total"] == data["alice"]["max"] == 6.0     # written answers add no points


def test_single_notebook_table_lists_the_question(tmp_path, capsys):
    nb = with_answer(make_notebook(tmp_path / "extest.ipynb"), "one two three")
    assert grade_main([str(nb), "--checks", str(CHECKS), "--checks", str(WRITTEN)]) == 0
    out = capsys.readouterr().out
    assert "qtest.1" in out and "needs manual grading, out of 2 (3 words)" in out
    assert "Total: 6/6 (100%)" in out


def test_course_questions_have_master_cells_and_blank_student_cells():
    questions = load_checks().questions
    assert 4 <= len(questions) <= 6
    assert {q.notebook for q in questions.values()} >= {"01_gan_basics", "02_overfitting",
                                                        "03_diffaugment", "04_few_shot_faces"}
    for q in questions.values():
        master = load_answers(ROOT / "solutions" / f"{q.notebook}.ipynb")
        assert len(master.get(q.id, "").split()) >= 20, f"{q.id}: no model answer in the master"
        student = load_answers(ROOT / "notebooks" / f"{q.notebook}.ipynb")
        assert student == {**student, q.id: ""}, f"{q.id}: the student notebook is not blank"
