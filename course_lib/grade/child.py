"""The grader's child process: runs ONE exercise of one notebook, then reports.

Started by :mod:`course_lib.grade.sandbox` in a fresh temporary folder. It reads a JSON
job from stdin — the cells to run, the exercise, and a private result channel (the
number of an inherited pipe plus a random nonce) — then:

1. loads the exercise's check module (before any student code runs);
2. says "ready" on the channel (the exercise's time limit starts now);
3. runs the ``parameters`` and ``setup`` cells, then the cell(s) tagged with the
   exercise id, in one namespace;
4. runs the check on the function the exercise defines;
5. writes the verdict on the channel and exits at once with ``os._exit``.

Student output goes to stdout/stderr, which the parent reads and caps. The nonce is
only in this function's closure and the channel is written only by this module after
the check, so printing a fake result, exiting early or crashing cannot look like a pass.
"""
from __future__ import annotations

import builtins
import json
import os
import re
import sys

_MAGIC = re.compile(r"^(\s*)[%!]")
# Cell magics whose body is ordinary Python; the body of any other cell magic is skipped.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}


def python_source(source: str) -> str:
    """A cell's source made runnable without IPython: magics become ``pass``."""
    lines = source.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(" ")[0]
        lines = lines[1:] if magic in _PYTHON_CELL_MAGICS else []
    return "\n".join(_MAGIC.sub(r"\1pass  # ", line) if _MAGIC.match(line) else line for line in lines)


def _display(*objects, **kwargs):
    """``display`` outside Jupyter: nothing to show it on."""


def run_cell(source: str, name: str, namespace: dict) -> BaseException | None:
    """Execute one cell; return the exception it raised (``SystemExit`` included) or None."""
    try:
        code = compile(python_source(source), f"<{name}>", "exec")
        exec(code, namespace)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the student's code may raise anything, even SystemExit
        return exc
    return None


def _limit_resources() -> None:
    """No core dumps, no single file above 1 GB (a runaway writer would fill the disk),
    and at most ``$COURSE_GRADE_MEMORY_GB`` (default 8; 0 = no limit) of address space,
    so that a huge allocation fails in this exercise instead of exhausting the machine.
    (torch alone maps about 3.5 GB of address space.)"""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**30, 2**30))
        gigabytes = float(os.environ.get("COURSE_GRADE_MEMORY_GB", "8"))
        if gigabytes > 0:
            limit = int(gigabytes * 2**30)
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def grade(job: dict, exercise, run_check, Verdict):
    """Steps 3 and 4: run the cells, find the function, check it. Returns a Verdict."""
    from course_lib.grade.judge import describe_exception, is_not_implemented

    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": _display}
    for cell in job["setup_cells"]:
        exc = run_cell(cell["source"], cell["name"], namespace)
        if exc is not None:
            return Verdict("error", 0.0, f"running {cell['name']} raised {describe_exception(exc)}; "
                                         f"fix that cell or restore it from the original notebook")
    tag = f"cell tagged {exercise.id}"
    for cell in job["exercise_cells"]:
        exc = run_cell(cell["source"], cell["name"], namespace)
        if exc is None:
            continue
        if is_not_implemented(exc, exercise.id):
            return Verdict("not_implemented", 0.0, "not implemented yet")
        if isinstance(exc, SystemExit):
            return Verdict("error", 0.0, f"the {tag} called sys.exit({exc.code!r}) when run; "
                                         f"remove that call")
        return Verdict("error", 0.0, f"running the {tag} raised {describe_exception(exc)}")
    fn = namespace.get(exercise.function)
    if fn is None:
        defined = sorted(k for k, v in namespace.items()
                         if callable(v) and getattr(v, "__module__", None) == "__main__")
        hint = f"it defines {', '.join(defined)}" if defined else "it defines no function"
        return Verdict("failed", 0.0, f"the {tag} must define a function named "
                                      f"{exercise.function} ({hint}) — did you rename it?")
    if not callable(fn):
        return Verdict("failed", 0.0, f"{exercise.function} must be a function, "
                                      f"got {type(fn).__name__}")
    return run_check(exercise, fn, namespace)


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    # From here on, input() gets end-of-file instead of waiting for a keyboard.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    _limit_resources()

    # The channel: bind everything it needs now, so student code that patches os or
    # json later cannot change what is written.
    write, dumps, fd = os.write, json.dumps, job.pop("result_fd")

    def make_report(nonce: str):
        def report(message: dict) -> None:
            data = ("\n" + dumps({**message, "nonce": nonce}) + "\n").encode()
            while data:
                data = data[write(fd, data):]
        return report

    report = make_report(job.pop("nonce"))

    from course_lib.grade.judge import Verdict, run_check, shorten
    from course_lib.grade.registry import load_exercise

    exercise = load_exercise(job["exercise"], job["origin"])
    report({"kind": "ready"})
    verdict = grade(job, exercise, run_check, Verdict)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # the student may have closed or replaced it
            pass
    report({"kind": "result", "status": verdict.status, "fraction": verdict.fraction,
            "message": shorten(verdict.message)})
    os._exit(0)  # skip atexit handlers and threads the student code may have left


if __name__ == "__main__":
    main()
