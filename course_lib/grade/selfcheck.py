"""``self_check``: the instant feedback cell that follows every exercise in a notebook.

    rand_translation = self_check("ex3.1", rand_translation, reference=diffaugment.rand_translation)

It runs the grader's own check for that exercise — the same check, through the same
"call the student's function" interface (:class:`~course_lib.grade.calling.LocalStudent`
here, the sandboxed worker in the grader), so the verdict and message are the grader's —
in the notebook's process, and prints one line:

    ✅ ex3.1 passed
    ❌ ex3.1: <what is wrong>
    ⏳ ex3.1: not implemented yet — the rest of the notebook uses course_lib's reference

It never raises (a crash in the student's code is summarised in one line), so Run All
always completes. It returns the student's function when it passes, otherwise
``reference`` if one is given (so later cells keep working), otherwise the function.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

USES_REFERENCE = " — the rest of the notebook uses course_lib's reference"


@contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` with ``TimeLimitExceeded`` — where a signal
    timer is available (the main thread on Unix, which is where Jupyter runs cells)."""
    from course_lib.grade.judge import TimeLimitExceeded

    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or not seconds or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise TimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _find_exercise(exercise_id: str):
    """The registered exercise (importing the checks on first use), or a reason why not."""
    from course_lib.grade.api import EXERCISES

    if exercise_id not in EXERCISES:
        import course_lib.grade.checks as checks  # registers every notebook's checks

        if exercise_id not in EXERCISES:
            broken = "; ".join(f"{m}: {e}" for m, e in sorted(checks.IMPORT_ERRORS.items()))
            return None, (f"no check is registered for {exercise_id}"
                          + (f" (some check modules failed to load: {broken})" if broken else
                             " — is course_lib up to date? (pip install -e .)"))
    return EXERCISES[exercise_id], ""


def _verdict(exercise_id: str, fn):
    from course_lib.grade.calling import LocalStudent
    from course_lib.grade.judge import TimeLimitExceeded, Verdict, run_check

    exercise, problem = _find_exercise(exercise_id)
    if exercise is None:
        return Verdict("error", 0.0, problem)
    if not callable(fn):
        return Verdict("failed", 0.0, f"expected the function {exercise.function}, "
                                      f"got {type(fn).__name__}")
    student = LocalStudent(fn, exercise, passthrough=(KeyboardInterrupt, TimeLimitExceeded))
    with time_limit(exercise.timeout):
        return run_check(exercise, student)


def self_check(exercise_id: str, fn, reference=None):
    """Check ``fn`` against exercise ``exercise_id``; print the verdict; return the function
    the rest of the notebook should use. Never raises (except on Ctrl-C)."""
    try:
        verdict = _verdict(exercise_id, fn)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a bug on our side must not stop the student's notebook
        print(f"⚠️ {exercise_id}: the self-check itself failed ({type(exc).__name__}: {exc}); "
              f"carry on, and tell your instructor", flush=True)
        return fn if reference is None else reference
    fallback = USES_REFERENCE if reference is not None else ""
    if verdict.status == "passed":
        print(f"✅ {exercise_id} passed", flush=True)
        return fn
    if verdict.status == "not_implemented":
        print(f"⏳ {exercise_id}: not implemented yet{fallback}", flush=True)
    else:
        print(f"❌ {exercise_id}: {verdict.message}", flush=True)
        if fallback:
            print("   (until it passes, the rest of the notebook uses course_lib's reference)", flush=True)
    return fn if reference is None else reference
