"""Where student code runs: a sandboxed warm process per lane, and one exercise at a time.

The judge (this process) never runs student code. It starts a few *lanes* — one per
core by default — each a zygote (:mod:`course_lib.grade.zygote`) that has imported torch
and course_lib once and forks a fresh worker per exercise.

The OS sandbox (Linux, when bubblewrap's ``bwrap`` is installed and works):

- the zygote is PID 1 of its own PID namespace (``--as-pid-1``), killed with the judge
  (``--die-with-parent``), in a new session (no terminal to inject keys into);
- its own user (uid 65534, no capabilities, no further user namespaces), network
  (loopback only, nothing else reachable), IPC and UTS namespaces;
- a scrubbed environment (``--clearenv``): only ``PATH``, ``HOME`` inside the sandbox,
  the preset, thread counts and the like — never the instructor's variables;
- the filesystem read-only and mostly absent: ``/usr`` and the dynamic loader's files,
  the Python installation and its site-packages, and ``course_lib`` alone (bound at
  ``/opt/course-grade/course_lib``, first on ``sys.path``); the project folder, the class
  folder, ``$HOME`` and the grader's output paths do not exist in there;
- writable: only a size-capped private ``/tmp`` (the working folder, ``HOME``, caches) and
  ``/dev/shm``, both emptied after every exercise (the sandbox's own root, which holds
  the mount points, is remounted read-only);
- per worker: limits on memory (``COURSE_GRADE_MEMORY_GB``, default 8), CPU time, file
  size and processes; after each exercise every process of the namespace but the zygote
  is killed.

Why one zygote per lane rather than one per submission, and why that is still one student
at a time: see :mod:`course_lib.grade.zygote` (in short, a worker cannot signal, attach to
or read the zygote, and nothing of an exercise survives into the next). The student's
notebook is not in the sandbox at all: the judge sends the worker its cells over the
worker's own socket.

Without bubblewrap (macOS, Windows, a Linux without it or without user namespaces) the
lanes are plain processes: a fresh session, a private temporary folder, the same limits
and scrubbed environment, and as a Linux subreaper the zygote still finds and kills
orphans — but the filesystem and network are the instructor's. The runner says so in one
line, and refuses to grade several students that way without ``--allow-unsandboxed``.

When the judge is interrupted (SIGINT, SIGTERM, SIGHUP), :func:`kill_all_lanes` kills
every lane (and with it every worker) and removes the temporary folders.
"""
from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.fileio import remove_tree
from course_lib.grade.calling import WorkerGone
from course_lib.grade.wire import FrameReader, WireError, pack, take_json_lines, unpack

STARTUP_LIMIT = 240.0       # s for a zygote to import torch & co (a busy laptop)
GRACE_AFTER_END = 5.0       # s a worker gets to exit once the judge is done with it
OUTPUT_HEAD = 32 * 1024     # bytes of student output kept from the start...
OUTPUT_TAIL = 16 * 1024     # ...and from the end
SANDBOX_ROOT = "/opt/course-grade"   # where course_lib appears inside the sandbox
NOBODY = 65534

INSTALL_BUBBLEWRAP = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; "
                      "Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap)")


