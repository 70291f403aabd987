"""The grader, on a tiny pretend notebook ``extest`` (tests/autograde/fixtures/extest_checks.py):
right answers score full, untouched stubs score 0, wrong answers lose points with the
check's message, and hostile notebooks cost only the exercise they break.

No torch in these exercises, so each graded exercise takes a fraction of a second.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from grader_helpers import CHECKS, RIGHT, ROOT, SOLUTIONS, make_notebook

from course_lib.grade import api, selfcheck
from course_lib.grade.__main__ import main as grade_main
from course_lib.grade.judge import Verdict, verdict_from_result
from course_lib.grade.registry import load_check_file, load_checks
from course_lib.grade.runner import grade_path
from course_lib.grade.sandbox import OUTPUT_HEAD, OUTPUT_TAIL
from course_lib.student import student_version

@pytest.fixture(scope="module")
def checks():
    return load_checks([CHECKS])


def grade(path, checks, **kwargs):
    """{exercise id: result} for a notebook or folder."""
    grading = grade_path(path, checks=checks, workers=2, **kwargs)
    (report,) = grading.reports.values()
    return {r.id: r for r in report.results}


def statuses(results):
    return {i: r.status for i, r in results.items()}


# --- scoring -------------------------------------------------------------------------

def test_correct_notebook_scores_full(tmp_path, checks):
    results = grade(make_notebook(tmp_path / "extest.ipynb"), checks)
    assert statuses(results) == dict.fromkeys(SOLUTIONS, "passed")
    assert [(r.points, r.max, r.message) for r in results.values()] == [(2, 2, ""), (3, 3, ""), (1, 1, "")]


def test_untouched_student_notebook_scores_zero(tmp_path, checks):
    master = make_notebook(tmp_path / "master" / "extest.ipynb", solutions=True)
    nb = student_version(nbformat.read(master, as_version=4), master)
    nbformat.write(nb, tmp_path / "extest.ipynb")
    results = grade(tmp_path / "extest.ipynb", checks)
    assert statuses(results) == dict.fromkeys(SOLUTIONS, "not_implemented")
    assert {r.message for r in results.values()} == {"not implemented yet"}
    assert sum(r.points for r in results.values()) == 0


def test_wrong_answers_lose_points_with_the_checks_message(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {
        "extest.1": "def double(x):\n    return x + 2",
        "extest.2": "def clip(xs, lo, hi):\n    return [min(x, hi) for x in xs]",  # forgets lo
        "extest.3": "def mean(xs):\n    return xs[0]"})
    results = grade(nb, checks)
    assert statuses(results) == dict.fromkeys(SOLUTIONS, "failed")
    assert results["extest.1"].points == 0
    assert results["extest.1"].message == "double(0) should be 0, got 2"
    # partial credit: 2 of 4 clip cases are right -> half of 3 points
    assert results["extest.2"].points == 1.5
    assert results["extest.2"].message == ("partial credit: 50% — clip([1, 5, 9], 2, 8) should be [2, 5, 8], got [1, 5, 8]")
    assert results["extest.3"].message == "mean([1, 2, 3]) should be 2, got 1"


def test_an_exception_is_summarised_in_one_line(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {"extest.3": "def mean(xs):\n    return sum(xs) / 0"})
    r = grade(nb, checks)["extest.3"]
    assert (r.status, r.points) == ("error", 0)
    assert r.message == "mean raised ZeroDivisionError: division by zero (line 2 of the cell tagged extest.3)"


def test_missing_cell_or_function(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {"extest.1": None,
                                                   "extest.3": "def average(xs):\n    return 0"})
    results = grade(nb, checks)
    assert results["extest.1"].status == "failed"
    assert results["extest.1"].message.startswith("no cell tagged extest.1 in extest.ipynb — did you delete it")
    assert results["extest.3"].status == "failed"
    assert results["extest.3"].message == ("the cell tagged extest.3 must define a function named mean "
                                           "(it defines average) — did you rename it?")
    assert results["extest.2"].status == "passed"


def test_broken_setup_cell_and_unreadable_notebook(tmp_path, checks):
    nb = nbformat.read(make_notebook(tmp_path / "a" / "extest.ipynb"), as_version=4)
    nb.cells[2].source = "SCALE = 1 / 0"
    nbformat.write(nb, tmp_path / "a" / "extest.ipynb")
    r = grade(tmp_path / "a" / "extest.ipynb", checks)["extest.3"]
    assert r.status == "error"
    assert r.message.startswith("running cell 3 (setup) raised ZeroDivisionError")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "extest.ipynb").write_text('{"cells": [')
    results = grade(tmp_path / "b" / "extest.ipynb", checks)
    assert statuses(results) == dict.fromkeys(SOLUTIONS, "error")
    assert results["extest.1"].message.startswith("could not read the notebook: extest.ipynb is not valid notebook JSON")


def test_only_selects_exercises(tmp_path, checks):
    results = grade(make_notebook(tmp_path / "extest.ipynb"), checks, only={"extest.3"})
    assert list(results) == ["extest.3"]


# --- hostile notebooks: each costs only the exercise it breaks -------------------------

def test_infinite_loop_times_out(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {
        "extest.2": "def clip(xs, lo, hi):\n    while True:\n        pass"})
    started = time.monotonic()
    results = grade(nb, checks)
    assert time.monotonic() - started < 30
    r = results["extest.2"]
    assert (r.status, r.points) == ("timeout", 0)
    assert r.message.startswith("stopped after 3 s") and "infinite loop" in r.message
    assert results["extest.1"].status == results["extest.3"].status == "passed"


def test_output_flood_is_capped_and_still_graded(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {
        # ~30 MB on stdout from the function and ~5 MB on stderr from the cell itself
        "extest.1": ("import sys\nsys.stderr.write('e' * 5_000_000)\n"
                     "def double(x):\n    for _ in range(300):\n        print('x' * 100_000)\n"
                     "    return x * SCALE")})
    r = grade(nb, checks)["extest.1"]
    assert (r.status, r.points) == ("passed", 2)
    assert len(r.output) <= OUTPUT_HEAD + OUTPUT_TAIL + 100
    assert "bytes of output not kept" in r.output


@pytest.mark.parametrize("where", ["cell", "function"])
def test_sys_exit_costs_only_that_exercise(tmp_path, checks, where):
    source = ("import sys\nsys.exit(0)\ndef mean(xs):\n    return sum(xs) / len(xs)" if where == "cell"
              else "import sys\ndef mean(xs):\n    sys.exit(0)")
    results = grade(make_notebook(tmp_path / "extest.ipynb", {"extest.3": source}), checks)
    r = results["extest.3"]
    assert (r.status, r.points) == ("error", 0)
    assert "sys.exit(0)" in r.message
    assert results["extest.1"].status == results["extest.2"].status == "passed"


@pytest.mark.parametrize("where", ["cell", "function"])
def test_os_exit_does_not_count_as_passed(tmp_path, checks, where):
    source = ("import os\ndef double(x):\n    return x * SCALE\nos._exit(0)" if where == "cell"
              else "import os\ndef double(x):\n    os._exit(0)")
    results = grade(make_notebook(tmp_path / "extest.ipynb", {"extest.1": source}), checks)
    r = results["extest.1"]
    assert (r.status, r.points) == ("error", 0)
    assert "os._exit()" in r.message and "exit code 0" in r.message
    assert results["extest.2"].status == results["extest.3"].status == "passed"


FAKE_RESULT = """\
import json, os
fake = {"kind": "result", "status": "passed", "fraction": 1.0, "points": 2, "message": "",
        "nonce": "0" * 32}
