"""Bad input to the training commands (issues 9 and 11): every case ends in one line that
says what was wrong and what to do, before any training is wasted, and nothing the user
made is lost. Each test is a reproduction of a case that used to give a traceback, a
misleading message, or a silently wrong run.

Commands run in-process through ``course_lib.cli.main`` on the ``ci`` preset and a small
folder of images, so the whole file takes about a minute.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import cli
from course_lib.engine import Distributed, fit
from course_lib.engine.outdir import RunLock
from course_lib.tasks.dcgan import DCGANTask, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quiet_small_world(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def photos(tmp_path) -> Path:
    """12 small RGB images."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def train_gan_args(photos, out, *extra):
    return ["train-gan", "--data", str(photos), "--preset", "ci", "--steps", "3",
            "--out", str(out), *extra]


def one_line(capsys, prefix="error: ") -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith(prefix), err
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err, err
    return err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def never_train(monkeypatch):
    """Make training fail the test if it starts: checks must come first."""
    def fail(*a, **k):
        raise AssertionError("training started before the bad input was refused")

    monkeypatch.setattr("course_lib.train_cli.train_gan", fail)
    monkeypatch.setattr("course_lib.tasks.cyclegan.train_cyclegan", fail)


# --- devices ----------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["train-gan", "train-cyclegan"])
def test_device_cuda_without_cuda(command, photos, tmp_path, capsys, monkeypatch):
    never_train(monkeypatch)
    argv = train_gan_args(photos, tmp_path / "o") if command == "train-gan" else \
        ["train-cyclegan", "--preset", "ci", "--out", str(tmp_path / "o")]
    assert cli.main(argv + ["--device", "cuda"]) == 1
    err = one_line(capsys)
    assert "--device cuda" in err and "--device cpu" in err


# --- the output folder --------------------------------------------------------------------------

@pytest.mark.parametrize("out", ["", "."])
def test_out_must_name_a_folder(out, photos, tmp_path, capsys, monkeypatch):
    never_train(monkeypatch)
    work = tmp_path / "project"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    assert cli.main(train_gan_args(photos, out)) == 1
    assert "--out must name a folder" in one_line(capsys)
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]


def test_out_inside_the_data_is_refused(photos, capsys, monkeypatch):
    never_train(monkeypatch)
    assert cli.main(train_gan_args(photos, photos / "run")) == 1
    assert "inside the training data" in one_line(capsys)
    assert not (photos / "run").exists()


def test_out_that_is_a_file_or_under_a_file(photos, tmp_path, capsys, monkeypatch):
    never_train(monkeypatch)
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(train_gan_args(photos, tmp_path / "notes.txt")) == 1
    assert "is a file, not a folder" in one_line(capsys)
    assert cli.main(train_gan_args(photos, tmp_path / "notes.txt" / "run")) == 1
    assert "notes.txt is a file" in one_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _make_unwritable(folder: Path):
    folder.chmod(0o555)
    if os.access(folder, os.W_OK) and os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    try:
        (folder / ".probe").touch()
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def _make_writable(folder: Path):
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_an_unwritable_out_is_refused_before_training(photos, tmp_path, capsys, monkeypatch):
    never_train(monkeypatch)
    out = tmp_path / "readonly"
    out.mkdir()
    if not _make_unwritable(out):
        _make_writable(out)
        pytest.skip("cannot make a folder read-only here")
    try:
        assert cli.main(train_gan_args(photos, out)) == 1
        err = one_line(capsys)
        assert "not writable" in err and str(out) in err and ".part" not in err
    finally:
        _make_writable(out)


def test_an_output_name_taken_by_a_folder_is_refused_before_training(photos, tmp_path, capsys,
                                                                     monkeypatch):
    never_train(monkeypatch)
    out = tmp_path / "run"
    (out / "samples.png").mkdir(parents=True)
    assert cli.main(train_gan_args(photos, out, "--no-resume")) == 1
    assert "samples.png is a folder" in one_line(capsys)


# --- the lock -----------------------------------------------------------------------------------

def test_a_second_run_into_the_same_out_is_refused_naming_the_first(photos, tmp_path, capsys,
                                                                     monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):                     # the first run, still going
        never_train(monkeypatch)
        assert cli.main(train_gan_args(photos, out)) == 1
        err = one_line(capsys)
        assert "in use by a run that is still going" in err and f"pid {os.getpid()}" in err
    monkeypatch.undo()
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    assert cli.main(train_gan_args(photos, out)) == 0   # released: the next run goes ahead


