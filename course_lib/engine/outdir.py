"""A run's output folder (``--out``): checked before training, and locked while in use.

Before a minute of training is spent, :func:`check_out_dir` makes sure ``--out`` names a
folder of its own (not "" or "."; not inside the training data, where the next run would
train on its own samples), that it can be created, and that it is writable. Then
:class:`RunLock` takes an advisory lock on ``<out>/.lock`` (``fcntl.flock``): a second
run into the same folder refuses with a line naming the running one, and a crashed run
releases the lock with its process, so no stale lock ever needs deleting by hand.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import sys
from pathlib import Path

from course_lib.fileio import is_within, writable_folder_problem

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not locked there
    fcntl = None

LOCK_NAME = ".lock"


def check_out_dir(out: str | os.PathLike | None, *, data: str | os.PathLike | None = None,
                  flag: str = "--out") -> Path:
    """The output folder, created and checked writable; a one-line ValueError otherwise.

    ``data``: the training data's folder (if it is one); ``out`` must not be inside it.
    """
    text = "" if out is None else str(out).strip()
    if text in ("", "."):
        raise ValueError(f"{flag} must name a folder for this run's files (got {text!r}, which "
                         f"would mix them into the current folder): e.g. {flag} runs/my-run")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder: give a folder for the "
                         f"checkpoint and samples")
    if path.resolve() == Path.cwd().resolve():
        raise ValueError(f"{flag} {path} is the current folder: name a folder of its own, "
                         f"e.g. {flag} runs/my-run")
    data_dir = None if data is None else Path(data).expanduser()
    if data_dir is not None and data_dir.is_dir() and is_within(path, data_dir):
        raise ValueError(f"{flag} {path} is inside the training data {data_dir.resolve()}: the "
                         f"next run would train on this run's samples; choose a folder outside it")
    problem = writable_folder_problem(path)   # makes the folder, and tries writing in it
    if problem:
        raise ValueError(f"{flag} {path} cannot be used: {problem}; choose a folder you can "
                         f"write to")
    return path


class RunLock:
    """An exclusive advisory lock on ``<folder>/.lock`` for as long as a run lives.

    Use as a context manager. The lock file records who holds it (pid, host, start time,
    command), which the refusal message quotes. The operating system releases the lock
    when the process ends, however it ends.
    """

    def __init__(self, folder: str | os.PathLike, flag: str = "--out"):
        self.path = Path(folder) / LOCK_NAME
        self.flag = flag
        self._file = None

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = " ".join(f.read().split()) or "another process"
            f.close()
            raise ValueError(f"{self.flag} {self.path.parent} is in use by a run that is still "
                             f"going ({holder}): wait for it to finish, or choose another "
                             f"{self.flag}") from None
        f.seek(0)
        f.truncate()
        started = _dt.datetime.now().isoformat(timespec="seconds")
        command = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {command}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
