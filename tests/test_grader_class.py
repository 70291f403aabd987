"""Class folders as instructors get them (issue 10): one malformed submission never stops
the others, links are never followed out, LMS downloads are recognised or refused with a
how-to, nothing is dropped silently, and the outputs are safe.

Every case here is a student in ONE class folder graded by the command line, which must
exit 0 and write JSON and CSV with every student in them.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest
from grader_helpers import CHECKS, ROOT, make_notebook

from course_lib.grade.__main__ import main as grade_main
from course_lib.grade.registry import load_checks
from course_lib.grade.submissions import GradingError, find_submissions

STEMS = ["extest"]


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _edit(path: Path, change) -> Path:
    nb = json.loads(path.read_text())
    change(nb)
    path.write_text(json.dumps(nb))
    return path


def _code_cells(nb, tag):
    return [c for c in nb["cells"] if tag in (c.get("metadata", {}).get("tags") or [])]


MALFORMED = {
    "not_json": ("not json at all", "is not valid notebook JSON"),
    "json_not_notebook": ('{"hello": "world"}', "is JSON but not a Jupyter notebook"),
    "nbformat3": (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [{"cells": []}]}),
                  "is an old nbformat 3 notebook"),
    "deeply_nested": ("[" * 200_000 + "]" * 200_000, "nested thousands of levels deep"),
}
DAMAGED = {   # valid notebooks with one cell damaged as the issue describes
    "metadata_list": (lambda c: c.__setitem__("metadata", ["tags"]), "metadata of cell"),
    "tags_int": (lambda c: c["metadata"].__setitem__("tags", 5), "tags of cell"),
    "source_null": (lambda c: c.__setitem__("source", ["def double(x):\n", None]), "source of cell"),
}


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    base = tmp_path_factory.mktemp("messy")
    folder = base / "class"
    masters = make_notebook(base / "masters" / "extest.ipynb", solutions=True).parent
    make_notebook(folder / "alice" / "extest.ipynb")                                   # all right
    for name, (text, _) in MALFORMED.items():
        _write_json(folder / name / "extest.ipynb", text)
    for name, (damage, _) in DAMAGED.items():
        nb = make_notebook(folder / name / "extest.ipynb")
        _edit(nb, lambda d, damage=damage: damage(_code_cells(d, "extest.1")[0]))
    make_notebook(folder / "missing_tag" / "extest.ipynb", {"extest.2": None})
    dup = make_notebook(folder / "duplicated_tag" / "extest.ipynb")                      # last definition wins
    _edit(dup, lambda d: d["cells"].append(dict(_code_cells(d, "extest.1")[0],
                                                source="def double(x):\n    return 0", id="dupdup")))
    moved = make_notebook(folder / "moved_cell" / "extest.ipynb")                         # exercise above setup
    _edit(moved, lambda d: d["cells"].insert(1, d["cells"].pop(d["cells"].index(_code_cells(d, "extest.3")[0]))))
    for name in ("name with spaces", "ünïcødé", "-rf", "=HYPERLINK(\"x\")", "bad\x1b[31mname\nline"):
        make_notebook(folder / name / "extest.ipynb")
    make_notebook(folder / "..dots" / "extest.ipynb")                                   # hidden: ignored
    make_notebook(folder / ".git" / "extest.ipynb")
    (folder / "linked_out").symlink_to(masters, target_is_directory=True)               # the masters!
    (folder / "linked_in").symlink_to(folder / "alice", target_is_directory=True)
    (folder / "linker").mkdir()
    (folder / "linker" / "extest.ipynb").symlink_to(masters / "extest.ipynb")
    (folder / "empty").mkdir()
    make_notebook(folder / "wrong_name" / "scratch.ipynb")
    older = make_notebook(folder / "twice" / "extest.ipynb", {"extest.1": "def double(x):\n    return 0"})
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    make_notebook(folder / "twice" / "extest (1).ipynb")                                 # newer, right
    make_notebook(folder / "stray.ipynb")                                                # at the top
    out = base / "out"
    argv = [str(folder), "--checks", str(CHECKS), "--json", str(out / "g.json"), "--csv", str(out / "g.csv")]
    return {"folder": folder, "out": out, "argv": argv}


@pytest.fixture(scope="module")
def graded(messy):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "course_lib.grade", *messy["argv"]], capture_output=True,
                          text=True, cwd=ROOT, timeout=900)
    data = json.loads((messy["out"] / "g.json").read_text())
    rows = list(csv.reader(io.StringIO((messy["out"] / "g.csv").read_text())))
    return {"proc": proc, "json": data["students"], "rows": rows}


def _student(graded, name):
    return {e["id"]: e for e in graded["json"][name]["exercises"]}


def test_grading_ran_and_wrote_both_files(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    # Progress, one line per student as they finish (stderr is not a terminal here).
    done = [line for line in proc.stderr.splitlines() if line.startswith("  ") and "/6" in line]
    assert len(done) == len(graded["json"]) and any(line.endswith("alice: 6/6") for line in done)


def test_the_good_students_are_graded(graded):
    for name in ("alice", "name with spaces", "ünïcødé", "-rf", '=HYPERLINK("x")', "moved_cell"):
        assert graded["json"][name]["total"] == 6.0, (name, graded["json"][name])


@pytest.mark.parametrize("name", list(MALFORMED) + list(DAMAGED))
def test_a_malformed_notebook_costs_only_its_student_with_one_line_naming_it(graded, name):
    expected = (MALFORMED.get(name) or DAMAGED[name])[1]
    for ex in _student(graded, name).values():
        assert ex["status"] == "error" and ex["points"] == 0
        assert ex["message"].startswith("could not read the notebook: extest.ipynb")
        assert expected in ex["message"] and "\n" not in ex["message"]


def test_missing_and_duplicated_tags(graded):
    missing = _student(graded, "missing_tag")
    assert missing["extest.2"]["message"].startswith("no cell tagged extest.2 in extest.ipynb")
    assert missing["extest.1"]["status"] == "passed"
    dup = _student(graded, "duplicated_tag")
    assert dup["extest.1"]["status"] == "failed"                # the later cell (return 0) counts
    assert "tagged extest.1; they ran in order" in graded["proc"].stdout


def test_links_are_never_followed(graded):
    assert "linked_out" not in graded["json"] and "linked_in" not in graded["json"]
    assert graded["json"]["linker"]["total"] == 0                 # its only notebook was a link
    out = graded["proc"].stdout
    assert "skipped linked_out: a symbolic link (to a place outside the class folder)" in out
    assert "skipped linked_in: a symbolic link (to a place inside the class folder)" in out
    assert "skipped linker/extest.ipynb: a symbolic link" in out


def test_nothing_is_dropped_silently(graded):
    out, students = graded["proc"].stdout, graded["json"]
    assert "ignored the hidden folder ..dots" in out and "ignored the hidden folder .git" in out
    assert "ignored stray.ipynb at the top of the class folder" in out
    assert "empty: the folder holds no notebook" in out and students["empty"]["total"] == 0
    assert "not graded: wrong_name/scratch.ipynb — expected one of extest.ipynb" in out
    assert "twice: 2 files for extest: graded 'extest (1).ipynb'" in out
    assert students["twice"]["total"] == 6.0                       # the newer file


def test_names_are_safe_in_the_terminal_and_the_csv(graded):
    out = graded["proc"].stdout
    assert "\x1b" not in out and "bad [31mname line" in out
    names = [row[0] for row in graded["rows"][1:]]
    assert "'=HYPERLINK(\"x\")" in names and "'-rf" in names
    assert all(not n[:1] in "=+-@" for n in names)
    assert len(graded["rows"]) - 1 == len(graded["json"])


# --- output paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["csv_is_a_folder", "json_inside_class", "csv_over_notebook", "same_file",
                                  "json_under_a_file"])
def test_bad_output_paths_are_refused_before_grading(tmp_path, capsys, case):
    folder = tmp_path / "class"
    make_notebook(folder / "alice" / "extest.ipynb")
    (tmp_path / "a_folder").mkdir()
    extra = {"csv_is_a_folder": ["--csv", str(tmp_path / "a_folder")],
             "json_inside_class": ["--json", str(folder / "grades.json")],
             "csv_over_notebook": ["--csv", str(tmp_path / "other.ipynb")],
             "same_file": ["--json", str(tmp_path / "g.txt"), "--csv", str(tmp_path / "g.txt")],
             "json_under_a_file": ["--json", str(tmp_path / "notes.txt" / "g.json")]}[case]
    (tmp_path / "notes.txt").write_text("mine")
    assert grade_main([str(folder), "--checks", str(CHECKS), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_a_failed_write_leaves_the_previous_grades_whole(tmp_path, capsys, monkeypatch):
    nb = make_notebook(tmp_path / "nb" / "extest.ipynb")
    target = tmp_path / "grades.json"
    target.write_text('{"previous": "grades"}')
    original = Path.write_text

    def full_disk(self, text, *args, **kwargs):
        original(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full_disk)
    assert grade_main([str(nb), "--checks", str(CHECKS), "--json", str(target)]) == 1
    monkeypatch.undo()
    assert target.read_text() == '{"previous": "grades"}'
    assert "could not write the results" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".grades.json")] == []


def test_an_empty_class_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "class").mkdir()
    assert grade_main([str(tmp_path / "class"), "--checks", str(CHECKS)]) == 2
    err = capsys.readouterr().err
    assert "no notebooks (.ipynb) here" in err and len(err.strip().splitlines()) == 1


# --- LMS downloads -------------------------------------------------------------------------------

def test_canvas_and_moodle_layouts_are_recognised(tmp_path):
    canvas = tmp_path / "canvas"
    make_notebook(canvas / "smithalice_1234_5678_extest.ipynb")
    late = make_notebook(canvas / "jonesbob_LATE_2345_6789_extest.ipynb")
    make_notebook(canvas / "jonesbob_LATE_2345_6790_extest-1.ipynb")
    os.utime(late, (time.time() - 60, time.time() - 60))
    subs = find_submissions(canvas, STEMS)
    assert (subs.kind, subs.layout) == ("class", "canvas")
    assert sorted(subs.students) == ["jonesbob_2345", "smithalice_1234"]
    assert subs.students["jonesbob_2345"]["extest"].name == "jonesbob_LATE_2345_6790_extest-1.ipynb"
    assert any("jonesbob_2345: 2 files for extest" in n for n in subs.notes)

    moodle = tmp_path / "moodle"
    make_notebook(moodle / "Alice Smith_111_assignsubmission_file_" / "extest.ipynb")
    (moodle / "Alice Smith_111_assignsubmission_onlinetext_").mkdir()
    (moodle / "Alice Smith_111_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>hi</p>")
    make_notebook(moodle / "Bob Jones_222_assignsubmission_file_" / "work" / "extest.ipynb")
    subs = find_submissions(moodle, STEMS)
    assert (subs.kind, subs.layout) == ("class", "moodle")
    assert sorted(subs.students) == ["Alice Smith_111", "Bob Jones_222"]
    assert all("extest" in found for found in subs.students.values())

    flat = tmp_path / "moodle_flat"
    make_notebook(flat / "Alice Smith_111_assignsubmission_file_extest.ipynb")
    make_notebook(flat / "Bob Jones_222_assignsubmission_file_extest (1).ipynb")
    subs = find_submissions(flat, STEMS)
    assert (subs.kind, sorted(subs.students)) == ("class", ["Alice Smith_111", "Bob Jones_222"])


@pytest.mark.parametrize("names", [["alice_extest.ipynb", "bob_extest.ipynb"],
                                   ["extest_alice.ipynb", "extest_bob.ipynb"]])
def test_an_unknown_flat_layout_is_refused_with_a_how_to(tmp_path, names):
    for name in names:
        make_notebook(tmp_path / "flat" / name)
    with pytest.raises(GradingError) as info:
        find_submissions(tmp_path / "flat", STEMS)
    assert "Arrange it as one folder per student" in str(info.value)


def test_a_student_folder_linking_to_the_course_repository_is_not_graded(tmp_path):
    folder = tmp_path / "class"
    make_notebook(folder / "alice" / "extest.ipynb")
    (folder / "mallory").symlink_to(ROOT, target_is_directory=True)
    subs = find_submissions(folder, load_checks([CHECKS]).notebooks)
    assert list(subs.students) == ["alice"]
    assert any(n.startswith("skipped mallory: a symbolic link") for n in subs.notes)


def test_a_students_own_folder_with_subfolders_is_one_student(tmp_path):
    make_notebook(tmp_path / "me" / "extest.ipynb")
    make_notebook(tmp_path / "me" / "old" / "extest.ipynb")
    subs = find_submissions(tmp_path / "me", STEMS)
    assert subs.kind == "folder" and list(subs.students) == ["me"]
    assert any("ignored the sub-folders old" in n for n in subs.notes)
