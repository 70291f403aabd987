"""Grade a notebook, a folder of notebooks, or a class of submissions.

:func:`grade_path` finds what to grade (:mod:`course_lib.grade.submissions`), plans one
job per (student, exercise), and runs the jobs on parallel *lanes* — one per core by
default, each a sandboxed warm process that forks a fresh worker per exercise
(:mod:`course_lib.grade.sandbox`). For each job, this process (the judge) reads the
notebook, sends the worker the cells to run, runs the exercise's check against a
:class:`WorkerStudent` — every call of the student's function goes to the worker and
comes back as plain data — and decides the verdict itself. Formatting lives in
:mod:`course_lib.grade.output`.

SIGINT, SIGTERM and SIGHUP stop grading: every lane and worker is killed and the
temporary folders are removed before :class:`Interrupted` (a ``KeyboardInterrupt``)
propagates.
"""
from __future__ import annotations

import ast
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.grade.api import Exercise
from course_lib.grade.calling import Student, WorkerGone, grad_request, outcome_from_response
from course_lib.grade.describe import clean, shorten
from course_lib.grade.judge import Verdict, run_check
from course_lib.grade.registry import Checks, load_checks
from course_lib.grade.sandbox import (INSTALL_BUBBLEWRAP, Lane, Limits, SandboxError, find_bubblewrap,
                                      kill_all_lanes, limits_from_env)
from course_lib.grade.submissions import GradingError, find_submissions  # noqa: F401 - GradingError: __main__ imports it from here
from course_lib.notebook import SETUP_TAGS, load_cells

# Modules a lane imports before forking, if the setup cells import them (top-level names).
WARMABLE = ("torch", "torchvision", "numpy", "course_lib", "math", "matplotlib", "scipy", "PIL")


class Interrupted(KeyboardInterrupt):
    """Grading was stopped by a signal (``signum``); everything it started is gone."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class ExerciseResult:
    notebook: str        # the notebook's name as the checks know it, e.g. "03_diffaugment"
    id: str
    function: str
    points: float
    max: float
    status: str          # passed | failed | not_implemented | timeout | error
    message: str
    seconds: float = 0.0
    output: str = ""     # the student code's stdout/stderr, capped (not in the JSON)

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "id": self.id, "points": float(self.points),
                "max": float(self.max), "status": self.status, "message": self.message}


@dataclass
class WrittenAnswer:
    """A written question's answer, collected for the instructor: never run, never judged,
    0 automatic points (marked by hand out of ``manual_max``, as nbgrader does)."""
    notebook: str
    id: str
    answer: str          # "" when unanswered (or the notebook or cell is missing)
    manual_max: float
    status: str          # "needs manual grading" | "unanswered"

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "id": self.id, "points": 0.0, "max": 0.0,
                "manual_max": float(self.manual_max), "status": self.status, "answer": self.answer}


MAX_ANSWER = 5000   # characters of an answer kept (a pasted essay or notebook is cut)


@dataclass
class Report:
    """The results of one student (or of the notebook / folder graded)."""
    results: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # about this student's files (not in the JSON)
    answers: list[WrittenAnswer] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(r.points for r in self.results), 4)

    @property
    def max(self) -> float:
        return round(sum(r.max for r in self.results), 4)

    def to_json(self) -> dict:
        out = {"total": float(self.total), "max": float(self.max),
               "exercises": [r.to_json() for r in self.results]}
        if self.answers:
            out["written"] = [a.to_json() for a in self.answers]
        return out


@dataclass
class Grading:
    kind: str                      # "notebook" | "folder" | "class"
    path: Path
    reports: dict[str, Report]     # by student; a single entry unless kind == "class"
    ungraded: list[str] = field(default_factory=list)  # notebooks with no exercises
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)     # what was skipped or chosen, and why
    sandbox: str = ""              # how student code ran (one line)
    sandboxed: bool = True

    def to_json(self) -> dict:
        if self.kind == "class":
            return {"students": {name: r.to_json() for name, r in self.reports.items()}}
        return next(iter(self.reports.values()), Report()).to_json()


@dataclass(frozen=True)
class Job:
    student: str
    notebook: Path | None          # None: this student handed in no such notebook
    exercise: Exercise


# --- finding what to grade -------------------------------------------------------------

def plan(path: Path, checks: Checks, only=None, submissions=None) -> tuple[str, list[Job], list[str]]:
    """``(kind, jobs, names of notebooks not graded)``."""
    subs = submissions or find_submissions(path, checks.notebooks)
    jobs = []
    for student, found in subs.students.items():
        for stem in subs.expected:
            for ex in checks.for_notebook(stem):
                if only is None or ex.id in only:
                    jobs.append(Job(student, found.get(stem), ex))
    ungraded = sorted({nb.name for nbs in subs.ungraded.values() for nb in nbs})
    return subs.kind, jobs, ungraded


# --- the judge's side of a call --------------------------------------------------------------

class WorkerStudent(Student):
    """The student's function, called in the sandboxed worker through ``session``."""

    def __init__(self, session, exercise: Exercise):
        self.session, self.exercise = session, exercise
        self.function = exercise.function

    def run(self, args=(), kwargs=None, *, grads=(), count_ops: bool = False):
        request = {"kind": "call", "args": list(args), "kwargs": dict(kwargs or {}),
                   "grads": [grad_request(g) for g in grads], "ops": bool(count_ops)}
        return outcome_from_response(self.session.call(request))


