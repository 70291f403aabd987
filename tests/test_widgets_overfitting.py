"""The overfitting widgets of notebook 02, headless: set ``.value`` on a control (or click
the button) and check ``.state`` and the images shown."""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.experiments import Recording, load_recording
from course_lib.train import TrainConfig
from course_lib.widgets.overfitting import (
    ADA_TARGET,
    LiveTraining,
    eval_index,
    fraction_label,
    plot_fd,
    plot_seeds,
    recorded_runs_explorer,
    render_live,
    runs_for,
    seed_band,
    values_at,
)


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def history(eval_steps, **series):
    return {"eval_step": list(eval_steps), **{k: list(v) for k, v in series.items()}}


def fake_run(fraction, seed, acc_train, acc_heldout, fd, augment="none", n_train=None):
    steps = [10, 20, 30]
    h = history(steps, acc_train=acc_train, acc_heldout=acc_heldout, acc_fake=[0.9] * 3,
                gap=[a - b for a, b in zip(acc_train, acc_heldout)],
                r_t=[2 * a - 1 for a in acc_train], fd=fd)
    key = f"r{round(fraction * 100)}-{augment}-s{seed}"
    return {"key": key, "fraction": fraction, "augment": augment, "seed": seed,
            "n_train": n_train or round(fraction * 1000), "history": h,
            "final": {k: v[-1] for k, v in h.items() if k != "eval_step"}}


@pytest.fixture
def recording():
    """A hand-made recording: at 10% D memorises (train accuracy up, held-out down)."""
    runs = [
        fake_run(1.0, 0, [0.5, 0.55, 0.6], [0.5, 0.55, 0.58], [9.0, 7.0, 6.0]),
        fake_run(0.2, 0, [0.5, 0.7, 0.8], [0.5, 0.5, 0.45], [9.0, 8.0, 8.5]),
        fake_run(0.1, 0, [0.6, 0.8, 0.95], [0.5, 0.4, 0.2], [9.5, 9.0, 10.0]),
        fake_run(0.1, 1, [0.6, 0.9, 1.0], [0.4, 0.3, 0.1], [9.0, 9.5, 11.0]),
        fake_run(0.1, 0, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [8.0, 7.0, 6.0], augment="diffaugment"),
    ]
    samples = {}
    for i, run in enumerate(runs):  # each run's samples a flat colour, so they can be told apart
        samples[run["key"]] = np.full((16, 3, 8, 8), 40 * i, dtype=np.uint8)
    return Recording("cifar", ("fraction", "augment"), "test", "FD, test features", "test pattern",
                     runs, samples)


# --- pure functions ---------------------------------------------------------------------

def test_fraction_label():
    assert [fraction_label(f) for f in (1.0, 0.2, 0.1)] == ["100%", "20%", "10%"]


def test_values_at_picks_the_last_evaluation_at_or_before_the_step():
    h = history([10, 20, 30], acc_train=[0.1, 0.2, 0.3], fd=[5.0, 4.0, 3.0])
    assert eval_index(h, 10) == 0 and eval_index(h, 19) == 0 and eval_index(h, 20) == 1
    assert eval_index(h, 1000) == 2
    assert eval_index(h, 3) == 0  # before the first evaluation: show the first
    v = values_at(h, 25)
    assert v["eval_step"] == 20 and v["acc_train"] == 0.2 and v["fd"] == 4.0
    assert math.isnan(v["r_t"])  # not in this history
    with pytest.raises(ValueError, match="no evaluations"):
        values_at({"eval_step": []}, 10)


def test_runs_for_groups_by_fraction_largest_first(recording):
    runs = runs_for(recording, "none")
    assert list(runs) == [1.0, 0.2, 0.1]
    assert [r["seed"] for r in runs[0.1]] == [0, 1]
    assert list(runs_for(recording, "diffaugment")) == [0.1]
    with pytest.raises(ValueError, match="no runs"):
        runs_for(recording, "real_only")


def test_seed_band_is_mean_min_max_over_seeds(recording):
    steps, mean, lo, hi = seed_band(runs_for(recording)[0.1], "acc_heldout")
    assert steps.tolist() == [10, 20, 30]
    np.testing.assert_allclose(mean, [0.45, 0.35, 0.15])
    np.testing.assert_allclose(lo, [0.4, 0.3, 0.1])
    np.testing.assert_allclose(hi, [0.5, 0.4, 0.2])


def test_static_plots_draw(recording):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_seeds(runs_for(recording))
    assert len(fig.axes) == 6
    # the r_t panels carry ADA's target as a horizontal line
    assert any(list(line.get_ydata()) == [ADA_TARGET, ADA_TARGET] for line in fig.axes[3].lines)
    ax = plot_fd(runs_for(recording), "FD, test features")
    assert len(ax.lines) == 3 and ax.get_ylabel() == "FD, test features"
    plt.close("all")


# --- (a) the recorded-runs explorer ---------------------------------------------------------

def test_explorer_starts_at_the_smallest_fraction_and_the_last_step(recording):
    w = recorded_runs_explorer(recording)
    assert w.state.fraction == 0.1 and w.state.step == 30 and w.state.eval_step == 30
    assert w.state.seed == 0 and w.state.n_train == 100
    assert w.state.values["acc_train"] == 0.95 and w.state.values["acc_heldout"] == 0.2
    assert w.state.values["gap"] == pytest.approx(0.75)
    assert "10% of the data" in w.state.caption and "final samples" in w.state.caption
    assert w.controls["step"].min == 10 and w.controls["step"].max == 30 and w.controls["step"].step == 10
    assert decode(w.output.value).shape[2] == 3


