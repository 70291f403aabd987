"""Calling the student's function: the one interface every check is written against.

A check receives a :class:`Student` and calls the student's function through it::

    out = student(x, ratio=0.125, generator=fixtures.generator(0))   # the return value
    run = student.run([x], {"generator": fixtures.generator(3)},
                      grads=[Grad(wrt=[0])], count_ops=True)
    run.value     # what the function returned, as plain data (see below)
    run.args      # the positional arguments after the call (did it change x in place?)
    run.grads[0]  # [d sum(out) / d x] (None where no gradient reached)
    run.ops       # torch operations it ran (a Python loop over images runs many)
    run.events, run.report(spec)   # what trusted spies saw (see fixtures)

Arguments are plain data (tensors — a tensor with ``requires_grad`` arrives as a fresh
leaf that requires grad — numbers, strings, lists, tuples, dicts) and fixture specs
(:mod:`course_lib.grade.fixtures`), never the judge's own objects. Results come back as
plain data too: tensors are detached copies (keeping the ``requires_grad`` flag as a
mark of "differentiable over there"), numpy arrays stay arrays, numpy scalars become
Python numbers, and any other object becomes :class:`~course_lib.grade.wire.Opaque`
(only its type name crosses). Gradients are outputs as well: ask for the gradient of a
loss the check chooses (``Grad``) and compare it with your own.

Two implementations, one behaviour:

- :class:`LocalStudent` — ``self_check`` in the notebook: the function is called right
  there, in the student's kernel (instant feedback);
- ``WorkerStudent`` (:mod:`course_lib.grade.runner`) — the grader: the call is sent to
  the untrusted worker process, and the answer comes back as bytes of plain data.

Both sides run :func:`perform_call` next to the student's code and build the
:class:`Outcome` with :func:`outcome_from_response`, so a check gives the same verdict
and message in both.

If the student's function raises, ``run`` raises :class:`StudentRaised`; if it calls
course_lib's reference implementation of the exercise (the tripwire, below), ``run``
raises :class:`Delegated`. Both derive from ``BaseException`` so that a check's
``except Exception`` never swallows them; :func:`course_lib.grade.judge.run_check` turns
them into the verdict.

**The tripwire** is a deterrent, not a security boundary: while the student's function
runs, the reference functions named by the exercise (``reference=`` in ``@exercise``:
course_lib's, or a package's that computes the answer, e.g. torchprofile's) have their code swapped for one that records the call and raises. Calling them under any
alias is caught; copying their source is not. The sandbox, not the tripwire, is what
keeps student code away from the grader.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

from course_lib.grade.describe import describe_exception, is_not_implemented, shorten
from course_lib.grade.wire import Opaque

MAX_RESULT_BYTES = 256 * 2**20   # tensors and arrays in one answer


class StudentRaised(BaseException):
    """The student's function raised; ``info`` holds ``type``, ``text`` (one line),
    ``not_implemented`` and ``exit_code`` (for ``SystemExit``)."""

    def __init__(self, info: dict):
        super().__init__(info.get("text", ""))
        self.info = info


class Delegated(BaseException):
    """The student's function called course_lib's reference for this exercise."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class WorkerGone(BaseException):
    """The worker stopped answering: ``reason`` is "timeout", "exited", "garbled" or
    "sandbox" (the grader's own machinery failed)."""

    def __init__(self, reason: str, detail: str = "", returncode=None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.returncode = reason, detail, returncode


class ReferenceUsed(BaseException):
    """Raised into the student's code by a tripwire."""


@dataclass(frozen=True)
class Grad:
    """Ask for ``d loss / d wrt`` with ``loss = (value_at(of) * weight).sum()`` (``weight``
    None: plain sum). ``of``: a path into the return value (``()`` the value itself,
    ``(0,)`` its first item, ``("loss_d",)`` a key). ``wrt``: positional argument indices,
    keyword names, or fixture specs of modules (their parameters)."""
    of: tuple = ()
    wrt: tuple = (0,)
    weight: object = None


@dataclass
class Outcome:
    value: object
    args: list
    kwargs: dict
    grads: list                  # per Grad: [tensor | None | [tensor | None, ...]] or None
    ops: int | None
    events: list[str]
    reports: dict = field(default_factory=dict)

    def report(self, spec) -> dict:
        """What the fixture built from ``spec`` reported after the call (``{}`` if none)."""
        return self.reports.get(spec.id) or {}


# --- the student's side: calling, and turning results into plain data -------------------

def to_plain(value, budget: list | None = None, depth: int = 0):
    """``value`` as plain data (see the module docstring); tensors are detached copies."""
    import sys

    budget = budget if budget is not None else [MAX_RESULT_BYTES]
    if depth > 48:
        return Opaque("value nested too deeply")
    t = type(value)
    if value is None or t in (bool, int, float, str, complex, bytes):
        return value
    if t in (list, tuple):
        items = [to_plain(v, budget, depth + 1) for v in value]
        return items if t is list else tuple(items)
    if t is dict:
        return {to_plain(k, budget, depth + 1): to_plain(v, budget, depth + 1) for k, v in value.items()
                if type(k) in (bool, int, float, str, tuple) or k is None}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            return Opaque(f"{value.layout} tensor")
        size = value.numel() * value.element_size()
        budget[0] -= size
        if budget[0] < 0:
            return Opaque(f"Tensor too large to send ({size} bytes)")
        plain = value.detach().cpu().contiguous().clone().as_subclass(torch.Tensor)
        if value.requires_grad and (plain.dtype.is_floating_point or plain.is_complex()):
            plain.requires_grad_(True)
        return plain
    np = sys.modules.get("numpy")
    if np is not None:
        if t is np.ndarray:
            if value.dtype.kind not in "biufc":
                return Opaque(f"ndarray of {value.dtype}")
            budget[0] -= value.nbytes
            return value.copy() if budget[0] >= 0 else Opaque("ndarray too large to send")
        if isinstance(value, np.generic) and value.dtype.kind in "biufc":
            return value.item()
    return Opaque(t.__name__)


class OpCounter:
    """Counts torch operations while active (``with OpCounter() as c: ...; c.count``)."""

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        counter = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                counter.count += 1
                return func(*args, **(kwargs or {}))

        self.count = 0
        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        return False


_TRIPPED: list[str] = []


def reference_used(name: str):
    """The body of a tripwire: remember, then stop the student's function."""
    _TRIPPED.append(name)
    raise ReferenceUsed(f"{name} computes this exercise's answer; write your own")


def _resolve(path: str):
    """(owner, attribute name, target) of a function, or of a method named through its
    class ("course_lib.compress.supernet.SuperConv2d.forward")."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ModuleNotFoundError(f"no module in {path!r}")


class Tripwires:
    """While active, calling any of ``paths`` ("course_lib.latent.slerp") trips."""

    def __init__(self, paths):
        self.paths = tuple(paths)
        self.undo: list = []

    def __enter__(self):
        for path in self.paths:
            module, attr, target = _resolve(path)
            source = (f"def tripped(*args, **kwargs):\n"
                      f"    from course_lib.grade.calling import reference_used\n"
                      f"    reference_used({path!r})\n")
            scope: dict = {}
            exec(compile(source, "<tripwire>", "exec"), scope)
            code = getattr(target, "__code__", None)
            if code is not None and not code.co_freevars:
                # Swap the code of the function object itself, so that every alias of it
                # (``from x import f as g``, a dict of ops) trips too.
                target.__code__ = scope["tripped"].__code__
                self.undo.append(lambda t=target, c=code: setattr(t, "__code__", c))
            else:
                setattr(module, attr, scope["tripped"])
                self.undo.append(lambda m=module, a=attr, t=target: setattr(m, a, t))
        return self

    def __exit__(self, *exc):
        while self.undo:
            self.undo.pop()()
        return False


def _at(value, path):
    for key in path:
        value = value[key]
    return value


def _gradients(value, args, kwargs, requests) -> list:
    import torch

    results = []
    for request in requests:
        try:
            out = _at(value, tuple(request["of"]))
        except (KeyError, IndexError, TypeError):
            results.append(None)
            continue
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            results.append(None)
            continue
        groups = []
        for target in request["wrt"]:
            if type(target) is int:
                item = args[target] if 0 <= target < len(args) else None
            elif type(target) is str:
                item = kwargs.get(target)
            else:
                item = target
            if isinstance(item, torch.nn.Module):
                groups.append([p for p in item.parameters()])
            elif isinstance(item, torch.Tensor) and item.requires_grad:
                groups.append(item)
            else:
                groups.append(None)
        flat = [t for g in groups if g is not None for t in (g if isinstance(g, list) else [g])]
        weight = request.get("weight")
        loss = out.sum() if weight is None else (out * weight).sum()
        try:
            found = list(torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True)) if flat else []
        except RuntimeError:
            results.append(None)
            continue
        answer = []
        for g in groups:
            if g is None:
                answer.append(None)
            elif isinstance(g, list):
                answer.append([found.pop(0) for _ in g])
            else:
                answer.append(found.pop(0))
        results.append(answer)
    return results


def raised_info(exc: BaseException, exercise_id: str) -> dict:
    return {"type": shorten(type(exc).__name__, 80), "text": describe_exception(exc),
            "not_implemented": is_not_implemented(exc, exercise_id),
            "exit_code": shorten(repr(exc.code), 80) if isinstance(exc, SystemExit) else None}


def perform_call(fn, args: list, kwargs: dict, *, grads=(), count_ops: bool = False,
                 context=None, references=(), exercise_id: str = "", passthrough=()) -> dict:
    """Call ``fn(*args, **kwargs)`` right here and describe what happened as plain data.

    ``args``/``kwargs`` are already this process's objects (fresh tensors, built
    fixtures); ``grads`` are :class:`Grad`-like dicts with ``wrt`` resolved likewise.
    Exceptions in ``passthrough`` (Ctrl-C, ``self_check``'s time limit) propagate.
    """
    if context is not None:
        context.begin_call()
    del _TRIPPED[:]
    response: dict = {"ops": None}
    try:
        with Tripwires(references):
            if count_ops:
                with OpCounter() as counter:
                    value = fn(*args, **kwargs)
                response["ops"] = counter.count
            else:
                value = fn(*args, **kwargs)
            gradients = _gradients(value, args, kwargs, grads) if grads else []
    except passthrough:
        raise
    except BaseException as exc:  # noqa: BLE001 - the student's code may raise anything
        response["raised"] = raised_info(exc, exercise_id)
    else:
        response.update(value=to_plain(value), grads=to_plain(gradients))
    response.update(
        args=to_plain(list(args)), kwargs=to_plain(dict(kwargs)),
        events=[str(e) for e in context.events] if context is not None else [],
        reports=to_plain(context.reports()) if context is not None else {},
        delegated=list(_TRIPPED))
    return response


# --- the judge's side: reading the answer -------------------------------------------------

class MalformedAnswer(WorkerGone):
    def __init__(self, detail: str):
        super().__init__("garbled", detail)


def _expect(value, types, what: str):
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise MalformedAnswer(f"{what} is a {type(value).__name__}")
    return value


def outcome_from_response(response) -> Outcome:
    """Check the shape of an answer (it may come from a hostile process) and turn it into
    an :class:`Outcome`, or raise :class:`Delegated` / :class:`StudentRaised`."""
    _expect(response, dict, "the answer")
    delegated = _expect(response.get("delegated", []), list, "the tripwire list")
    if delegated:
        raise Delegated(shorten(str(delegated[0]), 120))
    if "raised" in response:
        info = _expect(response["raised"], dict, "the exception")
        clean = {"type": shorten(str(info.get("type", "Exception")), 80),
                 "text": shorten(str(info.get("text", "")), 400),
                 "not_implemented": info.get("not_implemented") is True,
                 "exit_code": None if info.get("exit_code") is None else shorten(str(info["exit_code"]), 80)}
        raise StudentRaised(clean)
    ops = response.get("ops")
    if ops is not None:
        _expect(ops, int, "the operation count")
    events = _expect(response.get("events", []), list, "the event list")
    reports = _expect(response.get("reports", {}), dict, "the reports")
    return Outcome(value=response.get("value"), args=_expect(response.get("args", []), list, "the arguments"),
                   kwargs=_expect(response.get("kwargs", {}), dict, "the keyword arguments"),
                   grads=_expect(response.get("grads", []), list, "the gradients"), ops=ops,
                   events=[shorten(e, 80) for e in events if isinstance(e, str)], reports=reports)


def grad_request(grad: Grad) -> dict:
    return {"of": list(grad.of), "wrt": list(grad.wrt), "weight": grad.weight}


class Student:
    """What a check calls (see the module docstring). Subclasses implement :meth:`run`."""

    function = "the function"

    def run(self, args=(), kwargs=None, *, grads=(), count_ops: bool = False) -> Outcome:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.run(args, kwargs).value


def _fresh(value):
    """A copy of ``value`` for the student's function: tensors are new leaves (keeping
    ``requires_grad``), so nothing the function does reaches the judge's own tensors."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        copy = value.detach().clone()
        return copy.requires_grad_(True) if value.requires_grad and copy.is_floating_point() else copy
    if type(value) in (list, tuple):
        return type(value)(_fresh(v) for v in value)
    if type(value) is dict:
        return {k: _fresh(v) for k, v in value.items()}
    return value


class LocalStudent(Student):
    """The student's function, called in this process (``self_check``)."""

    def __init__(self, fn, exercise, passthrough=()):
        from course_lib.grade.fixtures import Context

        self.fn, self.exercise = fn, exercise
        self.function = exercise.function
        self.context = Context()
        self.passthrough = passthrough

    def run(self, args=(), kwargs=None, *, grads=(), count_ops: bool = False) -> Outcome:
        args = self.context.materialise(_fresh(list(args)))
        kwargs = self.context.materialise(_fresh(dict(kwargs or {})))
        requests = [dict(grad_request(g), wrt=[self.context.materialise(w) for w in g.wrt]) for g in grads]
        response = perform_call(self.fn, args, kwargs, grads=requests, count_ops=count_ops,
                                context=self.context, references=self.exercise.reference,
                                exercise_id=self.exercise.id, passthrough=self.passthrough)
        return outcome_from_response(response)


def finite(x) -> bool:
    """Whether ``x`` is a real, finite number (a plain int or float)."""
    return type(x) in (int, float) and math.isfinite(x)