# --- one job -----------------------------------------------------------------------------------

def _result(job: Job, status: str, fraction: float, message: str, **extra) -> ExerciseResult:
    ex = job.exercise
    return ExerciseResult(ex.notebook, ex.id, ex.function, round(fraction * ex.points, 4),
                          float(ex.points), status, shorten(message), **extra)


def worker_job(job: Job, cells) -> dict | None:
    """What the worker needs for ``job``: its cells (None when no cell has the tag)."""
    ex = job.exercise
    exercise_cells = [c for c in cells if ex.id in c.tags]
    if not exercise_cells:
        return None
    setup = [c for c in cells if set(c.tags) & set(SETUP_TAGS) and ex.id not in c.tags]
    return {
        "exercise": ex.id, "function": ex.function, "references": list(ex.reference),
        "provides": dict(ex.provides),
        "setup_cells": [{"name": f"cell {c.index + 1} ({', '.join(c.tags)})", "source": c.source}
                        for c in setup],
        "exercise_cells": [{"name": f"cell tagged {ex.id}", "source": c.source} for c in exercise_cells],
    }


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def verdict_when_gone(gone: WorkerGone, exercise: Exercise, started_code: bool, output: str,
                      limits: Limits) -> Verdict:
    """What to tell the student when their process stopped answering."""
    if gone.reason == "timeout":
        return Verdict("timeout", 0.0, f"stopped after {exercise.timeout:g} s (setup cells + your cell + "
                                       f"the checks' calls) — look for an infinite loop, or a slow "
                                       f"Python loop over pixels")
    if gone.reason == "garbled":
        return Verdict("error", 0.0, f"the process running your code sent the grader something that is "
                                     f"not plain data ({gone.detail}); does your code write to files "
                                     f"it did not open?")
    if gone.reason == "sandbox":
        return Verdict("error", 0.0, "the grader's worker process stopped while running your code "
                                     "(did it use up the machine's memory?); grade again, and tell "
                                     "your instructor if it happens again")
    if gone.detail == "processes":
        return Verdict("error", 0.0, f"your code started more than {limits.processes} processes at once; "
                                     f"the sandbox stopped them all")
    code = gone.returncode
    if code == 70 and not started_code:
        last = (output.strip().splitlines() or ["no output"])[-1]
        return Verdict("error", 0.0, f"the grader's process failed before running your code: "
                                     f"{shorten(last, 200)}; tell your instructor")
    if code is not None and code < 0:
        return Verdict("error", 0.0, f"the process running your code was killed by {_signal_name(code)} "
                                     f"(a crash, a CPU-time or file-size limit, or it ran out of memory?)")
    return Verdict("error", 0.0, f"the process running your code ended (exit code {code}) before the "
                                 f"check finished — does your code call os._exit() or otherwise stop Python?")