def test_explorer_step_slider_moves_the_marker_and_the_figures(recording):
    w = recorded_runs_explorer(recording)
    before = w.output.value
    w.controls["step"].value = 20
    assert w.state.step == 20 and w.state.eval_step == 20
    assert w.state.values["acc_train"] == 0.8 and w.state.values["fd"] == 9.0
    assert w.output.value != before  # the marker moved
    assert "step 20" in w.caption.value


def test_explorer_fraction_slider_switches_run_and_samples(recording):
    w = recorded_runs_explorer(recording)
    samples_10 = decode(w.samples.value)
    w.controls["fraction"].value = 1.0
    assert w.state.fraction == 1.0 and w.state.n_train == 1000
    assert w.state.values["acc_heldout"] == 0.58 and w.state.values["fd"] == 6.0
    assert "100% of the data" in w.caption.value
    samples_100 = decode(w.samples.value)
    # the 100% run's samples (value 0) are darker than the 10% run's (value 80)
    assert samples_100.mean() < samples_10.mean()


def test_explorer_can_show_another_strategy_and_seed(recording):
    w = recorded_runs_explorer(recording, seed=1)
    assert w.state.seed == 1 and w.state.values["acc_train"] == 1.0
    w = recorded_runs_explorer(recording, augment="diffaugment")
    assert [o[1] for o in w.controls["fraction"].options] == [0.1]
    assert w.state.values["gap"] == 0.0


def test_explorer_on_the_shipped_ci_recording():
    rec = load_recording("ci")
    w = recorded_runs_explorer(rec)
    run = rec.find(0.1, "none", 0)
    assert w.state.values["gap"] == pytest.approx(run["final"]["gap"])
    w.controls["step"].value = w.controls["step"].min
    assert w.state.eval_step == run["history"]["eval_step"][0]


# --- (b) the live run ---------------------------------------------------------------------

def test_render_live_draws_a_run_in_progress():
    h = history([5], acc_train=[0.6], acc_heldout=[0.5], acc_fake=[0.9], gap=[0.1], r_t=[0.2], fd=[3.0])
    assert decode(render_live(h, total_steps=20)).ndim == 3


def test_live_button_trains_and_redraws_after_every_evaluation(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(32, 3, 32, 32, generator=gen) * 2 - 1
    heldout = torch.rand(16, 3, 32, 32, generator=gen) * 2 - 1
    config = TrainConfig(steps=4, batch_size=4, ngf=4, ndf=4, eval_every=2, ema=None)
    calls = []
    w = LiveTraining(data, heldout, config, eval_fn=lambda G: calls.append(1) or {"fd": 1.5})
    assert w.state.status == "ready" and w.output.value == b""
    w.controls["run"].click()
    assert w.state.status == "done", w.state.message
    assert w.state.step == 4 and w.state.n_updates == 2 == len(calls)
    assert w.state.history["eval_step"] == [2, 4] and w.state.history["fd"] == [1.5, 1.5]
    assert set(w.state.history) >= {"acc_train", "acc_heldout", "acc_fake", "gap", "r_t"}
    assert decode(w.output.value).ndim == 3 and decode(w.samples.value).ndim == 3
    assert "step 4/4" in w.status.value and "done" in w.status.value
    assert not w.controls["run"].disabled
    assert w.result is not None and w.result.history["step"][-1] == 4


def test_live_button_reports_a_failure_in_the_widget():
    data = torch.zeros(8, 3, 64, 64)  # 64px images for a 32px config: train_gan refuses
    w = LiveTraining(data, None, TrainConfig(steps=2, batch_size=2, ngf=4, ndf=4))
    w.controls["run"].click()
    assert w.state.status == "failed" and "32" in w.state.message
    assert "training failed" in w.status.value
    assert not w.controls["run"].disabled


def test_explorer_caption_gives_the_mean_over_seeds(recording):
    w = recorded_runs_explorer(recording)
    runs = runs_for(recording)[w.state.fraction]
    if len(runs) > 1:
        want = sum(values_at(r["history"], w.state.step)["acc_train"] for r in runs) / len(runs)
        assert w.state.means["acc_train"] == pytest.approx(want) and w.state.means["n"] == len(runs)
        assert f"mean of {len(runs)} seeds" in w.state.caption


def test_fd_goes_on_a_log_axis_when_it_spans_a_decade():
    from course_lib.widgets.overfitting import plot_fd, spans_a_decade

    assert spans_a_decade([0.2, 9.0]) and not spans_a_decade([0.2, 1.9]) and not spans_a_decade([1.0])
    wide = {0.1: [fake_run(0.1, 0, [0.5, 0.6, 0.7], [0.5, 0.4, 0.3], [9.0, 0.3, 0.5])]}
    narrow = {0.1: [fake_run(0.1, 0, [0.5, 0.6, 0.7], [0.5, 0.4, 0.3], [0.5, 0.3, 0.4])]}
    assert plot_fd(wide).get_yscale() == "log" and plot_fd(narrow).get_yscale() == "linear"
