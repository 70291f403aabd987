"""How grading results are shown and saved: a terminal table, JSON and CSV.

JSON (``--json FILE``), for a notebook or a folder of notebooks::

    {"total": 3.0, "max": 5.0,
     "exercises": [{"notebook": "03_diffaugment", "id": "ex3.1", "points": 2.0, "max": 2.0,
                    "status": "passed", "message": ""}, ...]}

and for a class folder ``{"students": {"alice": <that object>, ...}}``.
``status`` is one of passed | failed | not_implemented | timeout | error.

CSV (``--csv FILE``): one row per student — ``student,total,max`` then one column per
exercise id holding its points, then one column per written question (``q1.2``) holding
the student's answer as one line of text, for the instructor to mark by hand (the JSON's
``"written"`` list has them too, scored 0 of 0 automatic points). A cell that would start with ``=``, ``+``, ``-``, ``@`` (or a
tab or carriage return) gets a leading ``'``, so a spreadsheet shows a student's name as text
instead of running it as a formula; names never hold control characters (see
:func:`course_lib.grade.describe.clean`).

:class:`Progress` draws the class's progress bar on the terminal (or, when output is not
a terminal, one line per student as they finish).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import textwrap
import time

from course_lib.grade.describe import clean
from course_lib.grade.registry import natural_key

STATUS_WORDS = {"passed": "passed", "failed": "failed", "not_implemented": "not implemented",
                "timeout": "timeout", "error": "error"}


def fmt(points: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5"."""
    return f"{points:.4f}".rstrip("0").rstrip(".")


def _percent(total: float, maximum: float) -> str:
    return f" ({total / maximum:.0%})" if maximum else ""


def report_table(report, width: int) -> str:
    """One student's results, notebook by notebook, reasons wrapped to ``width``."""
    lines = []
    by_notebook: dict[str, list] = {}
    for r in report.results:
        by_notebook.setdefault(r.notebook, []).append(r)
    for notebook, results in by_notebook.items():
        id_w = max(8, *(len(r.id) for r in results))
        fn_w = max(8, *(len(r.function) for r in results))
        pts = [f"{fmt(r.points)}/{fmt(r.max)}" for r in results]
        pt_w = max(6, *(len(p) for p in pts))
        st_w = 15
        head = f"  {'exercise':<{id_w}}  {'function':<{fn_w}}  {'points':>{pt_w}}  {'status':<{st_w}}  "
        reason_w = max(30, width - len(head))
        lines += [f"{notebook}.ipynb", head + "reason", "  " + "-" * (len(head) - 2 + 6)]
        for r, p in zip(results, pts):
            row = f"  {r.id:<{id_w}}  {r.function:<{fn_w}}  {p:>{pt_w}}  {STATUS_WORDS[r.status]:<{st_w}}  "
            wrapped = textwrap.wrap(r.message, reason_w) or [""]
            lines.append((row + wrapped[0]).rstrip())
            lines += [" " * len(row) + more for more in wrapped[1:]]
        total = sum(r.points for r in results)
        maximum = sum(r.max for r in results)
        for a in [a for a in getattr(report, "answers", []) if a.notebook == notebook]:
            words = len(a.answer.split())
            row = f"  {a.id:<{id_w}}  {'written answer':<{fn_w}}  {'0/0':>{pt_w}}  "
            lines.append(row + (f"{a.status}, out of {fmt(a.manual_max)} ({words} words)" if words
                                else "unanswered"))
        lines += [f"  {'notebook total':<{id_w + fn_w + 2}}  {f'{fmt(total)}/{fmt(maximum)}':>{pt_w}}", ""]
    return "\n".join(lines)