def grade_on_lane(lane: Lane, job: Job, spec: dict) -> ExerciseResult:
    """Run one exercise on ``lane`` and judge it."""
    ex = job.exercise
    started = time.monotonic()
    session = lane.exercise(spec, ex.timeout)
    verdict, gone, cells_ran = None, None, False
    try:
        status = session.receive()
        cells_ran = True
        # The worker may only say "the function is defined" or why not; a pass is the
        # judge's word, never the worker's.
        if not isinstance(status, dict) or status.get("kind") != "cells" or \
                status.get("status") not in ("defined", "failed", "not_implemented", "error"):
            raise WorkerGone("garbled", "its first message was not the result of running the cells")
        if status["status"] == "defined":
            verdict = run_check(ex, WorkerStudent(session, ex))
        else:
            message = shorten(str(status.get("message", ""))) or "the cells did not define the function"
            verdict = Verdict(status["status"], 0.0, message)
    except WorkerGone as exc:
        gone = exc
    finally:
        exited, output = session.finish()
    if gone is not None:
        if gone.reason == "exited" and exited is not None:
            gone.returncode = exited.get("returncode")
            gone.detail = str(exited.get("reason", ""))
        verdict = verdict_when_gone(gone, ex, cells_ran, output, lane.limits)
    return _result(job, verdict.status, verdict.fraction, verdict.message,
                   seconds=round(time.monotonic() - started, 3), output=output)


def _read(path: Path):
    try:
        return load_cells(path)
    except (OSError, ValueError) as exc:
        return ValueError(str(exc))


def warm_modules(cell_lists) -> list[str]:
    """The modules the setup cells import that a lane may import in advance (trusted,
    installed libraries only; see :data:`WARMABLE`)."""
    from course_lib.grade.worker import python_source

    found: dict[str, None] = {}
    for cells in cell_lists:
        if isinstance(cells, Exception):
            continue
        for cell in cells:
            if not set(cell.tags) & set(SETUP_TAGS):
                continue
            try:
                tree = ast.parse(python_source(cell.source))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                             if node.module.startswith("course_lib")]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in WARMABLE:
                        found[name] = None
    return list(found)[:60]


# --- sandbox choice ----------------------------------------------------------------------------

def choose_sandbox(mode: str = "auto") -> tuple[bool, str]:
    """``(sandboxed, one line saying how student code runs)`` for ``mode`` auto|bwrap|none."""
    if mode not in ("auto", "bwrap", "none"):
        raise GradingError(f"unknown sandbox {mode!r}: use auto, bwrap or none")
    if os.name != "posix" or not hasattr(os, "fork"):
        raise GradingError("the grader runs student code in forked processes, which this system "
                           "does not have: grade on Linux or macOS (on Windows, inside WSL); the "
                           "notebooks' self-check cells work everywhere")
    if mode == "none":
        return False, "student code runs WITHOUT the OS sandbox (--sandbox none): separate processes only"
    bwrap = find_bubblewrap()
    if not bwrap.problem:
        return True, f"student code runs in a bubblewrap sandbox ({bwrap.path})"
    if mode == "bwrap":
        raise GradingError(f"{bwrap.problem}; {INSTALL_BUBBLEWRAP}")
    return False, (f"warning: {bwrap.problem}, so student code runs WITHOUT the OS sandbox (separate "
                   f"processes only; it can read and write your files) — {INSTALL_BUBBLEWRAP}")


# --- running many jobs ---------------------------------------------------------------------------

