"""``train-gan``, ``train-cyclegan`` and ``compress-cyclegan`` under
``torchrun --nproc_per_node=2`` (gloo, CPU): both ranks end with identical weights, only rank 0 writes (one checkpoint, recording
world_size 2), a 2-rank run at the same global batch follows the 1-rank loss curve within
the seed-to-seed noise, a run resumes with either world size, and more processes than
images stop every rank with one line.

Each rank runs the real command (``course_lib.cli.main``) through a small launcher that
also saves a digest of the rank's final weights next to the output folder.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

LAUNCHER = textwrap.dedent('''
    import sys, torch
    torch.set_num_threads(1)
    import course_lib.train_cli, course_lib.tasks.cyclegan
    from course_lib import cli
    from course_lib.engine.distributed import current

    def digest(models):
        flat = [t.detach().double().flatten() for m in models for t in
                list(m.parameters()) + list(m.buffers()) if t.is_floating_point()]
        return torch.cat(flat)

    def capture(fn, models_of):
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            torch.save(digest(models_of(result)), f"{sys.argv[1]}/rank{current().rank}.pt")
            return result
        return wrapped

    course_lib.train_cli.train_gan = capture(course_lib.train_cli.train_gan,
                                             lambda r: [r.G, r.D] + ([r.G_ema] if r.G_ema else []))
    course_lib.tasks.cyclegan.train_cyclegan = capture(course_lib.tasks.cyclegan.train_cyclegan,
                                                       lambda r: list(r.models.values()))
    sys.exit(cli.main(sys.argv[2:]))
''')


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "COURSE_CACHE": str(tmp_path / "cache"), "COURSE_RESULTS_DIR": str(tmp_path / "results")}


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(32):
        colour = rng.integers(0, 256, 3)
        img = np.clip(colour + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    return folder


def launch(tmp_path, env, argv, nproc: int, tag: str) -> subprocess.CompletedProcess:
    """Run ``python -m course_lib <argv>`` as ``nproc`` torchrun processes (or plainly, 1)."""
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    digests = tmp_path / f"digests-{tag}"
    digests.mkdir(exist_ok=True)
    if nproc == 1:
        cmd = [sys.executable, str(script), str(digests), *argv]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(script), str(digests), *argv]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    proc.digests = digests
    return proc


def history(out: Path) -> dict:
    return json.loads((out / "history.json").read_text())


def assert_ranks_identical(proc, nproc=2):
    ranks = [torch.load(proc.digests / f"rank{r}.pt", weights_only=True) for r in range(nproc)]
    assert all(torch.equal(ranks[0], other) for other in ranks[1:]), \
        f"ranks differ by up to {max((ranks[0] - o).abs().max().item() for o in ranks[1:])}"


def assert_one_writer(out: Path):
    assert sorted(p.name for p in out.iterdir()) == \
        [".lock", "checkpoint.pt", "history.json", "samples.png", "summary.json"]


def mean_curve_gap(a: list, b: list, window: int = 10) -> float:
    """Mean absolute difference of two loss curves, each smoothed over ``window`` steps."""
    kernel = np.ones(window) / window
    sa, sb = np.convolve(a, kernel, "valid"), np.convolve(b, kernel, "valid")
    return float(np.abs(sa - sb).mean())


def test_train_gan_on_two_ranks(tmp_path, env, photos):
    out = tmp_path / "two"
    argv = ["train-gan", "--data", str(photos), "--preset", "ci", "--steps", "60",
            "--batch-size", "16", "--checkpoint-every", "20", "--out", str(out)]
    two = launch(tmp_path, env, argv, 2, "two")
    assert two.returncode == 0, two.stderr[-3000:]
    assert_ranks_identical(two)
    assert_one_writer(out)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 60
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    assert "2 processes (gloo)" in two.stdout and "8 per process" in two.stdout

    # The same global batch on one process, and another seed for the yardstick of noise.
    one, other_seed = tmp_path / "one", tmp_path / "seed1"
    assert launch(tmp_path, env, argv[:-1] + [str(one)], 1, "one").returncode == 0
    assert launch(tmp_path, env, argv[:-1] + [str(other_seed), "--seed", "1"], 1,
                  "seed1").returncode == 0
    h2, h1, hs = history(out), history(one), history(other_seed)
    gaps = {key: (mean_curve_gap(h2[key], h1[key]), mean_curve_gap(hs[key], h1[key]))
            for key in ("loss_d", "loss_g")}
    print("2 ranks vs 1 rank | seed 1 vs seed 0 (1 rank), mean |smoothed difference|:",
          {k: tuple(round(v, 4) for v in pair) for k, pair in gaps.items()})
    for key, (ranks_gap, seed_gap) in gaps.items():
        assert ranks_gap <= 2 * seed_gap + 0.02, f"{key}: {ranks_gap:.4f} vs noise {seed_gap:.4f}"

    # Resume with another world size: the 2-rank checkpoint continues on 1 process.
    more = launch(tmp_path, env, argv[:3] + ["--preset", "ci", "--steps", "70", "--batch-size",
                                             "16", "--checkpoint-every", "20", "--out", str(out)],
                  1, "resume")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "extending it to 70 steps (saved by 2 process(es), now 1)" in more.stdout
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 1 and ckpt["step"] == 70
    assert history(out)["step"] == list(range(1, 71))


def test_train_cyclegan_on_two_ranks(tmp_path, env):
    out = tmp_path / "cg"
    argv = ["train-cyclegan", "--preset", "ci", "--steps", "6", "--batch-size", "2",
            "--out", str(out)]
    two = launch(tmp_path, env, argv, 2, "two")
    assert two.returncode == 0, two.stderr[-3000:]
    assert_ranks_identical(two)
    assert_one_writer(out)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["spec"]["task"] == "cyclegan"
    one = tmp_path / "cg1"
    assert launch(tmp_path, env, argv[:-1] + [str(one)], 1, "one").returncode == 0
    h2, h1 = history(out), history(one)
    print("cyclegan, 6 steps: loss_g_a 2 ranks", [round(v, 3) for v in h2["loss_g_a"]],
          "1 rank", [round(v, 3) for v in h1["loss_g_a"]])
    assert len(h2["loss_cycle_a"]) == len(h1["loss_cycle_a"]) == 6
    # The first step starts from the same weights on the same kind of batch: same scale.
    assert abs(np.mean(h2["loss_cycle_a"]) - np.mean(h1["loss_cycle_a"])) < 0.5 * np.mean(h1["loss_cycle_a"])


def test_more_processes_than_images_stops_every_rank_in_one_line(tmp_path, env):
    folder = tmp_path / "one-image"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "only.png")
    out = tmp_path / "o"
    proc = launch(tmp_path, env, ["train-gan", "--data", str(folder), "--preset", "ci",
                                  "--steps", "2", "--batch-size", "2", "--out", str(out)], 2, "few")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("2 processes but only 1 training images" in e for e in errors)
    assert not (out / "checkpoint.pt").exists()


def test_compress_cyclegan_on_two_ranks(tmp_path, env):
    """The whole GAN Compression pipeline under torchrun: the stages train data-parallel
    (gloo), rank 0 alone searches (the other rank fine-tunes with its result), evaluates and
    writes one report, student and grid."""
    out = tmp_path / "gc"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "course_lib", "compress-cyclegan", "--teacher", "zoo", "--preset", "ci",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (gloo)" in proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock", "grid.png", "report.json", "student.pt"]
    report = json.loads((out / "report.json").read_text())
    for key in ("teacher_macs", "student_macs", "mac_reduction", "latency_speedup", "fid_teacher",
                "fid_student", "fid_uniform_quarter", "student_config", "preset"):
        assert key in report, key
    assert report["preset"] == "ci" and report["mac_reduction"] > 1
    assert proc.stdout.count("report:") == 1          # one writer
    # The fine-tune stage ran on both ranks with rank 0's search result: one entry per seed.
    from course_lib.presets import PRESETS
    n_seeds = PRESETS["ci"].gancomp.n_seeds
    assert len(report["fd_per_seed"]["student"]) == n_seeds and report["fid_student_before_finetune"] > 0
    metas = [json.loads(p.read_text()) for p in
             sorted((tmp_path / "cache" / "gancomp-finetuned-embedded").glob("ci-seed*.json"))]
    assert [m["seed"] for m in metas] == list(range(n_seeds))
    assert all(m["config"]["student"]["kwargs"]["widths"] == report["student_config"] for m in metas)
