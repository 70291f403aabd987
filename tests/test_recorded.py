"""The recorded runs shipped in ``course_lib/recorded/<preset>/`` (notebooks 02 and 03 show
them): they load, hold the whole comparison grid with finite figures, and a ``ci``
recording made afresh by ``course_lib.experiments.record`` has the shipped one's structure."""
import math

import numpy as np
import pytest
import torch

from course_lib.experiments import (FRACTIONS, RECORDED_DIR, load_monitor_recording, load_recording,
                                    monitor_plan, record, record_monitor, recording_plan)
from course_lib.presets import get_preset

# Every recording that ships (a folder with runs.json); ci always does. The class one is
# made by `python -m course_lib.experiments --preset class` and tested once it is there.
SHIPPED = sorted({"ci"} | {p.parent.name for p in RECORDED_DIR.glob("*/runs.json")})
MONITOR_KEYS = ("acc_train", "acc_heldout", "acc_fake", "gap", "r_t")
EVAL_KEYS = MONITOR_KEYS + ("fd",)
FINAL_KEYS = ("step", "loss_d", "loss_g") + EVAL_KEYS
MONITORED = sorted({"ci"} | {p.parent.name for p in RECORDED_DIR.glob("*/monitor_runs.json")})


def expected_grid(preset_name: str) -> set:
    """(fraction, augment, seed) of every run the recording must hold: 100%, 20% and 10%
    of the data with and without DiffAugment (the preset's seeds at 10%), and the two
    failing strategies at 10%."""
    grid = set(recording_plan(get_preset(preset_name)))
    for f in FRACTIONS:
        assert {(f, "none", 0), (f, "diffaugment", 0)} <= grid
    assert {(0.1, "real_only", 0), (0.1, "d_step_only", 0)} <= grid
    return grid


@pytest.fixture(params=SHIPPED)
def shipped(request, monkeypatch):
    monkeypatch.delenv("COURSE_PRESET", raising=False)  # n_seeds must be the preset's own
    name = request.param
    assert (RECORDED_DIR / name / "runs.json").exists(), (
        f"course_lib/recorded/{name}/ is missing: make it with `python -m course_lib.experiments "
        f"--preset {name}`")
    return name, load_recording(name)


def test_shipped_recording_loads_and_says_what_it_is(shipped):
    name, rec = shipped
    assert rec.preset == name
    assert rec.feature_extractor and rec.data_source
    assert rec.runs and len(rec.samples) == len(rec.runs)


def test_shipped_recording_has_the_full_grid(shipped):
    name, rec = shipped
    got = [(r["fraction"], r["augment"], r["seed"]) for r in rec.runs]
    assert len(got) == len(set(got)), "a configuration is recorded twice"
    assert set(got) == expected_grid(name)
    for fraction, augment, seed in got:
        assert rec.find(fraction, augment, seed)["augment"] == augment
    sizes = [rec.find(f, "none", 0)["n_train"] for f in FRACTIONS]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 0, f"n_train by fraction: {sizes}"


def test_shipped_recording_values_are_finite_and_consistent(shipped):
    name, rec = shipped
    steps = get_preset(name).cifar.compare_steps
    # A recording made before the monitor measured D as it trains has its (eval-mode)
    # monitor figures retired: only the FD curves remain.
    retired = bool(rec.meta.get("monitor_retired"))
    for run in rec.runs:
        key, history, final = run["key"], run["history"], run["final"]
        if retired:
            assert not set(MONITOR_KEYS) & (set(history) | set(final)), f"{key}: eval-mode figures left"
            assert final["fd"] > 0 and len(history["fd"]) == len(history["eval_step"])
            continue
        for k in FINAL_KEYS:
            assert k in final and math.isfinite(final[k]), f"{key}: final {k} = {final.get(k)}"
        assert final["step"] == steps, f"{key} stopped at step {final['step']}, the preset trains {steps}"
        n_eval = len(history["eval_step"])
        assert n_eval >= 1 and history["eval_step"][-1] == steps
        for k in EVAL_KEYS:
            values = history[k]
            assert len(values) == n_eval and all(math.isfinite(v) for v in values), f"{key}: {k}"
        for k in ("acc_train", "acc_heldout", "acc_fake"):
            assert all(0 <= v <= 1 for v in history[k]), f"{key}: {k} outside [0, 1]"
        assert final["gap"] == pytest.approx(final["acc_train"] - final["acc_heldout"], abs=1e-6)
        assert final["fd"] > 0
        samples = rec.samples[key]
        assert samples.dtype == np.uint8 and samples.shape == (16, 3, 32, 32)
        images = rec.images(run)
        assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
        assert rec.mean_final(run["fraction"], run["augment"], "fd") > 0


def structure(rec, keys=None) -> dict:
    """Everything about a recording but its numbers (its runs' figures limited to ``keys``)."""
    def kept(d):
        return {k: v for k, v in d.items() if keys is None or k in keys}

    return {
        "preset": rec.preset,
        "feature_extractor": rec.feature_extractor,
        "data_source": rec.data_source,
        "runs": sorted((r["key"], r["fraction"], r["augment"], r["seed"], r["n_train"],
                        tuple(sorted(kept(r["final"]))),
                        tuple(sorted((k, len(v)) for k, v in kept(r["history"]).items())))
                       for r in rec.runs),
        "samples": sorted((k, v.shape, str(v.dtype)) for k, v in rec.samples.items()),
    }


