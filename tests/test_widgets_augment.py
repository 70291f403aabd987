"""Notebook 03's widgets and pure functions, headless: set ``.value`` on a control or press
a button, check ``.state`` and the output."""
import io
import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.diffaugment import diff_augment
from course_lib.experiments import Recording, load_recording
from course_lib.plotting import image_grid
from course_lib.widgets import augment as A

ROOT = Path(__file__).resolve().parents[1]

matplotlib.use("Agg")


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture(scope="module")
def images():
    return torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def recording():
    return load_recording("ci")


def fake_recording(fds: dict, gaps: dict | None = None) -> Recording:
    """A recording with chosen final FDs {(fraction, augment): [per-seed values]}."""
    runs = []
    for (fraction, augment), values in fds.items():
        for seed, fd in enumerate(values):
            gap = (gaps or {}).get((fraction, augment), [0.0] * len(values))[seed]
            runs.append({"key": f"{fraction}-{augment}-{seed}", "fraction": fraction, "augment": augment,
                         "seed": seed, "n_train": int(2000 * fraction),
                         "history": {"eval_step": [10, 20], "acc_train": [0.5, 0.5 + gap],
                                     "acc_heldout": [0.5, 0.5], "gap": [0.0, gap], "fd": [fd + 1, fd]},
                         "final": {"fd": fd, "gap": gap}})
    return Recording(track="cifar", factors=("fraction", "augment"), preset="test",
                     feature_extractor="FD, test features",
                     data_source="test pattern; made up", runs=runs, samples={})


# --- the augmentation explorer ---------------------------------------------------------

def test_policy_string_follows_the_checkboxes():
    assert A.policy_string(True, True, True) == "color,translation,cutout"
    assert A.policy_string(False, True, False) == "translation"
    assert A.policy_string(True, False, True) == "color,cutout"
    assert A.policy_string(False, False, False) == ""


def test_augmented_grid_is_diff_augment_with_a_seeded_generator(images):
    grid = A.augmented_grid(images, "color,translation,cutout", seed=3)
    want = diff_augment(images, "color,translation,cutout", generator=torch.Generator().manual_seed(3))
    assert grid.dtype == np.uint8 and np.array_equal(grid, image_grid(want))
    assert np.array_equal(grid, A.augmented_grid(images, "color,translation,cutout", seed=3))  # pure
    assert not np.array_equal(grid, A.augmented_grid(images, "color,translation,cutout", seed=4))
    assert np.array_equal(A.augmented_grid(images, "", seed=3), image_grid(images))  # "" = identity


def test_explorer_checkboxes_and_seed_change_state_and_picture(images):
    w = A.augment_explorer(images, title="t")
    assert w.state.policy == "color,translation,cutout" and w.state.seed == 0
    assert w.state.n_images == 8 and w.state.changed > 0.5
    first = w.output.value
    assert decode(first).shape == decode(w.before.value).shape  # before and after grids match

    w.controls["seed"].value = 5
    assert w.state.seed == 5 and w.output.value != first

    for name in ("color", "translation", "cutout"):
        w.controls[name].value = False
    assert w.state.policy == "" and w.state.changed == 0
    assert w.output.value == w.before.value          # nothing ticked: after == before
    assert "(none)" in w.caption.value

    w.controls["cutout"].value = True
    assert w.state.policy == "cutout"
    hole = decode(w.output.value) != decode(w.before.value)
    assert 0 < hole.mean() < 0.5                     # one square per image changed


def test_explorer_rejects_a_non_batch():
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        A.augment_explorer(torch.zeros(3, 16, 16))


# --- summaries of a recording ----------------------------------------------------------------

def test_summarize_and_headline_figures_average_over_seeds():
    rec = fake_recording({(0.1, "none"): [10.0, 12.0, 14.0], (0.1, "diffaugment"): [6.0, 7.0, 8.0],
                          (1.0, "none"): [5.0], (1.0, "diffaugment"): [5.0]},
                         gaps={(0.1, "none"): [0.3, 0.4, 0.5], (0.1, "diffaugment"): [0.0, 0.1, 0.2],
                               (1.0, "none"): [0.0], (1.0, "diffaugment"): [0.0]})
    table = A.summarize(rec, "fd")
    s = table[(0.1, "none")]
    assert (s.mean, s.std, s.low, s.high, s.n) == (12.0, 2.0, 10.0, 14.0, 3)
    assert table[(1.0, "none")].std == 0.0          # one seed: no spread
    h = A.headline_figures(rec, 0.1)
    assert h["fd_none"] == 12.0 and h["fd_diffaugment"] == 7.0
    assert h["fd_relative_improvement"] == pytest.approx(5 / 12)
    assert h["d_gap_none"] == pytest.approx(0.4) and h["d_gap_diffaugment"] == pytest.approx(0.1)
    assert h["n_seeds"] == 3
    with pytest.raises(KeyError, match="20%"):
        A.headline_figures(rec, 0.2)
    # final and best side by side, each with the one helper's verdict
    assert h["fd_final_none"] == 12.0 and h["fd_best_diffaugment"] == 7.0
    assert h["verdict_final"] == "better" and "seeds" in h["verdict_final_reason"]