class SandboxError(Exception):
    """The grader cannot start or configure its sandbox; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 8 * 2**30     # address space per worker; 0 = none (torch maps ~3.5 GB)
    file_bytes: int = 256 * 2**20     # largest file a worker may write
    processes: int = 64               # processes in the sandbox at a time
    cpu_slack: int = 30               # CPU seconds beyond twice the exercise's time limit
    tmp_bytes: int = 1024 * 2**20     # the sandbox's /tmp
    shm_bytes: int = 64 * 2**20       # the sandbox's /dev/shm


def limits_from_env(environ=os.environ) -> Limits:
    """:class:`Limits`, with memory from ``COURSE_GRADE_MEMORY_GB`` (default 8, 0 = no
    limit). A value that is not a number is an error, never a silently removed limit."""
    raw = environ.get("COURSE_GRADE_MEMORY_GB")
    if raw is None or raw.strip() == "":
        return Limits()
    try:
        gigabytes = float(raw)
    except ValueError:
        gigabytes = float("nan")
    if not gigabytes >= 0 or gigabytes == float("inf"):
        raise SandboxError(f"COURSE_GRADE_MEMORY_GB={raw!r} is not a number of gigabytes: "
                           f"set it to e.g. 4 (0 = no limit), or unset it for the default 8")
    if 0 < gigabytes < 4:
        raise SandboxError(f"COURSE_GRADE_MEMORY_GB={raw} is too small: torch alone maps about "
                           f"3.5 GB of address space; use at least 4 (0 = no limit)")
    return Limits(memory_bytes=int(gigabytes * 2**30))


# --- bubblewrap ---------------------------------------------------------------------------

@dataclass
class Bubblewrap:
    path: str | None
    features: frozenset = frozenset()
    problem: str = ""     # why it cannot be used here ("" when it can)


_bwrap_cache: dict = {}


def find_bubblewrap() -> Bubblewrap:
    """Whether bubblewrap is installed and can make a sandbox here (probed once)."""
    if "found" in _bwrap_cache:
        return _bwrap_cache["found"]
    path = shutil.which("bwrap") if sys.platform.startswith("linux") else None
    if path is None:
        found = Bubblewrap(None, problem="bubblewrap (bwrap) is not installed" if sys.platform.startswith(
            "linux") else f"bubblewrap is Linux-only (this is {sys.platform})")
    else:
        try:
            help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=20).stdout
            features = frozenset(flag for flag in ("--disable-userns", "--clearenv", "--size", "--as-pid-1",
                                                   "--die-with-parent", "--cap-drop")
                                 if flag in help_text)
            missing = {"--as-pid-1", "--die-with-parent", "--clearenv"} - features
            if missing:
                found = Bubblewrap(path, features, f"bubblewrap at {path} is too old (no "
                                                   f"{', '.join(sorted(missing))}; 0.5 or newer is needed)")
            else:
                probe = subprocess.run([path, *_namespace_flags(features), "--ro-bind", "/", "/",
                                        "--proc", "/proc", "--dev", "/dev", "true"],
                                       capture_output=True, text=True, timeout=30)
                problem = "" if probe.returncode == 0 else (
                    f"bubblewrap cannot create a sandbox here ({(probe.stderr.strip().splitlines() or ['?'])[-1]}"
                    f"; are unprivileged user namespaces disabled?)")
                found = Bubblewrap(path, features, problem)
        except (OSError, subprocess.SubprocessError) as exc:
            found = Bubblewrap(path, problem=f"bubblewrap at {path} does not run ({exc})")
    _bwrap_cache["found"] = found
    return found


def _namespace_flags(features) -> list[str]:
    flags = ["--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
             "--die-with-parent", "--new-session", "--as-pid-1"]
    if "--disable-userns" in features:
        flags.append("--disable-userns")
    if os.geteuid() == 0 and "--cap-drop" in features:
        flags += ["--cap-drop", "ALL"]
    return flags


def course_lib_dir() -> Path:
    import course_lib

    return Path(course_lib.__file__).resolve().parent


def python_dirs() -> list[Path]:
    """What the worker's Python needs to see: the installation, the environment's prefix
    and the folders on ``sys.path`` — but never a folder holding the project (course_lib's
    parent, with its solutions) or the current folder, nor anything inside the project
    other than its virtual environment."""
    project = course_lib_dir().parent
    here = Path.cwd().resolve()
    prefix = Path(sys.prefix).resolve()
    candidates = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))}
    candidates |= {p for p in sys.path if p and os.path.isdir(p)}
    dirs = set()
    for c in candidates:
        path = Path(c).resolve()
        if not path.is_dir() or path == Path("/"):
            continue
        if path in (project, here) or path in project.parents or path in here.parents:
            continue  # binding it would show the project or the current folder
        if project in path.parents and not (path == prefix or prefix in path.parents):
            continue  # inside the project, and not its virtual environment
        dirs.add(path)
    outer: list[Path] = []
    for d in sorted(dirs, key=lambda p: (len(p.parts), str(p))):
        if not any(o in d.parents for o in outer):
            outer.append(d)   # nested folders come with their outermost one
    return outer


def site_paths() -> list[str]:
    """``sys.path`` entries the worker should get after course_lib: the standard library
    comes with ``-I -S``; these are site-packages and the like (real folders only)."""
    project = str(course_lib_dir().parent)
    here = os.getcwd()
    out = []
    for p in sys.path:
        if not p or p in (project, here) or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if real in (os.path.realpath(project), os.path.realpath(here)):
            continue
        if "site-packages" in real or "dist-packages" in real:
            out.append(p)
    return out


_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
              "/etc/alternatives", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/fonts")


def bwrap_command(bwrap: Bubblewrap, env: dict, limits: Limits, python: list[str]) -> list[str]:
    cmd = [bwrap.path, *_namespace_flags(bwrap.features), "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    for item in _ETC_FILES:
        if os.path.exists(item):
            cmd += ["--ro-bind", item, item]
    for folder in python_dirs():
        if not str(folder).startswith("/usr/"):
            cmd += ["--ro-bind", str(folder), str(folder)]
    cmd += ["--ro-bind", str(course_lib_dir()), f"{SANDBOX_ROOT}/course_lib",
            "--proc", "/proc", "--dev", "/dev"]
    size = ["--size", str(limits.shm_bytes)] if "--size" in bwrap.features else []
    cmd += [*size, "--tmpfs", "/dev/shm"]
    size = ["--size", str(limits.tmp_bytes)] if "--size" in bwrap.features else []
    # The sandbox's root is a tmpfs holding the mount points; without the remount its
    # folders (/opt/course-grade, /root...) would be writable, and outlive the exercise.
    cmd += [*size, "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp", *python]
    return cmd


def worker_env(tmp: str) -> dict:
    """The whole environment of the sandboxed processes (nothing is inherited)."""
    home = f"{tmp}/home"
    path = os.pathsep.join(dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]))
    return {
        "PATH": path, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "COURSE_PRESET": "ci", "COURSE_CACHE": f"{tmp}/cache", "COURSE_RESULTS_DIR": f"{tmp}/results",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.config/matplotlib",
        "XDG_CACHE_HOME": f"{home}/.cache", "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1",
        "COURSE_GRADE_WORKER": "1",
    }


def _bootstrap(lib_root: str) -> str:
    """The zygote's first lines: course_lib first on the path, then site-packages; the
    ``exit``/``quit`` builtins that ``-S`` leaves out."""
    return (f"import sys; sys.path.insert(0, {lib_root!r}); sys.path.extend({site_paths()!r}); "
            f"import site; site.setquit(); site.setcopyright(); site.sethelper(); "
            f"from course_lib.grade.zygote import main; main()")


# --- reading what a worker prints ------------------------------------------------------------

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


# --- lanes --------------------------------------------------------------------------------------

_lanes: set = set()
_lanes_lock = threading.Lock()


def kill_all_lanes() -> None:
    """Kill every running lane and its workers, remove their temporary folders (on a
    signal; callable from the main thread while lanes run in others)."""
    with _lanes_lock:
        lanes = list(_lanes)
    for lane in lanes:
        lane.kill()


@dataclass(eq=False)
class Lane:
    """One zygote and the exercises it runs, one at a time (used by one thread)."""
    sandboxed: bool
    warm: list = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    proc: subprocess.Popen | None = None
    control: socket.socket | None = None
    temp: str | None = None
    log: CappedOutput = field(default_factory=lambda: CappedOutput(8192, 8192))
    broken: bool = False
    log_open: bool = True
    _inbox: bytearray = field(default_factory=bytearray)
    _messages: list = field(default_factory=list)
    _killed: bool = False

    # --- starting and stopping ---------------------------------------------------------

    def start(self) -> None:
        judge_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.sandboxed:
            tmp = "/tmp"
            config = {"writable": ["/tmp", "/dev/shm"], "lib": SANDBOX_ROOT}
        else:
            self.temp = tempfile.mkdtemp(prefix="course-grade-")
            lib = os.path.join(self.temp, "lib")
            os.mkdir(lib)
            os.symlink(course_lib_dir(), os.path.join(lib, "course_lib"))
            tmp = os.path.join(self.temp, "tmp")
            os.mkdir(tmp)
            # The zygote removes this folder itself if the judge dies without doing it.
            config = {"writable": [tmp], "lib": lib, "remove_on_exit": self.temp}
        env = worker_env(tmp)
        config.update({
            "control_fd": zygote_end.fileno(), "sandboxed": self.sandboxed, "warm": list(self.warm),
            "fresh": [f"{tmp}/work", env["HOME"], env["COURSE_CACHE"], env["COURSE_RESULTS_DIR"]],
            "workdir": f"{tmp}/work",
            "limits": {"memory_bytes": self.limits.memory_bytes, "file_bytes": self.limits.file_bytes,
                       "processes": self.limits.processes, "cpu_slack": self.limits.cpu_slack},
        })
        python = [sys.executable, "-I", "-S", "-u", "-c", _bootstrap(config.pop("lib")), json.dumps(config)]
        if self.sandboxed:
            cmd = bwrap_command(find_bubblewrap(), env, self.limits, python)
            popen_env, cwd = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, "/"
        else:
            cmd, popen_env, cwd = python, env, tmp
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(zygote_end.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=popen_env, cwd=cwd)
        except OSError as exc:
            judge_end.close()
            self._remove_temp()
            raise SandboxError(f"could not start the grader's worker process: {exc}") from None
        finally:
            zygote_end.close()
        self.control = judge_end
        self.control.setblocking(False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        with _lanes_lock:
            _lanes.add(self)
        ready = self._wait_for(lambda m: m.get("kind") == "ready", time.monotonic() + STARTUP_LIMIT)
        if ready is None:
            last = (self.log.text().strip().splitlines() or ["no output"])[-1]
            self.kill()
            raise SandboxError(f"the grader's {'sandbox' if self.sandboxed else 'worker process'} did "
                               f"not start: {last[:300]}")

    def kill(self) -> None:
        """Stop the zygote and everything under it, now; remove the temporary folder."""
        self._killed = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            if not self.sandboxed:
                try:
                    proc.send_signal(signal.SIGTERM)   # the zygote kills its workers' orphans
                    proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # bwrap: the namespace dies with it
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for closable in (self.control, proc.stdout if proc else None):
            try:
                if closable is not None:
                    closable.close()
            except OSError:
                pass
        self._remove_temp()
        with _lanes_lock:
            _lanes.discard(self)

    def close(self) -> None:
        if self.control is not None and not self._killed:
            try:
                self.control.sendall(b'{"kind": "quit"}\n')
            except OSError:
                pass
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.kill()

    def restart(self) -> None:
        """A fresh zygote after the old one stopped or stopped answering."""
        self.kill()
        self.proc = self.control = None
        self.broken, self.log_open, self._killed = False, True, False
        self._inbox, self._messages = bytearray(), []
        self.start()

    def _remove_temp(self) -> None:
        if self.temp:
            remove_tree(self.temp)
            self.temp = None

    # --- the control channel -----------------------------------------------------------

    def _read_control(self) -> bool:
        """Take in the zygote's messages; False when it has gone."""
        try:
            data = self.control.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.broken = True
            return False
        self._inbox += data
        self._messages += take_json_lines(self._inbox)
        return True

    def _read_log(self) -> None:
        try:
            data = self.proc.stdout.read(65536)
        except BlockingIOError:
            return
        except (OSError, ValueError):
            data = b""
        if data:
            self.log.add(data)
        elif data is not None:
            self.log_open = False   # the zygote's output closed: it has gone

    def _take(self, match):
        for i, message in enumerate(self._messages):
            if match(message):
                return self._messages.pop(i)
        return None

    def _wait_for(self, match, deadline: float):
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ, "control")
        selector.register(self.proc.stdout, selectors.EVENT_READ, "log")
        try:
            while True:
                found = self._take(match)
                if found is not None:
                    return found
                now = time.monotonic()
                if now >= deadline or self.broken:
                    return None
                for key, _ in selector.select(min(deadline - now, 0.5)):
                    if key.data == "control":
                        if not self._read_control():
                            return None
                    else:
                        self._read_log()
                        if not self.log_open:
                            selector.unregister(self.proc.stdout)
        finally:
            selector.close()

    def send(self, message: dict, fds=()) -> None:
        data = json.dumps(message).encode() + b"\n"
        self.control.setblocking(True)
        try:
            if fds:
                socket.send_fds(self.control, [data], list(fds))
            else:
                self.control.sendall(data)
        finally:
            self.control.setblocking(False)

    # --- one exercise --------------------------------------------------------------------

    def exercise(self, job: dict, timeout: float) -> "Session":
        """Fork a worker for ``job`` (see :mod:`course_lib.grade.worker`) and return the
        judge's side of the conversation with it."""
        if self.broken or self.proc is None or self.proc.poll() is not None:
            raise WorkerGone("sandbox", "the grader's worker process stopped")
        channel, worker_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for sock in (channel, worker_channel):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
                except OSError:
                    pass
        out_read, out_write = os.pipe()
        nonce = secrets.token_hex(8)
        try:
            self.send({"kind": "run", "nonce": nonce, "timeout": timeout},
                      fds=(worker_channel.fileno(), out_write))
        except OSError as exc:
            self.broken = True
            os.close(out_read)
            channel.close()
            raise WorkerGone("sandbox", f"could not reach the grader's worker process ({exc})") from None
        finally:
            worker_channel.close()
            os.close(out_write)
        magic = secrets.token_bytes(16)
        session = Session(self, nonce, channel, out_read, timeout, magic)
        session.send(dict(job, kind="job", magic=magic.hex()))
        return session


