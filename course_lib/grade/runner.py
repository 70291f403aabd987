"""Grade a notebook, a folder of notebooks, or a class of submissions.

:func:`grade_path` finds the notebooks, plans one job per (student, exercise), runs the
jobs in parallel — each in its own process (:mod:`course_lib.grade.sandbox`) — and
collects an :class:`ExerciseResult` per job. Formatting lives in
:mod:`course_lib.grade.output`.
"""
from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.grade.api import Exercise
from course_lib.grade.judge import STATUSES, shorten
from course_lib.grade.registry import Checks, load_checks
from course_lib.grade.sandbox import kill_running, run_child
from course_lib.notebook import SETUP_TAGS, load_cells


class GradingError(Exception):
    """The grader cannot run (bad path, nothing to grade...); the message says why."""


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
class Report:
    """The results of one student (or of the notebook / folder graded)."""
    results: list[ExerciseResult] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(r.points for r in self.results), 4)

    @property
    def max(self) -> float:
        return round(sum(r.max for r in self.results), 4)

    def to_json(self) -> dict:
        return {"total": float(self.total), "max": float(self.max),
                "exercises": [r.to_json() for r in self.results]}


@dataclass
class Grading:
    kind: str                      # "notebook" | "folder" | "class"
    path: Path
    reports: dict[str, Report]     # by student; a single entry unless kind == "class"
    ungraded: list[str] = field(default_factory=list)  # notebooks with no exercises
    seconds: float = 0.0

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

