"""Run one exercise in its own fresh process, safely: the parent side of the grader.

Each run gets:

- a new temporary folder as its working directory (holding a copy of the notebook),
  with a private ``COURSE_CACHE`` and ``COURSE_RESULTS_DIR`` beside it; it is deleted
  afterwards, so nothing the student's code writes or deletes there outlives the run;
- its own session (process group), killed as a whole at the time limit or when done;
- stdout/stderr read incrementally and capped (a flood of output costs CPU, not memory);
- a result channel: an inherited pipe whose number and a random nonce are passed only
  through stdin; the parent accepts only a message carrying the nonce.

``python -P`` keeps the child's working folder off ``sys.path`` (a student's file named
``torch.py`` there cannot shadow a library), and single-threaded maths keeps parallel
workers from fighting over the cores.
"""
from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STARTUP_LIMIT = 90.0        # s for Python + torch + the check module to load (busy machines)
GRACE_AFTER_RESULT = 5.0    # s the child gets to exit once it has reported
OUTPUT_HEAD = 32 * 1024     # bytes of student output kept from the start...
OUTPUT_TAIL = 16 * 1024     # ...and from the end
MAX_CHANNEL_LINE = 256 * 1024

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding course_lib/
_CHILD = f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from course_lib.grade.child import main; main()"


@dataclass
class ChildOutcome:
    result: dict | None     # the child's verdict message, if it sent one
    ready: bool             # whether it got as far as running student code
    timed_out: bool         # killed at the time limit
    returncode: int | None
    output: str             # captured stdout+stderr, capped
    seconds: float          # wall time of the whole run


class CappedOutput:
    """Keeps the first ``head`` and last ``tail`` bytes of a stream, counts the rest."""

    def __init__(self, head: int = OUTPUT_HEAD, tail: int = OUTPUT_TAIL):
        self.head, self.tail = bytearray(), bytearray()
        self.head_limit, self.tail_limit = head, tail
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            excess = len(self.tail) - self.tail_limit
            if excess > 0:
                del self.tail[:excess]
                self.dropped += excess

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes of output not kept ...]\n" if self.dropped else ""
        return (bytes(self.head).decode("utf-8", "replace") + middle
                + bytes(self.tail).decode("utf-8", "replace"))


class Channel:
    """Reads the result pipe line by line; keeps only messages carrying the nonce."""

    def __init__(self, nonce: str):
        self.nonce = nonce
        self.partial = bytearray()
        self.messages: list[dict] = []

    def add(self, data: bytes) -> None:
        self.partial += data
        *lines, rest = self.partial.split(b"\n")
        self.partial = bytearray(rest[-MAX_CHANNEL_LINE:])  # a line of garbage is cut short
        for line in lines:
            try:
                message = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(message, dict) and message.get("nonce") == self.nonce:
                self.messages.append(message)

    def first(self, kind: str) -> dict | None:
        return next((m for m in self.messages if m.get("kind") == kind), None)


def child_env(job_dir: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "COURSE_PRESET": "ci",
        "COURSE_CACHE": str(job_dir / "cache"),
        "COURSE_RESULTS_DIR": str(job_dir / "results"),
        "COURSE_GRADE_LAZY_CHECKS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONIOENCODING": "utf-8",
    })
    return env


def remove_tree(path: Path) -> None:
    """``rm -rf`` that also copes with files the student's code made read-only (or
    already deleted)."""
    if not os.path.lexists(path):
        return
    def make_writable_and_retry(function, target, _exc):
        try:
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            function(target)
        except OSError:
            pass
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (so its process group id cannot
    be reused by another process before we kill the group)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_running: set[int] = set()  # pids of live children, for kill_running()
_running_lock = threading.Lock()


def kill_running() -> None:
    """Kill every child still running (on Ctrl-C)."""
    with _running_lock:
        for pid in list(_running):
            _kill_group(pid)


def run_child(job: dict, *, timeout: float, notebook: Path | None = None,
              startup_limit: float = STARTUP_LIMIT) -> ChildOutcome:
    """Run ``job`` (see :mod:`course_lib.grade.child`) in a fresh process and folder."""
    started = time.monotonic()
    job_dir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work = job_dir / "work"
    work.mkdir()
    if notebook is not None:
        shutil.copyfile(notebook, work / notebook.name)  # the student's file stays untouched
    nonce = secrets.token_hex(16)
    read_end, write_end = os.pipe()
    proc = None
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _CHILD], cwd=work, env=child_env(job_dir),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_end,), start_new_session=True)
        finally:
            os.close(write_end)  # only the child holds the write end now
        with _running_lock:
            _running.add(proc.pid)
        payload = json.dumps({**job, "nonce": nonce, "result_fd": write_end}).encode()
        threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True).start()
        outcome = _supervise(proc, read_end, nonce, timeout, startup_limit, started)
    finally:
        if proc is not None:
            _kill_group(proc.pid)
            with _running_lock:  # before reaping: until then the pid cannot be reused
                _running.discard(proc.pid)
            proc.wait()
            proc.stdout.close()
        os.close(read_end)
        remove_tree(job_dir)
    outcome.returncode = proc.returncode
    return outcome


def _feed(stream, payload: bytes) -> None:
    try:
        stream.write(payload)
        stream.close()
    except (BrokenPipeError, OSError):  # the child died before reading its job
        pass


def _supervise(proc, read_end: int, nonce: str, timeout: float, startup_limit: float,
               started: float) -> ChildOutcome:
    output, channel = CappedOutput(), Channel(nonce)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ, output)
    selector.register(read_end, selectors.EVENT_READ, channel)
    deadline = started + startup_limit
    ready = timed_out = False
    got_result = False
    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = not got_result
            break
        # Both pipes closed: the child is exiting, so look again soon rather than in 0.2 s.
        poll = 0.2 if selector.get_map() else 0.01
        for key, _ in selector.select(timeout=min(deadline - now, poll)):
            data = os.read(key.fd, 65536)
            if data:
                key.data.add(data)
            else:
                selector.unregister(key.fd)
        if not ready and channel.first("ready"):
            ready = True  # the time limit covers the student's code only, not start-up
            deadline = time.monotonic() + timeout
        if not got_result and channel.first("result"):
            got_result = True
            deadline = min(deadline, time.monotonic() + GRACE_AFTER_RESULT)
        if _exited(proc.pid):
            break
    _kill_group(proc.pid)  # the time limit, or grandchildren left behind
    _drain(selector, limit=1.0)
    selector.close()
    return ChildOutcome(channel.first("result"), ready, timed_out, None, output.text(),
                        time.monotonic() - started)  # returncode: filled in once reaped


def _drain(selector, limit: float) -> None:
    """Read what is still buffered in the pipes (briefly: a grandchild may hold them open)."""
    end = time.monotonic() + limit
    while selector.get_map() and time.monotonic() < end:
        events = selector.select(timeout=max(0.0, end - time.monotonic()))
        if not events:
            break
        for key, _ in events:
            data = os.read(key.fd, 65536)
            if data:
                key.data.add(data)
            else:
                selector.unregister(key.fd)