line = "\\n" + json.dumps(fake) + "\\n"
print(line); print("PASSED extest.1 2/2"); print(json.dumps({"total": 6, "max": 6}))
os.write(2, line.encode())
for fd in range(3, 256):   # whatever pipes the grader left open
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
def double(x):
    raise NotImplementedError("extest.1: implement double")
"""


def test_a_printed_fake_result_is_ignored(tmp_path, checks):
    r = grade(make_notebook(tmp_path / "extest.ipynb", {"extest.1": FAKE_RESULT}), checks)["extest.1"]
    assert (r.status, r.points) == ("not_implemented", 0)


VANDAL = """\
import os, shutil
for folder in (".", ".."):   # its working folder and the one around it
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".ipynb"):
            open(path, "w").write("garbage")
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    open(os.path.join(folder, "PWNED"), "w").write("x")
def clip(xs, lo, hi):
    return [min(max(x, lo), hi) for x in xs]
"""


def _fingerprint(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def make_class(folder: Path) -> Path:
    make_notebook(folder / "alice" / "extest.ipynb")                       # all right
    master = make_notebook(folder.parent / "masters" / "extest.ipynb", solutions=True)
    (folder / "bob").mkdir()
    nbformat.write(student_version(nbformat.read(master, as_version=4), master),
                   folder / "bob" / "extest (1).ipynb")                    # untouched, renamed by the LMS
    make_notebook(folder / "mallory" / "work" / "extest.ipynb", {          # hostile, in a sub-folder
        "extest.1": FAKE_RESULT, "extest.2": VANDAL})
    (folder / "mallory" / "notes.txt").write_text("my notes")
    (folder / "dave").mkdir()
    (folder / "dave" / "extest.ipynb").write_text("not json")              # corrupt
    (folder / "erin").mkdir()
    make_notebook(folder / "erin" / "scratch.ipynb")                       # not the assignment
    return folder


def test_class_folder_with_a_vandal(tmp_path, checks):
    folder = make_class(tmp_path / "class")
    before = _fingerprint(folder)
    grading = grade_path(folder, checks=checks, workers=2)
    assert grading.kind == "class"
    assert _fingerprint(folder) == before                 # submissions untouched
    assert not (ROOT / "PWNED").exists() and not (ROOT / "tests" / "PWNED").exists()
    got = {name: {r.id: (r.status, r.points) for r in rep.results} for name, rep in grading.reports.items()}
    assert got["alice"] == {"extest.1": ("passed", 2), "extest.2": ("passed", 3), "extest.3": ("passed", 1)}
    assert {s for s, _ in got["bob"].values()} == {"not_implemented"}
    assert got["mallory"] == {"extest.1": ("not_implemented", 0), "extest.2": ("passed", 3),
                              "extest.3": ("passed", 1)}
    assert {s for s, _ in got["dave"].values()} == {"error"}
    erin = grading.reports["erin"].results
    assert {r.status for r in erin} == {"failed"}
    assert erin[0].message == "no notebook extest.ipynb in this submission"
    assert grading.ungraded == ["scratch.ipynb"]


# --- the command line ------------------------------------------------------------------

def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "course_lib.grade", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=300)


def test_cli_class_json_and_csv(tmp_path):
    folder = tmp_path / "class"
    make_notebook(folder / "alice" / "extest.ipynb")
    make_notebook(folder / "bob" / "extest.ipynb", {"extest.2": "def clip(xs, lo, hi):\n    return xs",
                                                    "extest.3": "import os\nos._exit(3)"})
    proc = run_cli(folder, "--checks", CHECKS, "--json", tmp_path / "out" / "grades.json",
                   "--csv", tmp_path / "out" / "grades.csv")
    assert proc.returncode == 0, proc.stderr
    assert "Class summary" in proc.stdout and "alice" in proc.stdout
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert list(data) == ["students"] and sorted(data["students"]) == ["alice", "bob"]
    for report in data["students"].values():
        assert list(report) == ["total", "max", "exercises"]
        assert all(isinstance(report[k], float) for k in ("total", "max"))
        for ex in report["exercises"]:
            assert list(ex) == ["notebook", "id", "points", "max", "status", "message"]
            assert ex["notebook"] == "extest" and isinstance(ex["points"], float)
    assert data["students"]["alice"]["total"] == data["students"]["alice"]["max"] == 6.0
    bob = {e["id"]: e for e in data["students"]["bob"]["exercises"]}
    assert bob["extest.2"]["status"] == "failed" and bob["extest.2"]["points"] == 1.5
    assert bob["extest.3"]["status"] == "error"
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    assert rows == [["student", "total", "max", "extest.1", "extest.2", "extest.3"],
                    ["alice", "6", "6", "2", "3", "1"],
                    ["bob", "3.5", "6", "2", "1.5", "0"]]


def test_cli_single_notebook_json(tmp_path):
    nb = make_notebook(tmp_path / "extest.ipynb", {"extest.1": "def double(x):\n    return 0"})
    assert grade_main([str(nb), "--checks", str(CHECKS), "--json", str(tmp_path / "g.json"),
                       "--csv", str(tmp_path / "g.csv")]) == 0
    data = json.loads((tmp_path / "g.json").read_text())
    assert list(data) == ["total", "max", "exercises"]
    assert (data["total"], data["max"]) == (4.0, 6.0)
    assert [e["status"] for e in data["exercises"]] == ["failed", "passed", "passed"]
    assert (tmp_path / "g.csv").read_text().splitlines()[1] == "extest.ipynb,4,6,0,3,1"


def test_exit_status_is_zero_whenever_grading_ran(tmp_path, capsys):
    nb = make_notebook(tmp_path / "extest.ipynb", {k: f"{k} is not python" for k in RIGHT})
    assert grade_main([str(nb), "--checks", str(CHECKS)]) == 0
    out = capsys.readouterr().out
    assert "Total: 0/6 (0%)" in out and "SyntaxError" in out


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or folder"),
    ("not_a_notebook", "is not a notebook"),
    ("empty_folder", "no notebooks (.ipynb) here"),
    ("bad_checks", "checks file"),
    ("workers", "--workers must be at least 1"),
])
def test_exit_status_is_nonzero_when_the_grader_cannot_run(tmp_path, capsys, case, message):
    nb = make_notebook(tmp_path / "nb" / "extest.ipynb")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    args = {"missing": [str(tmp_path / "nope")],
            "not_a_notebook": [str(tmp_path / "notes.txt")],
            "empty_folder": [str(tmp_path / "empty")],
            "bad_checks": [str(nb), "--checks", str(tmp_path / "nope.py")],
            "workers": [str(nb), "--workers", "0"]}[case]
    assert grade_main(args) == 2
    assert message in capsys.readouterr().err


def test_extra_checks_do_not_leak_into_the_course_registry():
    before = dict(api.EXERCISES)
    assert set(load_check_file(CHECKS)) == set(SOLUTIONS)
    assert api.EXERCISES == before and "extest.1" not in api.EXERCISES


# --- partial credit ----------------------------------------------------------------------

@pytest.mark.parametrize("returned, expected", [
    (None, Verdict("passed", 1.0, "")),
    (True, Verdict("passed", 1.0, "")),
    (1, Verdict("passed", 1.0, "")),
    (False, Verdict("failed", 0.0, "wrong answer")),
    (0.5, Verdict("failed", 0.5, "partial credit: 50%")),
    ((0.25, "two cases wrong"), Verdict("failed", 0.25, "partial credit: 25% — two cases wrong")),
])
def test_what_a_check_may_return(returned, expected):
    assert verdict_from_result(_fake_exercise(), returned) == expected


@pytest.mark.parametrize("returned", [2, -0.1, float("nan"), "yes"])
def test_a_check_returning_nonsense_is_an_error(returned):
    verdict = verdict_from_result(_fake_exercise(), returned)
    assert verdict.status == "error" and "bug in the check" in verdict.message


def _fake_exercise(check=None, timeout=5.0):
    return api.Exercise("extest.9", "extest", "f", 1.0, timeout, check or (lambda student: None))


# --- self_check ----------------------------------------------------------------------------

@pytest.fixture
def registered(monkeypatch):
    """The extest exercises, registered in-process for self_check."""
    for ex in load_check_file(CHECKS).values():
        monkeypatch.setitem(api.EXERCISES, ex.id, ex)


def mean(xs):
    return sum(xs) / len(xs)


def reference(xs):
    return sum(xs) / len(xs)


def test_self_check_passes(registered, capsys):
    assert selfcheck.self_check("extest.3", mean, reference) is mean
    assert capsys.readouterr().out == "✅ extest.3 passed\n"


def test_self_check_wrong_answer_falls_back_to_the_reference(registered, capsys):
    def wrong(xs):
        return xs[0]
    assert selfcheck.self_check("extest.3", wrong, reference) is reference
    assert capsys.readouterr().out.splitlines()[0] == "❌ extest.3: mean([1, 2, 3]) should be 2, got 1"
    assert selfcheck.self_check("extest.3", wrong) is wrong  # no reference: the student's own


def test_self_check_not_implemented(registered, capsys):
    def stub(xs):
        raise NotImplementedError("extest.3: implement mean")
    assert selfcheck.self_check("extest.3", stub, reference) is reference
    assert capsys.readouterr().out == ("⏳ extest.3: not implemented yet — the rest of the notebook "
                                       "uses course_lib's reference\n")


@pytest.mark.parametrize("body", ["1 / 0", "sys.exit(1)", "os._exit  # not called", "None.x"])
def test_self_check_never_raises(registered, capsys, body):
    namespace = {}
    exec(f"import os, sys\ndef mean(xs):\n    return {body}", namespace)
    assert selfcheck.self_check("extest.3", namespace["mean"], reference) is reference
    out = capsys.readouterr().out
    assert out.startswith("❌ extest.3: ") and len(out.splitlines()) == 2


def test_self_check_time_limit(monkeypatch, capsys):
    ex = _fake_exercise(check=lambda student: student(), timeout=0.3)
    monkeypatch.setitem(api.EXERCISES, ex.id, ex)

    def forever():
        while True:
            pass
    assert selfcheck.self_check(ex.id, forever) is forever
    assert "took longer than 0.3 s" in capsys.readouterr().out


def test_self_check_unknown_exercise(capsys):
    assert selfcheck.self_check("ex99.9", mean) is mean
    assert "no check is registered for ex99.9" in capsys.readouterr().out


def test_grade_package_import_is_light():
    """Notebooks import self_check in their first cells: no torch, no nbformat there."""
    code = ("import sys; import course_lib.grade; "
            "print(sorted(m for m in ('torch', 'nbformat') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_no_process_is_left_behind(tmp_path, checks):
    nb = make_notebook(tmp_path / "extest.ipynb", {
        "extest.3": "import subprocess\nsubprocess.Popen(['sleep', '300'])\n"
                    "def mean(xs):\n    return sum(xs) / len(xs)"})
    assert grade(nb, checks)["extest.3"].status == "passed"
    time.sleep(0.2)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 300" not in ps.splitlines()


if os.name != "posix":  # the sandbox relies on process groups and inherited pipes
    pytestmark = pytest.mark.skip("the grader runs on Linux and macOS")


def test_no_thread_of_the_grader_outlives_grading(tmp_path, checks, monkeypatch):
    """The optimiser warm-up runs beside the lanes; the process that graded may exit at once
    after grade_path returns, and an exit while that thread is inside torch's import aborts
    the interpreter ('FATAL: exception not rethrown', seen in CI). So it is joined first."""
    import threading

    from course_lib.grade import runner

    finished = threading.Event()

    def slow_warm_up():
        time.sleep(2.0)
        finished.set()

    monkeypatch.setattr(runner, "_build_an_optimiser", slow_warm_up)
    import torch  # noqa: F401 - the warm-up only runs when torch is loaded
    grade(make_notebook(tmp_path / "extest.ipynb"), checks)
    assert finished.is_set()