def _visible(path: Path, root: Path) -> bool:
    """Not inside a hidden folder such as ``.ipynb_checkpoints``."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def find_submissions(path: Path) -> tuple[str, dict[str, list[Path]]]:
    """``(kind, {student: notebooks})`` for a notebook, a folder, or a class folder.

    A folder holding notebooks is a folder of notebooks; otherwise, if its sub-folders
    hold notebooks, each sub-folder is one student's submission.
    """
    if not path.exists():
        raise GradingError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix != ".ipynb":
            raise GradingError(f"{path} is not a notebook (.ipynb)")
        return "notebook", {path.name: [path]}
    notebooks = sorted(p for p in path.glob("*.ipynb") if p.is_file())
    if notebooks:
        return "folder", {path.resolve().name: notebooks}
    students = {}
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = sorted(p for p in folder.rglob("*.ipynb") if p.is_file() and _visible(p, folder))
        if found:
            students[folder.name] = found
    if not students:
        raise GradingError(f"{path}: no notebooks (.ipynb) here, nor in sub-folders "
                           f"(one per student)")
    return "class", students


def registered_stem(name: str, stems: list[str]) -> str | None:
    """The checks' name for a notebook file stem: exact, else the longest registered
    name it starts with (LMS downloads add suffixes: ``03_diffaugment (1)``)."""
    if name in stems:
        return name
    prefixes = [s for s in stems if name.startswith(s)]
    return max(prefixes, key=len) if prefixes else None


def _by_stem(notebooks: list[Path], stems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for nb in notebooks:  # sorted, so the choice among duplicates is stable
        stem = registered_stem(nb.stem, stems)
        if stem and (stem not in found or nb.stem == stem):
            found[stem] = nb
    return found


def plan(path: Path, checks: Checks, only=None) -> tuple[str, list[Job], list[str]]:
    """``(kind, jobs, notebooks without registered exercises)``."""
    kind, submissions = find_submissions(path)
    stems = checks.notebooks
    matched = {student: _by_stem(nbs, stems) for student, nbs in submissions.items()}
    ungraded = sorted({nb.name for nbs in submissions.values() for nb in nbs
                       if registered_stem(nb.stem, stems) is None})
    expected = sorted({stem for found in matched.values() for stem in found})
    jobs = []
    for student, found in matched.items():
        for stem in expected:
            for ex in checks.for_notebook(stem):
                if only is None or ex.id in only:
                    jobs.append(Job(student, found.get(stem), ex))
    return kind, jobs, ungraded


# --- running ---------------------------------------------------------------------------

def _result(job: Job, status: str, fraction: float, message: str, **extra) -> ExerciseResult:
    ex = job.exercise
    return ExerciseResult(ex.notebook, ex.id, ex.function, round(fraction * ex.points, 4),
                          float(ex.points), status, message, **extra)


def _spec(job: Job, cells, checks: Checks) -> dict | None:
    ex = job.exercise
    exercise_cells = [c for c in cells if ex.id in c.tags]
    if not exercise_cells:
        return None
    setup = [c for c in cells if set(c.tags) & set(SETUP_TAGS) and ex.id not in c.tags]
    return {
        "exercise": ex.id,
        "origin": checks.origins[ex.id],
        "setup_cells": [{"name": f"cell {c.index + 1} ({', '.join(c.tags)})", "source": c.source}
                        for c in setup],
        "exercise_cells": [{"name": f"cell tagged {ex.id}", "source": c.source} for c in exercise_cells],
    }


def interpret(outcome, job: Job) -> ExerciseResult:
    """The result of one child run, whatever happened to it."""
    ex = job.exercise
    extra = {"seconds": round(outcome.seconds, 3), "output": outcome.output}
    message = outcome.result
    if message is not None:
        status, fraction = message.get("status"), message.get("fraction")
        if status not in STATUSES or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            return _result(job, "error", 0.0, "the grader received a garbled result; grade again", **extra)
        if status not in ("passed", "failed"):
            fraction = 0.0
        return _result(job, status, float(fraction), shorten(str(message.get("message", ""))), **extra)
    if outcome.timed_out and outcome.ready:
        return _result(job, "timeout", 0.0,
                       f"stopped after {ex.timeout:g} s (setup cells + your cell + the check) — "
                       f"look for an infinite loop, or a slow Python loop over pixels", **extra)
    if not outcome.ready:
        last = outcome.output.strip().splitlines()[-1:] or ["no output"]
        why = "did not start in time (is the machine overloaded?)" if outcome.timed_out else \
            f"failed before running your code: {shorten(last[0], 200)}"
        return _result(job, "error", 0.0, f"the grader's process {why}; tell your instructor", **extra)
    code = outcome.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return _result(job, "error", 0.0, f"the process running your code was killed by {name} "
                                          f"(a crash, or it ran out of memory?)", **extra)
    return _result(job, "error", 0.0, f"the process running your code ended (exit code {code}) "
                                      f"before the check finished — does your code call os._exit() "
                                      f"or otherwise stop Python?", **extra)


def grade_job(job: Job, cells, checks: Checks) -> ExerciseResult:
    """Grade one exercise; ``cells`` are the notebook's code cells or the ValueError
    that reading it raised."""
    ex = job.exercise
    if job.notebook is None:
        return _result(job, "failed", 0.0, f"no notebook {ex.notebook}.ipynb in this submission")
    if isinstance(cells, Exception):
        return _result(job, "error", 0.0, f"could not read the notebook: {cells}")
    spec = _spec(job, cells, checks)
    if spec is None:
        return _result(job, "failed", 0.0, f"no cell tagged {ex.id} in {job.notebook.name} — did you "
                                           f"delete it, or remove its tag? Restore it from the original notebook")
    try:
        outcome = run_child(spec, timeout=ex.timeout, notebook=job.notebook)
    except OSError as exc:  # out of processes, file handles or disk: not the student's fault
        return _result(job, "error", 0.0, f"the grader could not start a process ({exc}); grade again")
    return interpret(outcome, job)


def _read(path: Path):
    try:
        return load_cells(path)
    except (OSError, ValueError) as exc:
        return ValueError(str(exc))


def grade_jobs(jobs: list[Job], checks: Checks, workers: int = 2, progress=None) -> list[ExerciseResult]:
    """Results in the order of ``jobs``; ``workers`` exercises run at a time."""
    cells = {nb: _read(nb) for nb in {job.notebook for job in jobs if job.notebook is not None}}

    def one(job):
        result = grade_job(job, cells.get(job.notebook), checks)
        if progress:
            progress(job, result)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(one, job) for job in jobs]
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        kill_running()  # the children run in their own sessions: Ctrl-C does not reach them
        raise
    finally:
        pool.shutdown(wait=True)


def grade_path(path, *, workers: int = 2, check_files=(), only=None, checks: Checks | None = None,
               progress=None) -> Grading:
    """Grade ``path`` (a notebook, a folder of notebooks, or a class folder)."""
    started = time.monotonic()
    path = Path(path)
    checks = checks or load_checks(check_files)
    kind, jobs, ungraded = plan(path, checks, only)
    results = grade_jobs(jobs, checks, workers, progress)
    _, submissions = find_submissions(path)
    reports = {student: Report() for student in submissions}
    for job, result in zip(jobs, results):
        reports[job.student].results.append(result)
    return Grading(kind, path, reports, ungraded, time.monotonic() - started)
