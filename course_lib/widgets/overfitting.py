"""Watching the discriminator overfit: two widgets for notebook 02.

    explorer = recorded_runs_explorer(load_recording("class"))
    explorer     # sliders: data fraction, training step -> curves with a marker, samples

    live = live_training(preset, fraction=0.1)
    live         # a button: trains a short run and redraws its monitor curves as it goes

The first shows recorded runs (made by :mod:`course_lib.experiments`), so it answers at
once; the second trains for real, on this machine. Both draw the same three panels: D's
accuracy on training reals vs held-out reals (and on fakes), ADA's r_t with its target
0.6 (Karras et al., 2020), and the Fréchet distance of the samples.
"""
from __future__ import annotations

import bisect
import copy
import io
import math
from dataclasses import dataclass, field

import numpy as np

from course_lib.plotting import image_grid
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes

ADA_TARGET = 0.6  # StyleGAN2-ADA's target for r_t (Karras et al., NeurIPS 2020)
MONITOR_KEYS = ("acc_train", "acc_heldout", "acc_fake", "gap", "r_t", "fd")


# --- pure functions (the tests call these directly) -------------------------------------

def fraction_label(fraction: float) -> str:
    """0.1 -> '10%'."""
    return f"{fraction * 100:g}%"


def eval_steps(history: dict) -> list[int]:
    return [int(s) for s in history.get("eval_step", [])]


def eval_index(history: dict, step: int) -> int:
    """Index of the last evaluation at or before ``step`` (the first one if ``step`` is
    earlier than every evaluation)."""
    steps = eval_steps(history)
    if not steps:
        raise ValueError("this run has no evaluations (its history has no 'eval_step')")
    return max(0, bisect.bisect_right(steps, step) - 1)


def values_at(history: dict, step: int) -> dict:
    """The monitor's figures at the evaluation shown for ``step``: {'eval_step': s, key: v}."""
    i = eval_index(history, step)
    out = {"eval_step": eval_steps(history)[i]}
    for key in MONITOR_KEYS:
        series = history.get(key) or []
        out[key] = float(series[i]) if i < len(series) and series[i] is not None else float("nan")
    return out


def runs_for(recording, augment: str = "none") -> dict[float, list[dict]]:
    """{fraction: [runs of every seed]} for one strategy, largest fraction first."""
    found: dict[float, list[dict]] = {}
    for run in recording.runs:
        if run["augment"] == augment:
            found.setdefault(float(run["fraction"]), []).append(run)
    if not found:
        raise ValueError(f"the recording has no runs with augment={augment!r}")
    return {f: sorted(found[f], key=lambda r: r["seed"]) for f in sorted(found, reverse=True)}


