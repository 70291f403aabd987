"""The warm parent of the workers: imports torch and course_lib once, then forks a fresh
child per exercise.

Started by :mod:`course_lib.grade.sandbox` — inside bubblewrap, as PID 1 of the sandbox's
own PID namespace, or as a plain process when there is no bubblewrap — with one control
socket to the judge. Its life:

1. import what the notebooks' setup cells import (torch, course_lib...) and freeze the
   heap (``gc.freeze``) so that children share it copy-on-write; say ``ready``;
2. for each ``run`` message (which carries two file descriptors: the worker's socket to
   the judge and the pipe for its output) fork a child, which closes the control socket,
   sets its limits (memory, CPU time, file size, processes), makes a fresh working folder
   and becomes the worker (:mod:`course_lib.grade.worker`);
3. watch the child until it exits or the judge says ``kill``; then kill everything the
   exercise left behind — in the sandbox, every process of the namespace but itself
   (``kill(-1)``), so a double-forked, ``setsid`` orphan dies too; without the sandbox,
   the child's session and every descendant it can find — empty the writable folders,
   and report ``exited`` with the exit status.

Why this is safe to share between students (one zygote per lane, exercises one at a
time): the zygote never reads anything a student wrote (sources arrive on the worker's own
socket, after the fork); as PID 1 it ignores every signal sent from inside the namespace;
it is not dumpable, so no process in the sandbox can attach to it, read its memory or its
file descriptors (``/proc/1/fd``); and before the next exercise starts, no process of the
previous one is alive and ``/tmp`` and ``/dev/shm`` are empty. Each exercise therefore
starts from the same state as a fresh process, minus the import time.
"""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
import time

from course_lib.fileio import remove_tree

LINUX = sys.platform.startswith("linux")
POLL = 0.02  # s between looks at the child (its exit, the process count, the judge)


def _prctl(option: int, value: int) -> None:
    if LINUX:
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
        except (OSError, AttributeError):
            pass


PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36


def _send(control, message: dict) -> None:
    try:
        control.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