class Session:
    """The judge's side of one exercise: a socket to the worker, its output, a time budget
    that counts only the time spent waiting for the student's code."""

    def __init__(self, lane: Lane, nonce: str, channel: socket.socket, output_fd: int, timeout: float,
                 magic: bytes):
        self.lane, self.nonce, self.channel, self.output_fd = lane, nonce, channel, output_fd
        self.budget = timeout
        self.output = CappedOutput()
        self.reader = FrameReader(magic=magic)   # the worker's frames start with the magic
        self.exited: dict | None = None
        self.channel_open = self.output_open = True
        self.garbled = ""
        channel.setblocking(False)
        os.set_blocking(output_fd, False)

    def send(self, value, specs: bool = False) -> None:
        """Send a frame, reading the worker's output meanwhile (a worker blocked on a full
        output pipe must not block us). A worker that has gone shows in receive()."""
        data = memoryview(pack(value, specs))
        deadline = time.monotonic() + max(10.0, self.budget)
        while data and self.channel_open and time.monotonic() < deadline:
            try:
                sent = self.channel.send(data[: 1 << 22])
            except BlockingIOError:
                self._pump(0.5, writing=True)
                continue
            except OSError:
                return
            data = data[sent:]

    def call(self, request: dict):
        self.send(request, specs=True)
        return self.receive()

    def _pump(self, seconds: float, writing: bool = False) -> None:
        """Wait up to ``seconds`` for something to happen (or, ``writing``, for room to
        send) and take it in: the worker's frames, its output, the zygote's messages."""
        selector = selectors.DefaultSelector()
        if self.channel_open:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            selector.register(self.channel, events, "channel")
        if self.output_open:
            selector.register(self.output_fd, selectors.EVENT_READ, "output")
        if not self.lane.broken:
            selector.register(self.lane.control, selectors.EVENT_READ, "control")
        if self.lane.log_open:
            selector.register(self.lane.proc.stdout, selectors.EVENT_READ, "log")
        try:
            for key, mask in selector.select(seconds):
                if key.data == "channel":
                    if not mask & selectors.EVENT_READ:
                        continue   # room to write: the caller sends
                    try:
                        data = self.channel.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.channel_open = False
                        continue
                    try:
                        self.reader.feed(data)
                    except WireError as exc:
                        self.garbled = str(exc)
                        self.channel_open = False
                elif key.data == "output":
                    try:
                        data = os.read(self.output_fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if data:
                        self.output.add(data)
                    else:
                        self.output_open = False
                elif key.data == "control":
                    self.lane._read_control()
                else:
                    self.lane._read_log()
        finally:
            selector.close()
        if self.exited is None:
            self.exited = self.lane._take(lambda m: m.get("kind") == "exited" and m.get("nonce") == self.nonce)

    def _kill_worker(self) -> None:
        try:
            self.lane.send({"kind": "kill"})
        except OSError:
            self.lane.broken = True

    def receive(self):
        """The worker's next message; raises :class:`WorkerGone` if there is none in time."""
        while True:
            frames = self.reader.frames()
            if frames:
                self.reader.ready = frames[1:] + self.reader.ready
                try:
                    return unpack(frames[0])
                except WireError:
                    continue   # junk that happened to carry the magic: look further
            if self.garbled:
                self._kill_worker()
                raise WorkerGone("garbled", self.garbled)
            if self.lane.broken:
                raise WorkerGone("sandbox", "the grader's worker process stopped")
            if self.exited is not None or not self.channel_open:
                # The worker is gone; what it sent before going may still be on its way.
                end = time.monotonic() + 2.0
                while self.channel_open and not self.reader.ready and time.monotonic() < end:
                    self._pump(0.1)
                if self.reader.ready:
                    continue
                if self.exited is None:
                    self._wait_exit(2.0)
                returncode = (self.exited or {}).get("returncode")
                raise WorkerGone("exited", str((self.exited or {}).get("reason", "")), returncode)
            if self.budget <= 0:
                self._kill_worker()
                raise WorkerGone("timeout")
            started = time.monotonic()
            self._pump(min(self.budget, 0.5))
            self.budget -= time.monotonic() - started

    def _wait_exit(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.exited is None and not self.lane.broken and time.monotonic() < end:
            self._pump(min(0.2, max(0.0, end - time.monotonic())))

    def finish(self) -> tuple[dict | None, str]:
        """End the exercise: the worker exits (or is killed), everything it started is
        killed by the zygote, its output is read to the end. Returns ``(the zygote's
        "exited" message or None, output)``."""
        if self.channel_open and self.exited is None:
            self.send({"kind": "end"})
        try:
            self.channel.close()
        except OSError:
            pass
        self.channel_open = False
        self._wait_exit(GRACE_AFTER_END)
        if self.exited is None and not self.lane.broken:
            self._kill_worker()
            self._wait_exit(10.0)
        if self.exited is None or self.exited.get("zygote_exits"):
            self.lane.broken = True   # an unresponsive or departing zygote: the runner restarts the lane
        end = time.monotonic() + 1.0
        while self.output_open and time.monotonic() < end:
            self._pump(0.1)
        os.close(self.output_fd)
        return self.exited, self.output.text()