def test_headline_verdicts_on_final_and_best_can_differ():
    # No augmentation bottoms out early and climbs back; DiffAugment ends lower but its
    # best is no better: "better" on the final FD, "inconclusive" on the best.
    rec = fake_recording({(0.1, "none"): [0.50, 0.49, 0.38], (0.1, "diffaugment"): [0.34, 0.27, 0.33]})
    for run, best in zip(rec.select(0.1, "none"), [0.30, 0.23, 0.22]):
        run["history"]["fd"] = [1.0, best, run["final"]["fd"]]
        run["history"]["eval_step"] = [10, 20, 30]
    h = A.headline_figures(rec, 0.1)
    assert h["verdict_final"] == "better" and h["verdict_best"] == "inconclusive"
    assert h["fd_best_none"] == pytest.approx(0.25)
    monitor = fake_recording({(0.1, "none"): [1.0], (0.1, "diffaugment"): [1.0]},
                             gaps={(0.1, "none"): [0.9], (0.1, "diffaugment"): [0.2]})
    assert A.headline_figures(rec, 0.1, monitor=monitor)["d_gap_none"] == pytest.approx(0.9)


def test_mean_curve_averages_histories():
    rec = fake_recording({(0.1, "none"): [1.0, 2.0]}, gaps={(0.1, "none"): [0.2, 0.4]})
    steps, values = A.mean_curve(rec, 0.1, "none", "acc_train")
    assert steps == [10, 20] and values == pytest.approx([0.5, 0.8])


def test_best_and_final_finds_the_lowest_point_of_the_mean_curve():
    rec = fake_recording({(0.1, "none"): [1.0, 3.0]})   # two seeds, evaluated at steps 10 and 20
    rec.runs[0]["history"]["fd"] = [1.0, 2.0]             # with the other seed's [4, 3]: mean [2.5, 2.5]
    out = A.best_and_final(rec, 0.1, "none")
    assert out["best_step"] == 10 and out["best"] == pytest.approx(2.5)
    assert out["final"] == pytest.approx(2.5) and out["rise"] == pytest.approx(0.0)
    rec.runs[1]["history"]["fd"] = [4.0, 5.0]             # mean [2.5, 3.5]: best at 10, then up 40%
    out = A.best_and_final(rec, 0.1, "none")
    assert out["best_step"] == 10 and out["final_step"] == 20 and out["rise"] == pytest.approx(0.4)


def test_short_source_and_banner(recording):
    assert A.short_source("embedded: 500 crops (not CIFAR-10; label = photograph)") == "embedded: 500 crops"
    banner = A.recording_banner(recording)
    assert "recorded runs" in banner and recording.preset in banner


def test_figures_from_the_shipped_ci_recording(recording):
    import matplotlib.pyplot as plt

    fig = A.plot_strategies(recording, 0.1)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and all("FD" in t for t in titles)
    assert recording.feature_extractor in fig._suptitle.get_text()
    ax = A.plot_fd_vs_fraction(recording, live=[{"fraction": 0.1, "augment": "diffaugment", "fd": 1.0}])
    assert recording.feature_extractor in ax.get_title()
    assert "live run" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig2 = A.plot_gap(recording, 0.1)
    assert len(fig2.axes) == 2
    ax3 = A.plot_fd_over_training(recording, 0.1)
    assert len(ax3.get_lines()) == 2 and recording.feature_extractor in ax3.get_title()
    plt.close("all")