def grading_table(grading, width: int | None = None) -> str:
    """The whole grading as text for the terminal."""
    width = width or shutil.get_terminal_size((110, 24)).columns
    out = []
    if not getattr(grading, "sandboxed", True) and getattr(grading, "sandbox", ""):
        out += [clean(grading.sandbox), ""]
    for name, report in grading.reports.items():
        if grading.kind == "class":
            out += [f"=== {clean(name)} ===", ""]
        for note in getattr(report, "notes", []):
            out.append(f"note: {clean(note)}")
        if not report.results:
            out.append("no exercises to grade here\n")
            continue
        out.append(report_table(report, width))
        out.append(f"Total: {fmt(report.total)}/{fmt(report.max)}{_percent(report.total, report.max)}\n")
    notes = getattr(grading, "notes", [])
    if notes:
        out.append("Notes")
        out += [f"  - {clean(note)}" for note in notes]
        out.append("")
    elif grading.ungraded:
        out.append("Notebooks with no registered exercises (not graded): " + ", ".join(map(clean, grading.ungraded)))
    if grading.kind == "class":
        name_w = max(7, *(len(clean(n)) for n in grading.reports)) if grading.reports else 7
        out += ["Class summary", f"  {'student':<{name_w}}  total"]
        for name, report in grading.reports.items():
            out.append(f"  {clean(name):<{name_w}}  {fmt(report.total)}/{fmt(report.max)}"
                       f"{_percent(report.total, report.max)}")
    return "\n".join(out).rstrip() + "\n"


def csv_safe(cell) -> str:
    """A CSV cell that a spreadsheet shows as text: no formula, no control characters."""
    text = clean(cell) if isinstance(cell, str) else str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_json_text(grading) -> str:
    return json.dumps(grading.to_json(), indent=2, ensure_ascii=False) + "\n"


def to_csv_text(grading) -> str:
    """One row per student: student, total, max, then the points of each exercise."""
    ids = sorted({r.id for rep in grading.reports.values() for r in rep.results}, key=natural_key)
    questions = sorted({a.id for rep in grading.reports.values() for a in getattr(rep, "answers", [])},
                       key=natural_key)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "total", "max", *map(csv_safe, ids), *map(csv_safe, questions)])
    for name, report in grading.reports.items():
        points = {r.id: fmt(r.points) for r in report.results}
        answers = {a.id: csv_safe(a.answer) if a.answer else "" for a in getattr(report, "answers", [])}
        writer.writerow([csv_safe(name), fmt(report.total), fmt(report.max), *(points.get(i, "") for i in ids),
                         *(answers.get(q, "") for q in questions)])
    return buffer.getvalue()


class Progress:
    """Progress of a grading on stderr: a bar for a class on a terminal, otherwise a line
    per student (class) or per exercise (one student) as they finish."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.kind, self.total, self.done = "notebook", 0, 0
        self.left: dict[str, int] = {}
        self.points: dict[str, list[float]] = {}
        self.started = time.monotonic()

    def start(self, grading, jobs) -> None:
        self.kind, self.total = grading.kind, len(jobs)
        for job in jobs:
            self.left[job.student] = self.left.get(job.student, 0) + 1
            self.points.setdefault(job.student, [0.0, 0.0])
        self.students = len(self.left)
        self.finished = 0

    def __call__(self, job, result) -> None:
        self.done += 1
        got = self.points.setdefault(job.student, [0.0, 0.0])
        got[0] += result.points
        got[1] += result.max
        self.left[job.student] = self.left.get(job.student, 1) - 1
        student_done = self.left[job.student] == 0
        self.finished += student_done
        if self.kind != "class":
            print(f"  {result.id:<10} {STATUS_WORDS[result.status]:<16} {result.seconds:5.1f} s",
                  file=self.stream, flush=True)
        elif self.tty:
            width = 30
            filled = int(width * self.done / max(1, self.total))
            elapsed = time.monotonic() - self.started
            self.stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                              f"exercises · {self.finished}/{self.students} students · {elapsed:.0f} s ")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif student_done:
            print(f"  {self.finished}/{self.students} {clean(job.student)}: {fmt(got[0])}/{fmt(got[1])}",
                  file=self.stream, flush=True)