def seed_band(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps and the mean, min and max over seeds of ``key`` (runs evaluated at the same steps)."""
    steps = np.array(eval_steps(runs[0]["history"]), dtype=float)
    values = np.array([[np.nan if v is None else v for v in r["history"].get(key, [])][:len(steps)]
                       for r in runs], dtype=float)
    return steps, np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def spans_a_decade(values) -> bool:
    """True when positive ``values`` range over at least a factor of 10 (plot them on a log axis)."""
    v = np.asarray([x for x in np.ravel(values) if x is not None and np.isfinite(x) and x > 0])
    return v.size > 1 and v.max() >= 10 * v.min()


def means_at(runs: list[dict], step: int) -> dict:
    """The monitor's figures at ``step``, mean over the seeds' runs, and ``n`` (seeds)."""
    per_seed = [values_at(r["history"], step) for r in runs]
    out = {"eval_step": per_seed[0]["eval_step"], "n": len(runs)}
    for key in MONITOR_KEYS:
        vals = [v[key] for v in per_seed if not math.isnan(v[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def draw_band(axes, runs: list[dict], label: str = "", color: str = "tab:blue",
              alpha: float = 1.0) -> None:
    """Draw the seeds' mean (line) and min-max band of the monitor curves on three axes:
    accuracies (train solid, held-out dashed), r_t, FD."""
    ax_acc, ax_rt, ax_fd = axes
    for ax, key, style in ((ax_acc, "acc_train", "-"), (ax_acc, "acc_heldout", "--"),
                           (ax_rt, "r_t", "-"), (ax_fd, "fd", "-")):
        if not all(r["history"].get(key) for r in runs):
            continue
        steps, mean, lo, hi = seed_band(runs, key)
        if np.all(np.isnan(mean)):
            continue
        ax.plot(steps, mean, style, color=color, alpha=alpha, lw=2 if alpha == 1.0 else 1,
                label=label if key in ("acc_train", "r_t", "fd") and label else None)
        if len(runs) > 1:
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15 * alpha)


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def draw_monitor(axes, history: dict, label: str = "", color: str = "tab:blue", alpha: float = 1.0,
                 marker_step: int | None = None, fd_label: str = "FD",
                 total_steps: int | None = None) -> None:
    """Draw one run's monitor curves on three axes: accuracies, r_t, FD."""
    steps = eval_steps(history)
    ax_acc, ax_rt, ax_fd = axes
    prefix = f"{label}: " if label else ""
    if history.get("acc_train"):
        ax_acc.plot(steps, history["acc_train"], "-", color=color, alpha=alpha, label=f"{prefix}train reals")
    if history.get("acc_heldout") and any(v is not None and not math.isnan(v) for v in history["acc_heldout"]):
        ax_acc.plot(steps, history["acc_heldout"], "--", color=color, alpha=alpha,
                    label=f"{prefix}held-out reals")
    if history.get("acc_fake") and not label:
        ax_acc.plot(steps, history["acc_fake"], ":", color="grey", alpha=alpha, label="fakes")
    if history.get("r_t"):
        ax_rt.plot(steps, history["r_t"], "-", color=color, alpha=alpha, label=label or None)
    if history.get("fd"):
        ax_fd.plot(steps, history["fd"], "-", color=color, alpha=alpha, label=label or None)
    style_monitor_axes(axes, fd_label, total_steps)
    if marker_step is not None:
        for ax in axes:
            ax.axvline(marker_step, color="black", lw=1, alpha=0.6)


def style_monitor_axes(axes, fd_label: str = "FD", total_steps: int | None = None) -> None:
    ax_acc, ax_rt, ax_fd = axes
    ax_acc.set_ylim(-0.03, 1.03)
    ax_acc.set_title("D's accuracy", fontsize=9)
    ax_rt.set_ylim(-1.05, 1.05)
    ax_rt.axhline(ADA_TARGET, color="tab:red", ls="--", lw=1)
    ax_rt.set_title("r_t = 2·acc_train − 1 (D's training batches); ADA's target 0.6", fontsize=9)
    ax_fd.set_title("FD of the samples (lower is better)", fontsize=9)
    ax_fd.set_ylabel(fd_label, fontsize=7)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if total_steps:
            ax.set_xlim(0, total_steps)


def render_recorded(runs_by_fraction: dict[float, list[dict]], fraction: float, step: int,
                    fd_label: str = "FD") -> bytes:
    """PNG of the three monitor panels: the chosen fraction's seeds as their mean and
    min-max band in colour, the other fractions faint, and a vertical marker at ``step``
    (FD on a log axis when it spans a decade)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.1))
    colors = {f: c for f, c in zip(runs_by_fraction, ("tab:green", "tab:orange", "tab:red", "tab:purple"))}
    for f, runs in runs_by_fraction.items():
        chosen = abs(f - fraction) < 1e-9
        draw_band(axes, runs, label=fraction_label(f), color=colors[f], alpha=1.0 if chosen else 0.25)
    style_monitor_axes(axes, fd_label)
    fds = [v for runs in runs_by_fraction.values() for r in runs for v in r["history"].get("fd", [])]
    if spans_a_decade(fds):
        axes[2].set_yscale("log")
        axes[2].set_ylabel(f"{fd_label} (log scale)", fontsize=7)
    # one legend entry per fraction, plus the line styles
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colors[f], lw=2, alpha=1.0 if abs(f - fraction) < 1e-9 else 0.3,
                      label=f"{fraction_label(f)} data") for f in runs_by_fraction]
    handles += [Line2D([], [], color="black", ls="-", label="train reals (mean; band: seeds)"),
                Line2D([], [], color="black", ls="--", label="held-out reals")]
    axes[0].legend(handles=handles, fontsize=7, loc="lower left")
    for ax in axes:
        ax.axvline(step, color="black", lw=1, alpha=0.6)
    return _figure_png(fig)


def plot_seeds(runs_by_fraction: dict[float, list[dict]]):
    """The seeds' plot: for each data fraction (a column), D's accuracy on training vs
    held-out reals (top) and r_t with ADA's target 0.6 (bottom); the seeds' mean as a line,
    their min-max range as a band. Returns the figure."""
    import matplotlib.pyplot as plt

    n = len(runs_by_fraction)
    fig, axes = plt.subplots(2, n, figsize=(4 * n, 5.6), sharex=True, sharey="row", squeeze=False)
    for col, (fraction, runs) in enumerate(runs_by_fraction.items()):
        ax_acc, ax_rt = axes[0, col], axes[1, col]
        for key, color, style, label in (("acc_train", "tab:blue", "-", "training reals"),
                                         ("acc_heldout", "tab:orange", "--", "held-out reals"),
                                         ("acc_fake", "grey", ":", "fakes")):
            steps, mean, lo, hi = seed_band(runs, key)
            ax_acc.plot(steps, mean, style, color=color, lw=2, label=label)
            if len(runs) > 1:
                ax_acc.fill_between(steps, lo, hi, color=color, alpha=0.15)
        steps, mean, lo, hi = seed_band(runs, "r_t")
        ax_rt.plot(steps, mean, color="tab:purple", lw=2, label="r_t")
        if len(runs) > 1:
            ax_rt.fill_between(steps, lo, hi, color="tab:purple", alpha=0.15)
        ax_rt.axhline(ADA_TARGET, color="tab:red", ls="--", lw=1, label="ADA's target 0.6")
        n_train = runs[0].get("n_train")
        ax_acc.set_title(f"{fraction_label(fraction)} of the data ({n_train} images), "
                         f"{len(runs)} seed{'s' if len(runs) > 1 else ''}", fontsize=9)
        ax_acc.set_ylim(-0.03, 1.03)
        ax_rt.set_ylim(-1.05, 1.05)
        ax_rt.set_xlabel("step")
        for ax in (ax_acc, ax_rt):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("D's accuracy")
    axes[1, 0].set_ylabel("r_t = 2·acc_train − 1")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[1, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_fd(runs_by_fraction: dict[float, list[dict]], fd_label: str = "FD", ax=None):
    """FD over training for each fraction: mean over seeds, min-max band, ▼ at the mean
    curve's lowest point; a log axis when the values span a decade. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    everything = []
    for fraction, runs in runs_by_fraction.items():
        steps, mean, lo, hi = seed_band(runs, "fd")
        n = len(runs)
        line, = ax.plot(steps, mean, lw=2, label=f"{fraction_label(fraction)} of the data (n={n})")
        if n > 1:
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        i = int(np.nanargmin(mean))
        ax.scatter([steps[i]], [mean[i]], marker="v", s=45, color=line.get_color(), zorder=3)
        everything += list(lo) + list(hi)
    log = spans_a_decade(everything)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(fd_label + (" (log scale)" if log else ""), fontsize=8)
    ax.set_title(f"{fd_label}: lower is better", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def render_live(history: dict, total_steps: int, fd_label: str = "FD", title: str = "") -> bytes:
    """PNG of the three monitor panels of a run in progress (x axis fixed to the whole run)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.1))
    draw_monitor(axes, history, fd_label=fd_label, total_steps=total_steps)
    axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    return _figure_png(fig)


def samples_png(images) -> tuple[bytes, int, int]:
    """PNG of a 4-wide grid of ``images`` [N, 3, H, W] in [-1, 1], and its shown size."""
    grid = image_grid(images, nrow=4)
    scale = display_scale(grid.shape[1], target=200)
    return png_bytes(grid, scale=scale), grid.shape[1] * scale, grid.shape[0] * scale


def explorer_caption(fraction: float, n_train, values: dict, step: int, final_step: int,
                     means: dict | None = None, seed: int = 0) -> str:
    def fmt(v):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"

    def figures(v):
        return (f"D right on train reals {fmt(v['acc_train'])}, on held-out reals "
                f"{fmt(v['acc_heldout'])} → gap {fmt(v['gap'])}; r_t {fmt(v['r_t'])}; FD {fmt(v['fd'])}")
    head = (f"<b>{fraction_label(fraction)} of the data</b> ({n_train} training images) · "
            f"step {step} (evaluation at step {values['eval_step']}): ")
    if means is not None and means.get("n", 1) > 1:
        head += f"mean of {means['n']} seeds: {figures(means)}; seed {seed}: "
    return (head + figures(values) + f". Samples: seed {seed} at the end of the run (step "
            f"{final_step}); the recording keeps only the final samples.")


# --- (a) the recorded runs -------------------------------------------------------------------

@dataclass
class ExplorerState:
    fraction: float
    step: int            # the slider's step
    eval_step: int       # the evaluation shown (the last one at or before ``step``)
    seed: int
    n_train: int | None
    values: dict         # acc_train, acc_heldout, acc_fake, gap, r_t, fd at eval_step (this seed)
    caption: str
    means: dict = field(default_factory=dict)   # the same, mean over the seeds, and n


class RecordedRunsExplorer(CourseWidget):
    """Sliders over data fraction and training step; see :func:`recorded_runs_explorer`."""

    def __init__(self, recording, augment: str = "none", seed: int = 0):
        import ipywidgets as W

        self.recording, self.augment, self.seed = recording, augment, seed
        self.runs = runs_for(recording, augment)
        fractions = list(self.runs)
        steps = eval_steps(self.runs[fractions[0]][0]["history"])
        stride = steps[1] - steps[0] if len(steps) > 1 else 1
        self.controls = {
            "fraction": W.SelectionSlider(options=[(fraction_label(f), f) for f in fractions],
                                          value=fractions[-1], description="data",
                                          continuous_update=False, layout=W.Layout(width="320px")),
            "step": W.IntSlider(value=steps[-1], min=steps[0], max=steps[-1], step=stride,
                                description="step", continuous_update=False,
                                layout=W.Layout(width="420px")),
        }
        self.caption = W.HTML()
        self.output = W.Image(format="png")          # the curves
        self.samples = W.Image(format="png")         # the run's final samples
        banner = W.HTML(f"<small>recorded runs ({recording.preset} preset, strategy "
                        f"'{augment}', seed {seed}) · data: {recording.data_source} · "
                        f"{recording.feature_extractor}</small>")
        self.widget = W.VBox([W.HBox([self.controls["fraction"], self.controls["step"]]),
                              self.caption, W.HBox([self.output, self.samples]), banner])
        self.state = None
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def run(self, fraction: float) -> dict:
        runs = self.runs[fraction]
        return next((r for r in runs if r["seed"] == self.seed), runs[0])

    def update(self, *_):
        fraction, step = float(self.controls["fraction"].value), int(self.controls["step"].value)
        run = self.run(fraction)
        values = values_at(run["history"], step)
        final_step = eval_steps(run["history"])[-1]
        means = means_at(self.runs[fraction], step)
        caption = explorer_caption(fraction, run.get("n_train"), values, step, final_step,
                                   means, run["seed"])
        self.output.value = render_recorded(self.runs, fraction, step, self.recording.feature_extractor)
        png, width, height = samples_png(self.recording.images(run))
        self.samples.value = png
        self.samples.width, self.samples.height = str(width), str(height)
        self.caption.value = caption
        self.state = ExplorerState(fraction, step, values["eval_step"], run["seed"], run.get("n_train"),
                                   {k: v for k, v in values.items() if k != "eval_step"}, caption,
                                   {k: v for k, v in means.items() if k != "eval_step"})


def recorded_runs_explorer(recording, augment: str = "none", seed: int = 0) -> RecordedRunsExplorer:
    """Two sliders (data fraction; training step) over ``recording``'s runs of ``augment``.

    The curves of every fraction are drawn as the seeds' mean and min-max band (the chosen
    one in colour), with a vertical marker at the step; the caption gives the figures at
    that step (mean over seeds, and ``seed``'s) and the images are that seed's final
    samples (the recording keeps only those).
    """
    return RecordedRunsExplorer(recording, augment=augment, seed=seed)


# --- (b) a live run ---------------------------------------------------------------------

@dataclass
class LiveState:
    status: str = "ready"          # ready | running | done | failed
    step: int = 0
    steps: int = 0
    n_updates: int = 0             # how many times the curves were redrawn
    history: dict = field(default_factory=dict)
    message: str = ""


class LiveTraining(CourseWidget):
    """A button that trains a short run and redraws its monitor after every evaluation.

    ``data``/``heldout``: datasets or tensors [N, 3, H, W] in [-1, 1]; ``config``: a
    :class:`course_lib.train.TrainConfig` (its ``eval_every`` sets how often the curves
    are redrawn); ``eval_fn``: optional ``G -> {"fd": ...}``, as for ``train_gan``.
    """

    def __init__(self, data, heldout, config, eval_fn=None, fd_label: str = "FD", title: str = ""):
        import ipywidgets as W

        self.data, self.heldout, self.config, self.eval_fn = data, heldout, config, eval_fn
        self.fd_label, self.title = fd_label, title
        self.result = None
        self.controls = {"run": W.Button(description=f"train {config.steps} steps live",
                                         button_style="primary", icon="play",
                                         layout=W.Layout(width="240px"))}
        self.status = W.HTML("press the button: the curves are redrawn after every evaluation "
                             f"(every {config.eval_every} steps)")
        self.output = W.Image(format="png")
        self.samples = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.controls["run"], self.status]),
                              W.HBox([self.output, self.samples])])
        self.state = LiveState(steps=config.steps)
        self.controls["run"].on_click(self.run)

    def _on_eval(self, step, history, result):
        self.state.step, self.state.n_updates = step, self.state.n_updates + 1
        self.state.history = copy.deepcopy(history)
        self.output.value = render_live(history, self.config.steps, self.fd_label, self.title)
        last = values_at(history, step)
        fd = f", {self.fd_label.split(',')[0]} {last['fd']:.2f}" if not math.isnan(last["fd"]) else ""
        self.status.value = (f"step {step}/{self.config.steps}: D right on train reals "
                             f"{last['acc_train']:.2f}, held-out {last['acc_heldout']:.2f} (gap "
                             f"{last['gap']:+.2f}), r_t {last['r_t']:+.2f}{fd}")
        png, width, height = samples_png(result.sample(16))
        self.samples.value = png
        self.samples.width, self.samples.height = str(width), str(height)

    def run(self, *_):
        """Train now (the button calls this); returns the :class:`TrainResult`."""
        from course_lib.train import train_gan

        button = self.controls["run"]
        button.disabled = True
        self.state = LiveState(status="running", steps=self.config.steps)
        self.status.value = "training…"
        try:
            self.result = train_gan(self.data, self.config, heldout=self.heldout, eval_fn=self.eval_fn,
                                    callback=self._on_eval, progress=False)
            self.state.status = "done"
            self.status.value += " · done"
        except Exception as exc:  # shown in the widget: a button callback has nowhere else to say it
            self.state.status, self.state.message = "failed", f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>training failed: {self.state.message}</span>"
        finally:
            button.disabled = False
        return self.result


def lazy_fd_eval_fn(preset, extractor):
    """An ``eval_fn`` adding ``fd`` against the CIFAR track's test images; the reference
    statistics are computed on its first call (so building the widget stays instant)."""
    from course_lib.experiments import cifar_reference, fd_eval_fn

    made = {}

    def evaluate(G) -> dict:
        if "fn" not in made:
            made["fn"] = fd_eval_fn(cifar_reference(preset, extractor), preset.cifar.n_eval)
        return made["fn"](G)

    return evaluate


def live_training(preset, fraction: float = 0.1, steps: int | None = None, eval_every: int | None = None,
                  seed: int = 0, with_fd: bool = True) -> LiveTraining:
    """A button that trains on ``fraction`` of the CIFAR track for ``steps`` steps (default:
    300 on ``class``, the preset's steps on ``ci``) and plots the monitor as it goes."""
    from course_lib.data import cifar10
    from course_lib.presets import get_preset
    from course_lib.train import TrainConfig

    preset = get_preset(preset)
    steps = steps or (preset.cifar.steps if preset.name == "ci" else min(300, preset.cifar.steps))
    eval_every = eval_every or max(1, steps // 10)
    config = TrainConfig.from_preset(preset, steps=steps, eval_every=eval_every, seed=seed)
    data = cifar10(fraction=fraction, split="train", seed=seed)
    heldout = cifar10(split="heldout")
    eval_fn, fd_label = None, "FD"
    if with_fd:
        from course_lib.metrics import default_extractor

        extractor = default_extractor()
        eval_fn, fd_label = lazy_fd_eval_fn(preset, extractor), extractor.name
    title = f"live: {fraction_label(fraction)} of the data ({len(data)} images), no augmentation"
    return LiveTraining(data, heldout, config, eval_fn=eval_fn, fd_label=fd_label, title=title)