@pytest.mark.slow
def test_a_fresh_ci_recording_has_the_shipped_structure(tmp_path, monkeypatch):
    """``record("ci")`` from scratch (8 runs of 20 steps: ~10-20 s) matches what ships (it may
    hold more figures: runs now also log ``r_t_batch`` every step)."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster, and fair to a busy machine
    try:
        out = record("ci", out_dir=tmp_path / "ci")
    finally:
        torch.set_num_threads(threads)
    fresh, shipped = load_recording("ci", out), load_recording("ci")
    keys = set(shipped.runs[0]["history"]) | set(shipped.runs[0]["final"])
    assert structure(fresh, keys) == structure(shipped, keys)
    assert fresh.track == "cifar" and fresh.factors == ("fraction", "augment")
    assert "r_t_batch" in fresh.runs[0]["history"]


# --- the monitor recording: D's figures measured as D trains ---------------------------------

@pytest.fixture(params=MONITORED)
def monitored(request, monkeypatch):
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    name = request.param
    return name, load_monitor_recording(name)


def test_monitor_recording_is_the_plan_with_missing_runs_listed(monitored):
    name, rec = monitored
    preset = get_preset(name)
    assert rec.track == "monitor" and rec.preset == name and rec.meta["steps"] == preset.cifar.steps
    got = {(r["fraction"], r["augment"], r["seed"]) for r in rec.runs}
    missing = {(m["fraction"], m["augment"], m["seed"]) for m in rec.missing}
    assert not got & missing
    assert got | missing == set(monitor_plan(preset))
    assert rec.meta["complete_with"].startswith("python -m course_lib.experiments --monitor")
    if name == "ci":
        assert not missing, "the ci monitor recording is always complete"


def test_monitor_recording_figures_are_consistent(monitored):
    name, rec = monitored
    for run in rec.runs:
        key, h, final = run["key"], run["history"], run["final"]
        assert final["step"] == get_preset(name).cifar.steps
        for k in EVAL_KEYS + ("acc_train_snapshot", "r_v"):
            assert len(h[k]) == len(h["eval_step"]) and all(math.isfinite(v) for v in h[k]), f"{key}: {k}"
        for k in ("acc_train", "acc_heldout", "acc_fake", "acc_train_snapshot"):
            assert all(0 <= v <= 1 for v in h[k]), f"{key}: {k} outside [0, 1]"
        # r_t = 2 acc_train - 1, accumulated over the training batches since the last evaluation
        assert all(r == pytest.approx(2 * a - 1, abs=1e-6) for r, a in zip(h["r_t"], h["acc_train"]))
        assert final["gap"] == pytest.approx(final["acc_train"] - final["acc_heldout"], abs=1e-6)
        assert rec.samples[key].shape == (16, 3, 32, 32)


@pytest.mark.slow
def test_a_fresh_ci_monitor_recording_has_the_shipped_structure(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = record_monitor("ci", out_dir=tmp_path / "ci")
        # assembled again from the zoo alone, it is the same recording
        again = record_monitor("ci", out_dir=tmp_path / "again", cached_only=True)
    finally:
        torch.set_num_threads(threads)
    fresh, shipped = load_monitor_recording("ci", out), load_monitor_recording("ci")
    assert structure(fresh) == structure(shipped)
    cached = load_monitor_recording("ci", again)
    assert [r["final"] for r in cached.runs] == [r["final"] for r in fresh.runs] and not cached.missing


@pytest.mark.parametrize("part", ["abc", "3/2", "1/0", "1/2/3"])
def test_a_bad_part_is_one_line_naming_the_flag(part, capsys):
    from course_lib.experiments import main as experiments_main
    assert experiments_main(["--monitor", "--preset", "ci", "--part", part]) == 2
    err = capsys.readouterr().err.strip()
    assert "--part" in err and len(err.splitlines()) == 1, err


# --- growing the comparison, and another DiffAugment policy ----------------------------------

def test_the_comparison_has_every_seed_at_every_fraction():
    plan = recording_plan(get_preset("class"))
    for f in FRACTIONS:
        for a in ("none", "diffaugment"):
            assert {(f, a, s) for s in range(3)} <= set(plan), (f, a)


@pytest.mark.slow
def test_a_recording_grows_by_its_missing_runs_and_a_policy_is_recorded_apart(tmp_path, monkeypatch):
    from course_lib import experiments
    from course_lib.recording import load_recording as load_track

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    out = tmp_path / "ci"
    trained = []
    real_run = experiments.cifar_run

    def counting(fraction, augment, seed=0, *args, **kwargs):
        trained.append((fraction, augment, seed, kwargs.get("policy", experiments.POLICY)))
        return real_run(fraction, augment, seed, *args, **kwargs)

    monkeypatch.setattr(experiments, "cifar_run", counting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record("ci", out_dir=out, strategies_at_10pct=("none", "diffaugment"))
        first = load_recording("ci", out)
        trained.clear()
        record("ci", out_dir=out, keep_recorded=True)      # + the two failing strategies
        assert sorted(t[1] for t in trained) == ["d_step_only", "real_only"]
        grown = load_recording("ci", out)
        assert grown.meta["kept"] == [r["key"] for r in first.runs]
        assert {r["key"]: r["final"] for r in first.runs}.items() <= \
            {r["key"]: r["final"] for r in grown.runs}.items()
        trained.clear()
        experiments.record_policy("color,translation", "ci", out_dir=out)
    finally:
        torch.set_num_threads(threads)
    assert trained == [(0.1, "diffaugment", 0, "color,translation")]
    rec = load_track("policy", "ci", out)
    assert [r["key"] for r in rec.runs] == ["dcgan-cifar-10pct-diffaugment-color+translation-s0"]
    assert experiments.run_name(0.1, "diffaugment", policy="color,translation") != \
        experiments.run_name(0.1, "diffaugment")


def test_a_bad_policy_is_one_line(capsys):
    from course_lib.experiments import main as experiments_main
    assert experiments_main(["--policy", "color,zoom", "--preset", "ci"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--policy" in err and "zoom" in err and len(err.splitlines()) == 1, err