class Inbox:
    """The judge's messages: JSON lines on a stream socket, file descriptors alongside
    (a ``run`` line takes the next two)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.data = bytearray()
        self.fds: list[int] = []

    def read(self) -> bool:
        """Receive what is there (blocking); False at end of stream."""
        data, fds, _, _ = socket.recv_fds(self.sock, 65536, 8)
        self.fds += fds
        self.data += data
        return bool(data)

    def messages(self) -> list[tuple[dict, list[int]]]:
        from course_lib.grade.wire import take_json_lines

        out = []
        for message in take_json_lines(self.data):
            fds = []
            if message.get("kind") == "run":
                fds, self.fds = self.fds[:2], self.fds[2:]
            out.append((message, fds))
        return out


def _pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descendants(root: int) -> list[int]:
    """Processes whose chain of parents reaches ``root`` (Linux /proc)."""
    parents = {pid: _parent_of(pid) for pid in _pids()}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found |= frontier
    return sorted(found)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Zygote:
    def __init__(self, config: dict, control: socket.socket):
        self.config = config
        self.control = control
        self.inbox = Inbox(control)
        self.sandboxed = bool(config["sandboxed"]) and os.getpid() == 1
        self.child: int | None = None

    # --- cleaning up after an exercise ------------------------------------------------

    def kill_everything(self) -> bool:
        """No process of the exercise survives this; False if some refused to die in time
        (then the zygote itself must go, taking its namespace with it)."""
        end = time.monotonic() + 5
        if self.sandboxed:
            while time.monotonic() < end:
                try:
                    os.kill(-1, signal.SIGKILL)  # everyone in the namespace but PID 1
                except ProcessLookupError:
                    pass
                _reap()
                if _pids() in ([], [1]):
                    return True
                time.sleep(0.01)
            return False
        if self.child is not None:
            try:
                os.killpg(self.child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        while LINUX and time.monotonic() < end:
            # As a subreaper, the zygote inherits orphans, whatever session they made.
            left = _descendants(os.getpid())
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            _reap()
            if not left:
                break
            time.sleep(0.01)
        _reap()
        return not (LINUX and _descendants(os.getpid()))

    def wipe(self) -> None:
        """Empty every folder the exercise could write to."""
        for folder in self.config["writable"]:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                path = entry.path
                try:
                    if os.path.ismount(path):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        remove_tree(path)
                    else:
                        os.unlink(path)
                except OSError:
                    pass

    # --- one exercise -------------------------------------------------------------------

    def _limits(self, timeout: float) -> None:
        import resource

        limits = self.config["limits"]

        def cap(kind, value):
            soft, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            try:
                resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
            except (ValueError, OSError):
                pass

        cap(resource.RLIMIT_CORE, 0)
        cap(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
        cpu = int(timeout * 2 + limits["cpu_slack"])
        cap(resource.RLIMIT_CPU, cpu)
        if limits["memory_bytes"]:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            value = int(limits["memory_bytes"])
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(resource.RLIMIT_AS, (value, hard))
        if self.sandboxed and hasattr(resource, "RLIMIT_NPROC"):
            # Counted per user namespace, so this is the sandbox's own count. (Not in the
            # fallback: there it would count every process of the instructor's account.)
            cap(resource.RLIMIT_NPROC, int(limits["processes"]))

    def _become_worker(self, message: dict, channel_fd: int, output_fd: int) -> None:
        try:
            self.control.close()
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(output_fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            if not self.sandboxed:
                os.setsid()
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            for folder in self.config["fresh"]:
                os.makedirs(folder, exist_ok=True)
            os.chdir(self.config["workdir"])
            self._limits(float(message.get("timeout", 60)))
            from course_lib.grade.worker import main

            main(channel_fd)
        finally:
            os._exit(70)

    def run(self, message: dict, fds: list[int]) -> None:
        nonce = str(message.get("nonce", ""))
        channel_fd, output_fd = fds
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would print our buffered text again
        pid = os.fork()
        if pid == 0:
            self._become_worker(message, channel_fd, output_fd)
        self.child = pid
        os.close(channel_fd)
        os.close(output_fd)
        _send(self.control, {"kind": "started", "nonce": nonce})
        returncode, reason = self._watch(pid)
        clean = self.kill_everything()
        self.child = None
        self.wipe()
        _send(self.control, {"kind": "exited", "nonce": nonce, "returncode": returncode, "reason": reason,
                             "zygote_exits": not clean})
        if not clean:
            os._exit(0)   # as PID 1, our exit kills what is left; the judge starts a new lane

    def _watch(self, pid: int) -> tuple[int | None, str]:
        reason = ""
        limit = int(self.config["limits"]["processes"])
        while True:
            ready, _, _ = select.select([self.control], [], [], POLL)
            if ready:
                if not self.inbox.read():   # the judge is gone: nobody to report to
                    self.kill_everything()
                    self.wipe()
                    os._exit(0)
                for message, fds in self.inbox.messages():
                    for fd in fds:
                        os.close(fd)
                    if message.get("kind") == "kill":
                        self.kill_everything()
                        reason = reason or "killed"
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None, reason
            if done == pid:
                return os.waitstatus_to_exitcode(status), reason
            if self.sandboxed and len(_pids()) > limit + 1:
                self.kill_everything()
                reason = "processes"

    def serve(self) -> None:
        while True:
            for message, fds in self.inbox.messages():
                if message.get("kind") == "run" and len(fds) == 2:
                    self.run(message, fds)
                    continue
                for fd in fds:
                    os.close(fd)
                if message.get("kind") == "quit":
                    return
            if not self.inbox.read():
                return


def warm(modules: list[str]) -> dict[str, str]:
    """Import ``modules``; return ``{module: error}`` for those that failed."""
    import importlib

    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken optional module is the worker's problem
            failed[name] = f"{type(exc).__name__}: {exc}"[:200]
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
        # Building the first optimiser imports torch._dynamo (seconds of CPU): do it once
        # here rather than in every worker that trains a step.
        try:
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        except Exception as exc:  # noqa: BLE001
            failed["torch.optim"] = f"{type(exc).__name__}: {exc}"[:200]
    return failed


def main() -> None:
    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(config["control_fd"]))
    _prctl(PR_SET_DUMPABLE, 0)  # nobody in the sandbox may attach to us or read /proc/1/*
    zygote = Zygote(config, control)
    if not zygote.sandboxed:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)          # orphans come back to us, to be killed
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)   # the judge died: clean up, then go

        def stop(signum, frame):   # also what the judge's death sends (PDEATHSIG)
            zygote.kill_everything()
            zygote.wipe()
            if config.get("remove_on_exit"):
                remove_tree(config["remove_on_exit"])
            os._exit(0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)
    for folder in config["fresh"]:
        os.makedirs(folder, exist_ok=True)
    failed = warm(list(config["warm"]) + ["course_lib.grade.worker", "course_lib.grade.calling",
                                          "course_lib.grade.fixtures"])
    zygote.wipe()   # whatever the imports cached (matplotlib's fonts...) is in memory now
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # the heap stays shared with the children instead of being copied
    _send(control, {"kind": "ready", "pid": os.getpid(), "sandboxed": zygote.sandboxed,
                    "failed": failed})
    try:
        zygote.serve()
    finally:
        zygote.kill_everything()
        zygote.wipe()
        if config.get("remove_on_exit"):
            remove_tree(config["remove_on_exit"])
        os._exit(0)


if __name__ == "__main__":
    main()