def test_a_crashed_run_releases_its_lock(photos, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    script = textwrap.dedent(f"""
        import os, sys, time
        from course_lib.engine.outdir import RunLock
        lock = RunLock({str(out)!r}).acquire()   # held while the process lives
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert cli.main(train_gan_args(photos, out)) == 1
        assert f"pid {proc.pid}" in one_line(capsys)
        proc.send_signal(signal.SIGKILL)      # a crash: no clean-up code runs
        proc.wait(timeout=30)
        assert cli.main(train_gan_args(photos, out)) == 0
    finally:
        proc.kill()


# --- resuming and extending ---------------------------------------------------------------------

def test_more_steps_extend_a_finished_run_and_say_so(photos, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_gan_args(photos, out)) == 0
    capsys.readouterr()
    assert cli.main(train_gan_args(photos, out)[:-2] + ["--steps", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "had finished its 3 steps; extending it to 5 steps" in printed
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["history"]["step"] == [1, 2, 3, 4, 5]


def test_fewer_steps_than_a_checkpoint_holds_are_refused(photos, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_gan_args(photos, out)) == 0
    capsys.readouterr()
    assert cli.main(train_gan_args(photos, out)[:-2] + ["--steps", "2", "--out", str(out)]) == 1
    assert "already at step 3" in one_line(capsys)


# --- bad checkpoints ----------------------------------------------------------------------------

def _other_task_checkpoint(path: Path):
    from course_lib.tasks.cyclegan import CycleGANConfig, train_cyclegan

    a = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    train_cyclegan(a, a, CycleGANConfig(steps=1, image_size=32, ngf=2, ndf=2, n_blocks=1),
                   out_dir=path.parent, progress=False)


def _other_architecture_checkpoint(path: Path, photos: Path):
    assert cli.main(train_gan_args(photos, path.parent, "--size", "64")) == 0


def _unsafe_checkpoint(path: Path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"spec": Evil()}, path)


BAD_CHECKPOINTS = {
    "truncated": ("truncated", None),
    "empty": ("empty", None),
    "folder": ("is a folder", None),
    "other task": ("checkpoint of a cyclegan run", "--no-resume"),
    "other architecture": ("another architecture", "--no-resume"),
    "other configuration": ("different configuration", "--no-resume"),
    "missing keys": ("lacks optimizers", "--no-resume"),
    "not ours": ("carries no architecture spec", "--no-resume"),
    "unsafe pickle": ("only code could rebuild", "--no-resume"),
    "not a checkpoint": ("not a PyTorch checkpoint", "--no-resume"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_every_bad_checkpoint_is_one_line_and_left_alone(case, photos, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    path = out / "checkpoint.pt"
    argv = train_gan_args(photos, out)
    if case in ("truncated", "missing keys", "other configuration"):
        assert cli.main(argv) == 0
        if case == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif case == "missing keys":
            ckpt = torch.load(path, weights_only=True)
            del ckpt["optimizers"]
            torch.save(ckpt, path)
        else:
            argv = argv + ["--seed", "7"]
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    elif case == "other task":
        _other_task_checkpoint(path)
    elif case == "other architecture":
        _other_architecture_checkpoint(path, photos)
    elif case == "not ours":
        torch.save({"G": {"w": torch.ones(2)}, "step": 3}, path)     # e.g. an older course_lib
    elif case == "unsafe pickle":
        _unsafe_checkpoint(path)
    elif case == "not a checkpoint":
        path.write_text("<html>404 Not Found</html>")
    capsys.readouterr()
    before = None if path.is_dir() else digest(path)

    assert cli.main(argv) == 1
    err = one_line(capsys)
    what, advice = BAD_CHECKPOINTS[case]
    assert what in err and str(path) in err, err
    if advice:
        assert advice in err, err
    assert (path.is_dir() if before is None else digest(path) == before), "the bad file was changed"


# --- a failed run never overwrites a good checkpoint ---------------------------------------------

def test_a_run_that_fails_keeps_the_last_good_checkpoint(photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(train_gan_args(photos, out)) == 0
    good = digest(out / "checkpoint.pt")
    real_step = DCGANTask.train_step

    def failing_step(self, batch, models, optimizers, ctx):
        if ctx.step >= 4:
            raise RuntimeError("out of memory (simulated)")
        return real_step(self, batch, models, optimizers, ctx)

    monkeypatch.setattr(DCGANTask, "train_step", failing_step)
    with pytest.raises(RuntimeError, match="simulated"):
        cli.main(train_gan_args(photos, out)[:-2] + ["--steps", "8", "--checkpoint-every", "100",
                                                     "--out", str(out)])
    assert digest(out / "checkpoint.pt") == good


def test_a_write_cut_short_keeps_the_last_good_checkpoint(photos, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert cli.main(train_gan_args(photos, out)) == 0
    good = digest(out / "checkpoint.pt")
    real_save = torch.save

    def disk_full(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        Path(f).write_bytes(Path(f).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)  # fileio imports torch lazily
    assert cli.main(train_gan_args(photos, out)[:-2] + ["--steps", "4", "--out", str(out)]) == 1
    assert digest(out / "checkpoint.pt") == good
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


# --- numbers and names, checked when the command line is parsed ------------------------------------

BAD_NUMBERS = [
    ("train-gan", "--seed", "-1"), ("train-gan", "--seed", str(2**40)), ("train-gan", "--seed", "1.5"),
    ("train-gan", "--steps", "1e20"), ("train-gan", "--steps", "0"), ("train-gan", "--steps", "-5"),
    ("train-gan", "--steps", "many"), ("train-gan", "--checkpoint-every", "-1"),
    ("train-gan", "--checkpoint-every", "0"), ("train-gan", "--size", "48"),
    ("train-gan", "--fraction", "2"), ("train-gan", "--fraction", "0"), ("train-gan", "--fraction", "nan"),
    ("train-gan", "--batch-size", "0"), ("train-gan", "--augment", "everything"),
    ("train-cyclegan", "--size", "30"), ("train-cyclegan", "--size", "4096"),
    ("train-cyclegan", "--size", "16"),
    ("train-cyclegan", "--seed", "-1"), ("train-cyclegan", "--steps", "1e20"),
    ("train-cyclegan", "--checkpoint-every", "-1"), ("train-cyclegan", "--device", "tpu"),
]


@pytest.mark.parametrize("command, flag, value", BAD_NUMBERS)
def test_bad_numbers_are_refused_when_parsed_naming_the_flag(command, flag, value, tmp_path, capsys,
                                                              monkeypatch):
    never_train(monkeypatch)
    monkeypatch.setattr("course_lib.data.get_dataset", lambda *a, **k: pytest.fail("data loaded"))
    assert cli.main([command, "--preset", "ci", "--out", str(tmp_path / "o"), flag, value]) == 2
    err = one_line(capsys, prefix=f"python -m course_lib {command}: error: ")
    assert f"argument {flag}" in err and "--help" in err, err
    assert not (tmp_path / "o").exists()


def test_train_cyclegan_without_horse2zebra_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    from course_lib.data import is_present

    if is_present("horse2zebra"):
        pytest.skip("horse2zebra is fetched here")
    never_train(monkeypatch)
    assert cli.main(["train-cyclegan", "--data", "horse2zebra", "--preset", "ci",
                     "--out", str(tmp_path / "o")]) == 1
    assert "get_data.py horse2zebra" in one_line(capsys)


# --- more processes than images, and batches that do not split -----------------------------------

def _task(n_images: int, batch: int) -> DCGANTask:
    images = torch.zeros(n_images, 3, 32, 32)
    return DCGANTask(TrainConfig(steps=1, batch_size=batch, ngf=2, ndf=2), images)


def test_more_processes_than_images_is_refused_before_training():
    fake_group = Distributed(rank=0, local_rank=0, world_size=3, backend="gloo")
    with pytest.raises(ValueError, match="3 processes but only 2 training images.*--nproc_per_node"):
        fit(_task(2, 6), steps=1, dist=fake_group, progress=False, device="cpu")
    with pytest.raises(ValueError, match="batch size 4 does not split evenly over 3 processes"):
        fit(_task(12, 4), steps=1, dist=fake_group, progress=False, device="cpu")


def test_a_checkpoint_cut_short_anywhere_is_called_truncated(tmp_path):
    """Cut at some lengths, torch fails with a seek error ("Invalid argument") rather than
    a zip error; the message must still say the file is truncated."""
    from course_lib.fileio import CheckpointError, read_checkpoint

    whole = tmp_path / "whole.pt"
    torch.save({"models": {"G": {f"w{i}": torch.randn(64, 64) for i in range(8)}}}, whole)
    data = whole.read_bytes()
    cut = tmp_path / "checkpoint.pt"
    for length in sorted({4, 100, 2_000, 20_000, *range(1_000, len(data), len(data) // 40)}):
        cut.write_bytes(data[:length])
        with pytest.raises(CheckpointError, match="truncated") as caught:
            read_checkpoint(cut)
        assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("junk", [b"hello world, not a checkpoint at all", b"\x80\x02]q\x00(K\x01e.",
                                  bytes(range(256)) * 4])
def test_junk_in_place_of_a_checkpoint_is_one_line(junk, tmp_path):
    """torch's weights-only unpickler fails on some junk with a KeyError or IndexError."""
    from course_lib.fileio import CheckpointError, read_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("case", ["spec models not a table", "a state not a table"])
def test_a_malformed_spec_or_state_is_one_line_on_load_and_resume(case, tmp_path):
    """A file with a spec and weights in the wrong shapes (hand-edited, or another
    program's) is refused in one line by load_model and by a resume, not a traceback."""
    from course_lib.engine import load_model, make_spec
    from course_lib.engine.checkpoint import read_run_checkpoint
    from course_lib.fileio import CheckpointError
    from course_lib.models import DCGANGenerator, model_spec

    spec = make_spec("dcgan", {"G": model_spec(DCGANGenerator, z_dim=8, ngf=4, image_size=32)}, {})
    state = {"G": DCGANGenerator(z_dim=8, ngf=4, image_size=32).state_dict()}
    if case == "spec models not a table":
        bad = {"spec": dict(spec, models=["G"]), "models": state}
    else:
        bad = {"spec": spec, "models": {"G": [1, 2]}}
    path = tmp_path / "checkpoint.pt"
    torch.save(dict(bad, step=1, world_size=1, optimizers={}, rng=[], history={}), path)
    for read in (lambda: load_model(path), lambda: read_run_checkpoint(path, spec)):
        with pytest.raises(CheckpointError, match="malformed") as caught:
            read()
        assert str(path) in str(caught.value) and len(str(caught.value).splitlines()) == 1