class _Signals:
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread while grading
    (SIGINT already raises ``KeyboardInterrupt``)."""

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if signum is not None:
                    self.previous[signum] = signal.signal(signum, self._raise)
        return self

    def _raise(self, signum, frame):
        if not getattr(self, "raised", False):   # a second signal must not cut the clean-up short
            self.raised = True
            raise Interrupted(signum)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


def grade_jobs(jobs: list[Job], checks: Checks | None = None, workers: int | None = None, progress=None,
               *, sandbox: str = "auto", limits: Limits | None = None) -> list[ExerciseResult]:
    """Results in the order of ``jobs``; ``workers`` lanes (default: one per core) run
    exercises in parallel."""
    results, _ = _grade_jobs(jobs, workers, progress, choose_sandbox(sandbox)[0], limits or limits_from_env())
    return results


def _grade_jobs(jobs, workers, progress, sandboxed: bool, limits: Limits):
    notebooks = sorted({job.notebook for job in jobs if job.notebook is not None}, key=str)
    cells = {nb: _read(nb) for nb in notebooks}
    results: list[ExerciseResult | None] = [None] * len(jobs)
    report_lock = threading.Lock()

    def done(i, result):
        results[i] = result
        if progress:
            with report_lock:
                progress(jobs[i], result)

    pending = deque()
    for i, job in enumerate(jobs):
        ex = job.exercise
        if job.notebook is None:
            done(i, _result(job, "failed", 0.0, f"no notebook {ex.notebook}.ipynb in this submission"))
            continue
        nb_cells = cells[job.notebook]
        if isinstance(nb_cells, Exception):
            done(i, _result(job, "error", 0.0, f"could not read the notebook: {nb_cells}"))
            continue
        spec = worker_job(job, nb_cells)
        if spec is None:
            done(i, _result(job, "failed", 0.0, f"no cell tagged {ex.id} in {clean(job.notebook.name)} — "
                                                 f"did you delete it, or remove its tag? Restore it from "
                                                 f"the original notebook"))
            continue
        pending.append((i, job, spec))
    if not pending:
        return results, []

    warm = warm_modules(cells.values())
    for _, job, _ in pending:   # where the tripwired references and lent functions live
        for path in (*job.exercise.reference, *(p for _, p in job.exercise.provides)):
            module = path.rpartition(".")[0]
            if module not in warm:
                warm.append(module)
    warm_up = None
    if "torch" in sys.modules:
        # The first optimiser a check builds imports torch._dynamo (seconds): do it while
        # the lanes start rather than inside the first exercise's time. It is joined before
        # returning: a process that exits while this thread is inside torch's import aborts
        # ("FATAL: exception not rethrown").
        warm_up = threading.Thread(target=_build_an_optimiser, daemon=True)
        warm_up.start()
    lanes_wanted = max(1, min(workers or os.cpu_count() or 1, len(pending)))
    queue_lock = threading.Lock()
    failures: list[str] = []
    stop = threading.Event()

    def lane_main():
        lane = Lane(sandboxed, warm, limits)
        try:
            lane.start()
        except SandboxError as exc:
            failures.append(str(exc))
            lane.kill()
            return
        try:
            while not stop.is_set():
                with queue_lock:
                    if not pending:
                        return
                    i, job, spec = pending.popleft()
                try:
                    if lane.broken or lane.proc.poll() is not None:
                        lane.restart()
                    try:
                        result = grade_on_lane(lane, job, spec)
                    except WorkerGone:   # the lane went before this exercise began: once more
                        lane.restart()
                        result = grade_on_lane(lane, job, spec)
                except WorkerGone as exc:    # the lane could not even start the exercise
                    result = _result(job, "error", 0.0, verdict_when_gone(exc, job.exercise, False, "", limits).message)
                except Exception as exc:  # noqa: BLE001 - a bug of ours: cost one exercise, not the class
                    if stop.is_set():
                        return
                    lane.broken = True
                    result = _result(job, "error", 0.0, f"the grader failed on this exercise "
                                                        f"({type(exc).__name__}: {exc}); grade again, and tell "
                                                        f"your instructor if it happens again")
                if stop.is_set():
                    return
                done(i, result)
        except SandboxError as exc:
            failures.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a lane killed under it by an interrupt
            if not stop.is_set():
                failures.append(f"the grader failed: {type(exc).__name__}: {exc}")
        finally:
            lane.close()

    threads = [threading.Thread(target=lane_main, name=f"grading-lane-{n}", daemon=True)
               for n in range(lanes_wanted)]
    with _Signals():
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            stop.set()
            in_main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
            try:   # a second Ctrl-C must not cut the clean-up short
                kill_all_lanes()
                for thread in threads:
                    thread.join(timeout=10)
            finally:
                if in_main:
                    signal.signal(signal.SIGINT, previous)
            raise
        finally:
            if warm_up is not None:
                warm_up.join()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        why = failures[0] if failures else "the grader's worker processes stopped"
        raise GradingError(why)
    return results, failures


def _build_an_optimiser() -> None:
    import torch

    try:
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    except Exception:  # noqa: BLE001 - only a warm-up
        pass


def grade_path(path, *, workers: int | None = None, check_files=(), only=None, checks: Checks | None = None,
               progress=None, sandbox: str = "auto", allow_unsandboxed: bool = False,
               limits: Limits | None = None, on_start=None) -> Grading:
    """Grade ``path`` (a notebook, a folder of notebooks, or a class folder).

    Grading several students without the OS sandbox is refused unless
    ``allow_unsandboxed``; a single notebook or folder (a student checking their own work)
    never needs it. ``on_start(grading)`` is called once the plan is made (for a progress
    display); ``grading.reports`` is then empty.
    """
    started = time.monotonic()
    path = Path(path)
    limits = limits or limits_from_env()
    checks = checks or load_checks(check_files)
    subs = find_submissions(path, checks.notebooks)
    sandboxed, how = choose_sandbox(sandbox)
    if subs.kind == "class" and not sandboxed and not allow_unsandboxed:
        raise GradingError(f"{how.removeprefix('warning: ')}. Grading a class runs every student's code on "
                           f"this machine: {INSTALL_BUBBLEWRAP}, or pass --allow-unsandboxed to grade "
                           f"without it")
    kind, jobs, ungraded = plan(path, checks, only, subs)
    grading = Grading(kind, path, {}, ungraded, notes=list(subs.notes), sandbox=how, sandboxed=sandboxed)
    expected = subs.expected or checks.notebooks   # what this class hands in, else every notebook
    for student, notebooks in subs.ungraded.items():
        for nb in notebooks:
            where = f"{student}/{clean(nb.name)}" if kind == "class" else clean(nb.name)
            grading.notes.append(f"not graded: {where} — expected one of "
                                 f"{', '.join(f'{s}.ipynb' for s in expected)}")
    if on_start:
        on_start(grading, jobs)
    results, _ = _grade_jobs(jobs, workers, progress, sandboxed, limits)
    reports = {student: Report() for student in subs.students}
    for job, result in zip(jobs, results):
        reports[job.student].results.append(result)
    questions = checks.questions_for(subs.expected) if only is None else []
    for student, report in reports.items():
        report.notes += [n for n in _cell_notes(subs.students[student])]
        report.answers = collect_answers(subs.students[student], questions)
    grading.reports = reports
    grading.seconds = time.monotonic() - started
    return grading


def collect_answers(found: dict[str, Path], questions) -> list[WrittenAnswer]:
    """The student's answers to ``questions`` from their notebooks ``found`` (read as
    JSON in this process: nothing in them runs)."""
    texts: dict[str, dict[str, str]] = {}
    for stem, nb in found.items():
        try:
            from course_lib.notebook import load_answers

            texts[stem] = load_answers(nb)
        except ValueError:
            texts[stem] = {}       # the exercises' results already say the file is damaged
    answers = []
    for q in questions:
        text = texts.get(q.notebook, {}).get(q.id, "")[:MAX_ANSWER]
        answers.append(WrittenAnswer(q.notebook, q.id, text, q.points,
                                     "needs manual grading" if text.strip() else "unanswered"))
    return answers


def _cell_notes(found: dict[str, Path]) -> list[str]:
    """Exercise cells duplicated in a notebook: all of them run, in order."""
    notes = []
    for stem, nb in sorted(found.items()):
        cells = _read(nb)
        if isinstance(cells, Exception):
            continue
        seen: dict[str, list[int]] = {}
        for cell in cells:
            for tag in cell.tags:
                if tag not in SETUP_TAGS:
                    seen.setdefault(tag, []).append(cell.index + 1)
        for tag, where in sorted(seen.items()):
            if len(where) > 1 and tag.startswith("ex"):
                notes.append(f"{clean(nb.name)}: cells {', '.join(map(str, where))} are all tagged "
                             f"{clean(tag)}; they ran in order, so the last definition counts")
    return notes