def test_leak_indicators_see_each_augmentation():
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    x = x.sign() * x.abs().clamp(min=0.2)                 # no grey pixels in the originals
    g = lambda: torch.Generator().manual_seed(2)          # noqa: E731
    plain = A.leak_indicators(x)
    assert plain["grey_patches"] == 0 and abs(plain["grey_border"]) < 1e-6
    assert A.leak_indicators(diff_augment(x, "cutout", generator=g()))["grey_patches"] > 0.1
    assert A.leak_indicators(diff_augment(x, "translation", generator=g()))["grey_border"] > 0.2
    centred = x - x.mean((2, 3), keepdim=True)              # every image's mean colour is 0
    assert A.leak_indicators(centred)["cast_spread"] < 1e-6
    assert A.leak_indicators(diff_augment(centred, "color", generator=g()))["cast_spread"] > 0.1


# --- DiffAugment's cost, measured by the library ------------------------------------------------

def test_measure_augment_overhead_measures_and_keeps_threads():
    threads = torch.get_num_threads()
    result = A.measure_augment_overhead(batch=4, width=4, repeats=1, warmup=0, threads=1)
    assert torch.get_num_threads() == threads
    assert result["batch"] == 4 and result["ngf"] == 4 and result["threads"] == 1
    assert 0 < result["augment_fraction"] and result["step_ms"] > 0
    with pytest.raises(ValueError, match="repeats"):
        A.measure_augment_overhead(repeats=0)


def test_the_benchmark_script_is_the_library_function(tmp_path):
    import runpy

    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_diffaugment.py"))
    result = bench["main"](["--batch", "4", "--width", "4", "--repeats", "1", "--warmup", "0",
                            "--threads", "1", "--out", str(tmp_path / "d.json")])
    assert json.loads((tmp_path / "d.json").read_text())["augment_fraction"] == result["augment_fraction"]


def test_saved_benchmark_reads_json_or_none(tmp_path):
    assert A.saved_benchmark(tmp_path / "missing.json") is None
    path = tmp_path / "diffaugment.json"
    path.write_text('{"augment_fraction": 0.05}')
    assert A.saved_benchmark(path) == {"augment_fraction": 0.05}


# --- the live re-run button --------------------------------------------------------------------

class FakeResult:
    feature_extractor = "FD, test features"

    def __init__(self, fd, gap=0.1):
        self.history = {"fd": [fd + 1, fd], "gap": [0.0, gap]}


def test_live_button_trains_the_chosen_configuration_and_adds_a_star():
    rec = fake_recording({(f, a): [10.0, 11.0] for f in (1.0, 0.2, 0.1) for a in ("none", "diffaugment")})
    calls = []

    def run_fn(fraction, augment, seed):
        calls.append((fraction, augment, seed))
        return FakeResult(fd=4.5)

    w = A.live_run(rec, SimpleNamespace(name="test"), run_fn=run_fn)
    before = w.output.value
    assert w.state.runs == [] and decode(before).size > 0
    w.controls["fraction"].value = 0.2
    w.controls["augment"].value = "none"
    w.controls["seed"].value = 1
    w.controls["run"].click()
    assert calls == [(0.2, "none", 1)]
    assert w.state.runs == [{"fraction": 0.2, "augment": "none", "seed": 1, "fd": 4.5, "gap": 0.1,
                             "feature_extractor": "FD, test features", "seconds": pytest.approx(0, abs=5)}]
    assert "FD 4.50" in w.state.status and "recording says 11.00" in w.state.status
    assert w.output.value != before and not w.controls["run"].disabled


def test_live_button_warns_on_another_extractor_or_preset_and_survives_errors():
    rec = fake_recording({(0.1, "none"): [10.0], (0.1, "diffaugment"): [9.0]})
    result = FakeResult(fd=3.0)
    result.feature_extractor = "FID (Inception, pytorch-fid)"
    w = A.live_run(rec, SimpleNamespace(name="class"), run_fn=lambda f, a, s: result)
    w.run()
    assert "not comparable" in w.state.status and "test preset" in w.state.status

    def broken(f, a, s):
        raise RuntimeError("out of memory")

    w = A.live_run(rec, SimpleNamespace(name="test"), run_fn=broken)
    assert w.run() is None
    assert "failed" in w.state.status and "out of memory" in w.state.status
    assert w.state.runs == [] and not w.state.running


@pytest.mark.slow
def test_live_button_really_trains_on_ci(tmp_path, monkeypatch, recording):
    """The default run_fn: cifar_run on the ci preset (a few seconds), cached in the zoo."""
    from course_lib.presets import get_preset

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_PRESET", "ci")
    w = A.live_run(recording, get_preset("ci"))
    point = w.run()
    assert point is not None, w.state.status
    assert point["fraction"] == 0.1 and point["augment"] == "diffaugment" and np.isfinite(point["fd"])
    assert point["feature_extractor"] == recording.feature_extractor
