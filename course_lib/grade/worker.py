"""The untrusted side of grading: ONE exercise of one notebook, in a process of its own.

Forked by the zygote (:mod:`course_lib.grade.zygote`) inside the sandbox, with a socket to
the judge as its only channel. It

1. reads its job from the socket: the ``parameters``/``setup`` cells and the cell(s)
   tagged with the exercise id, the function's name, the references to tripwire, the
   names the exercise may use without defining (``provides``);
2. runs the cells in one namespace and answers ``{"kind": "cells", "status": ...}`` —
   ``defined`` when the function exists, otherwise why not (error, not implemented...);
3. then serves calls: the judge sends arguments (plain data and fixture specs), this
   process calls the student's function with :func:`~course_lib.grade.calling.perform_call`
   and sends back what it returned, as plain data (:mod:`course_lib.grade.wire`);
4. exits at ``{"kind": "end"}`` or when the socket closes.

Nothing here decides a verdict: it only reports. Student code runs in this process and
may rewrite any of it — which is why the judge, in another process, treats every answer
as data to check against its own reference, never as a claim to believe.
"""
from __future__ import annotations

import builtins
import importlib
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
    except BaseException as exc:  # noqa: BLE001 - the student's code may raise anything
        return exc
    return None


def _resolve(path: str):
    module_name, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def run_cells(job: dict, namespace: dict) -> dict:
    """Steps 1-2: run the cells; the status message for the judge."""
    from course_lib.grade.describe import describe_exception, is_not_implemented, shorten

    exercise_id, function = job["exercise"], job["function"]
    for cell in job["setup_cells"]:
        exc = run_cell(cell["source"], cell["name"], namespace)
        if exc is not None:
            return {"kind": "cells", "status": "error", "message": shorten(
                f"running {cell['name']} raised {describe_exception(exc)}; fix that cell or "
                f"restore it from the original notebook")}
    for name, path in job.get("provides", {}).items():
        namespace.setdefault(name, _resolve(path))
    tag = f"cell tagged {exercise_id}"
    for cell in job["exercise_cells"]:
        exc = run_cell(cell["source"], cell["name"], namespace)
        if exc is None:
            continue
        if is_not_implemented(exc, exercise_id):
            return {"kind": "cells", "status": "not_implemented", "message": "not implemented yet"}
        if isinstance(exc, SystemExit):
            return {"kind": "cells", "status": "error", "message": shorten(
                f"the {tag} called sys.exit({exc.code!r}) when run; remove that call")}
        return {"kind": "cells", "status": "error",
                "message": shorten(f"running the {tag} raised {describe_exception(exc)}")}
    fn = namespace.get(function)
    if fn is None:
        defined = sorted(k for k, v in namespace.items()
                         if callable(v) and getattr(v, "__module__", None) == "__main__")
        hint = f"it defines {', '.join(defined)}" if defined else "it defines no function"
        return {"kind": "cells", "status": "failed", "message": shorten(
            f"the {tag} must define a function named {function} ({hint}) — did you rename it?")}
    if not callable(fn):
        return {"kind": "cells", "status": "failed",
                "message": f"{function} must be a function, got {type(fn).__name__}"}
    return {"kind": "cells", "status": "defined"}


def serve(channel, job: dict) -> None:
    """Steps 1-4 over ``channel`` (a :class:`~course_lib.grade.wire.BlockingChannel`)."""
    from course_lib.grade.calling import perform_call
    from course_lib.grade.fixtures import Context

    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": _display}
    status = run_cells(job, namespace)
    _flush()
    channel.send(status)
    if status["status"] != "defined":
        return
    fn = namespace[job["function"]]
    context = Context()
    while True:
        request = channel.receive(specs=context.resolve)
        if request is None or request.get("kind") == "end":
            return
        response = perform_call(fn, request["args"], request["kwargs"], grads=request["grads"],
                                count_ops=request["ops"], context=context,
                                references=job["references"], exercise_id=job["exercise"])
        _flush()
        channel.send(response)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the student may have closed or replaced it
            pass


def main(channel_fd: int) -> None:
    """Entry point in the forked child (the zygote has set limits, folders and fds)."""
    import socket

    from course_lib.grade.wire import BlockingChannel

    channel = BlockingChannel(socket.socket(fileno=channel_fd))
    try:
        job = channel.receive()
        if isinstance(job, dict) and job.get("kind") == "job":
            channel.magic = bytes.fromhex(job["magic"])
            serve(channel, job)
    finally:
        _flush()
        os._exit(0)  # skip atexit handlers and threads the student code may have left
