"""Notebook 03 (DiffAugment): what T does to images, the recorded comparison, a live run.

    explorer = augment_explorer(images)        # policy checkboxes + seed slider, before/after
    fig = plot_fd_vs_fraction(recording)       # FD vs data fraction, with and without DiffAugment
    live = live_run(recording, preset)         # a button that trains one configuration live

The widgets are thin (see :mod:`course_lib.widgets.core`); the pictures and numbers come
from the pure functions below, which the tests call directly:

- :func:`policy_string`, :func:`augmented_grid`: the augmentation explorer;
- :func:`summarize`, :func:`headline_figures`: means and spreads over seeds of a recording;
- :func:`plot_strategies`, :func:`plot_fd_vs_fraction`, :func:`plot_gap`: its figures;
- :func:`leak_indicators` (from :mod:`course_lib.diffaugment`): how much of T's look (grey
  squares, grey borders, colour casts) a set of images carries;
- :func:`measure_augment_overhead` (from :mod:`course_lib.augment_cost`): DiffAugment's
  share of a training step, measured on this machine; :func:`saved_benchmark`: the last
  full run of ``benchmarks/bench_diffaugment.py``.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from course_lib.augment_cost import measure_augment_overhead
from course_lib.diffaugment import POLICIES, diff_augment, leak_indicators
from course_lib.plotting import image_grid
from course_lib.recording import Summary
from course_lib.report import build_dir
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes

STRATEGY_ORDER = ("none", "real_only", "d_step_only", "diffaugment")


# --- the augmentation explorer: pure functions ---------------------------------------------

def policy_string(color: bool = True, translation: bool = True, cutout: bool = True) -> str:
    """The checkboxes as a DiffAugment policy, e.g. ``"color,cutout"`` ("" = no augmentation)."""
    chosen = {"color": color, "translation": translation, "cutout": cutout}
    return ",".join(name for name in POLICIES if chosen.get(name))


def augment(images: torch.Tensor, policy: str, seed: int) -> torch.Tensor:
    """``diff_augment(images, policy)`` with draws from ``torch.Generator().manual_seed(seed)``:
    the same (policy, seed) always gives the same picture."""
    with torch.no_grad():
        return diff_augment(images, policy, generator=torch.Generator().manual_seed(int(seed)))


def augmented_grid(images: torch.Tensor, policy: str, seed: int, nrow: int | None = None) -> np.ndarray:
    """The augmented batch as one uint8 grid [rows*H, cols*W, 3].

    images: [N, 3, H, W] in [-1, 1]; policy: e.g. ``"color,translation,cutout"`` or "";
    seed: which random draws. Augmented values outside [-1, 1] are clipped for display.
    """
    return image_grid(augment(images, policy, seed), nrow=nrow)


@dataclass
class AugmentState:
    """What the explorer shows: ``policy`` with draws from ``seed``, and the share of
    pixel values that T changed (0 for the empty policy)."""
    policy: str
    seed: int
    n_images: int
    changed: float
    caption: str


class AugmentExplorer(CourseWidget):
    """Checkboxes for the three policies, a seed slider, before/after grids; see
    :func:`augment_explorer`."""

    def __init__(self, images: torch.Tensor, seed: int = 0, max_seed: int = 99, nrow: int | None = None,
                 title: str | None = None):
        import ipywidgets as W

        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"augment_explorer needs a batch of images [N, 3, H, W], got shape "
                             f"{tuple(images.shape)}")
        self.images, self.nrow = images.detach().float().cpu(), nrow
        self.controls = {
            name: W.Checkbox(value=True, description=name, indent=False, layout=W.Layout(width="110px"))
            for name in POLICIES
        }
        self.controls["seed"] = W.IntSlider(value=seed, min=0, max=max_seed, description="seed",
                                            continuous_update=True, layout=W.Layout(width="360px"))
        before = image_grid(self.images, nrow=nrow)
        self.scale = display_scale(before.shape[1], target=320)
        self.before = W.Image(value=png_bytes(before, self.scale), format="png")
        self.output = W.Image(format="png")
        self.caption = W.HTML()
        self.state = None
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        grids = W.HBox([W.VBox([W.HTML("real images"), self.before]),
                        W.VBox([W.HTML("T(real images)"), self.output])])
        boxes = W.HBox([self.controls[name] for name in POLICIES] + [self.controls["seed"]])
        self.widget = W.VBox(header + [boxes, self.caption, grids])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def update(self, *_):
        policy = policy_string(*(self.controls[name].value for name in POLICIES))
        seed = int(self.controls["seed"].value)
        after = augment(self.images, policy, seed)
        changed = float((after != self.images).float().mean())
        caption = (f"policy: <code>{policy or '(none)'}</code> · seed {seed} · "
                   f"{changed:.0%} of pixel values changed")
        self.state = AugmentState(policy, seed, len(self.images), changed, caption)
        self.caption.value = caption
        self.output.value = png_bytes(image_grid(after, nrow=self.nrow), self.scale)


def augment_explorer(images: torch.Tensor, seed: int = 0, nrow: int | None = None,
                     title: str | None = None) -> AugmentExplorer:
    """Tick policies and move the seed: ``diff_augment`` on a fixed batch of real images.

    images: [N, 3, H, W] in [-1, 1] (e.g. 16 training images). Returns an
    :class:`AugmentExplorer`; display it in a cell.
    """
    return AugmentExplorer(images, seed=seed, nrow=nrow, title=title)


# --- the recorded comparison ------------------------------------------------------------------

def summarize(recording, key: str = "fd") -> dict[tuple[float, str], Summary]:
    """``{(fraction, augment): Summary}`` of the final ``key`` of every recorded configuration
    (mean ± sd over seeds: :meth:`course_lib.recording.Recording.summaries`)."""
    return recording.summaries(key)


def _same(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


def _lookup(table: dict, fraction: float, augment: str) -> Summary:
    for (f, a), summary in table.items():
        if _same(f, fraction) and a == augment:
            return summary
    raise KeyError(f"the recording has no {augment!r} run at {fraction:.0%} of the data")


def headline_figures(recording, fraction: float = 0.1, monitor=None) -> dict:
    """The notebook's recorded figures at ``fraction`` of the data (means over seeds).

    ``fd_*`` are Fréchet distances in the recording's features (``feature_extractor``:
    FID only when those are Inception's): the final one (``fd_none``, also
    ``fd_final_none``) and each seed's best over training (``fd_best_*``), with the
    verdict of DiffAugment against none on each (``verdict_final``, ``verdict_best``:
    :func:`course_lib.recording.verdict`). D's gap comes from ``monitor`` (the monitor
    recording) when given, else from ``recording``; None where neither has it."""
    fds = summarize(recording, "fd")
    _lookup(fds, fraction, "none"), _lookup(fds, fraction, "diffaugment")   # say which is missing
    out = {"fraction": fraction}
    for which in ("final", "best"):
        none = recording.summary(fraction, "none", key="fd", which=which)
        da = recording.summary(fraction, "diffaugment", key="fd", which=which)
        v = recording.compare((fraction, "none"), (fraction, "diffaugment"), which=which)
        out.update({f"fd_{which}_none": none.mean, f"fd_{which}_diffaugment": da.mean,
                    f"fd_{which}_none_std": none.std, f"fd_{which}_diffaugment_std": da.std,
                    f"verdict_{which}": v.word, f"verdict_{which}_reason": v.reason})
    out.update(fd_none=out["fd_final_none"], fd_diffaugment=out["fd_final_diffaugment"],
               fd_none_std=out["fd_final_none_std"], fd_diffaugment_std=out["fd_final_diffaugment_std"],
               fd_relative_improvement=1 - out["fd_final_diffaugment"] / out["fd_final_none"],
               n_seeds=min(len(recording.select(fraction, a)) for a in ("none", "diffaugment")))
    gaps = summarize(monitor or recording, "gap")
    for name in ("none", "diffaugment"):
        try:
            out[f"d_gap_{name}"] = _lookup(gaps, fraction, name).mean
        except KeyError:
            out[f"d_gap_{name}"] = None
    return out


def recording_banner(recording) -> str:
    """The data-source banner (HTML) for a recording's results, like ``source_banner``."""
    from types import SimpleNamespace

    from course_lib.data import source_banner

    embedded = recording.data_source.lower().startswith("embedded")
    return source_banner(SimpleNamespace(source=recording_source(recording),
                                         is_embedded=embedded, registry_name="cifar10"))


def recording_source(recording) -> str:
    """What a recording's runs were trained on: each fraction's training-set size, from the
    runs themselves. (``recording.data_source`` describes the test split the distances are
    measured on, so its image count is not the training set's.)"""
    import re

    sizes = sorted({(r["fraction"], r["n_train"]) for r in recording.runs if r.get("n_train")}, reverse=True)
    trained = ", ".join(f"{n:,} ({f:.0%})" for f, n in sizes) or "unknown numbers of"
    track = re.sub(r"^embedded: [\d,]+ ", "embedded ", recording.data_source)
    track = re.sub(r", test split, [\d,]+ images\)", ")", track)
    return f"recorded runs ({recording.preset} preset) trained on {trained} images of the {track}"


def short_source(data_source: str, limit: int = 90) -> str:
    """The first clause of a data-source description, for a plot title."""
    head = data_source.split(";")[0].split(" (")[0].strip()
    return head if len(head) <= limit else head[: limit - 1] + "…"


def plot_strategies(recording, fraction: float = 0.1, seed: int = 0, labels: dict | None = None,
                    nrow: int = 4):
    """The four strategies' final samples side by side, each titled with its FD."""
    import matplotlib.pyplot as plt

    from course_lib.experiments import STRATEGY_LABELS

    labels = labels or STRATEGY_LABELS
    runs = []
    for augment_name in STRATEGY_ORDER:
        try:
            runs.append(recording.find(fraction, augment_name, seed))
        except KeyError:
            continue
    fig, axes = plt.subplots(1, len(runs), figsize=(3.1 * len(runs), 3.6), squeeze=False)
    for ax, run in zip(axes[0], runs):
        ax.imshow(image_grid(recording.images(run), nrow=nrow), interpolation="nearest")
        ax.set_axis_off()
        fd = run["final"].get("fd")
        ax.set_title(f"{labels.get(run['augment'], run['augment'])}\nFD {fd:.2f}" if fd is not None
                     else labels.get(run["augment"], run["augment"]), fontsize=10)
    fig.suptitle(f"{fraction:.0%} of the data, seed {seed}, {recording.preset} preset · "
                 f"{recording.feature_extractor}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


STRATEGY_COLORS = {"none": "#d95f02", "diffaugment": "#1b9e77"}   # the same in every plot


def plot_fd_vs_fraction(recording, live: list | None = None, ax=None, labels: dict | None = None):
    """Bars of the final FD (mean over seeds, error bar = standard deviation, dots = seeds,
    n = how many)
    per data fraction, with and without DiffAugment; ``live`` runs (dicts with fraction,
    augment, fd) are drawn as stars. Labelled with the extractor and the data source."""
    import matplotlib.pyplot as plt

    from course_lib.experiments import FRACTIONS, STRATEGY_LABELS

    labels = labels or STRATEGY_LABELS
    table = summarize(recording, "fd")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    colors = STRATEGY_COLORS
    width = 0.36
    for k, augment_name in enumerate(("none", "diffaugment")):
        xs, means, stds = [], [], []
        for i, fraction in enumerate(FRACTIONS):
            try:
                s = _lookup(table, fraction, augment_name)
            except KeyError:
                continue
            x = i + (k - 0.5) * width
            xs.append(x); means.append(s.mean); stds.append(s.std)
            ax.scatter([x] * s.n, s.values, color="black", s=10, zorder=3)
            ax.annotate(f"n={s.n}", (x, s.high), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
        ax.bar(xs, means, width, yerr=stds, capsize=3, color=colors[augment_name], alpha=0.85,
               label=labels[augment_name])
    for k, run in enumerate(live or []):
        i = next(j for j, f in enumerate(FRACTIONS) if _same(f, run["fraction"]))
        offset = -0.5 if run["augment"] == "none" else 0.5
        ax.scatter([i + offset * width], [run["fd"]], marker="*", s=180, color="gold",
                   edgecolor="black", zorder=4, label="live run" if k == 0 else None)
    ax.set_xticks(range(len(FRACTIONS)), [f"{f:.0%} ({_n_train(recording, f)} images)" for f in FRACTIONS])
    ax.set_xlabel("training data  (bars: mean ± sd over n seeds; dots: the seeds)")
    ax.set_ylabel(f"{metric_name(recording.feature_extractor)} (lower is better)")
    ax.set_title(f"{recording.feature_extractor}\ndata: {short_source(recording.data_source)} · "
                 f"{recording.preset} preset", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    return ax


def metric_name(extractor_name: str) -> str:
    """``"FID"`` or ``"FD"``: the short name of the distance an extractor gives."""
    return extractor_name.split(" ")[0].rstrip(",") or "FD"


def _n_train(recording, fraction: float) -> str:
    for run in recording.runs:
        if _same(run["fraction"], fraction) and run.get("n_train"):
            return f"{run['n_train']:,}"
    return "?"


def mean_curve(recording, fraction: float, augment_name: str, key: str) -> tuple[list, list]:
    """(eval steps, mean over seeds of ``key``) of a recorded configuration."""
    steps, mean, _, _ = recording.curve(fraction, augment_name, key=key)
    return steps, mean


def plot_gap(recording, fraction: float = 0.1, labels: dict | None = None):
    """D's accuracy on training reals vs held-out reals over training (mean over seeds), with
    and without DiffAugment, and the final gap (train - held-out) as bars."""
    import matplotlib.pyplot as plt

    from course_lib.experiments import STRATEGY_LABELS

    labels = labels or STRATEGY_LABELS
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    colors = STRATEGY_COLORS
    gaps = summarize(recording, "gap")
    for augment_name in ("none", "diffaugment"):
        steps, train = mean_curve(recording, fraction, augment_name, "acc_train")
        _, held = mean_curve(recording, fraction, augment_name, "acc_heldout")
        ax.plot(steps, train, color=colors[augment_name], label=f"{labels[augment_name]}: training reals")
        ax.plot(steps, held, color=colors[augment_name], linestyle="--",
                label=f"{labels[augment_name]}: held-out reals")
    ax.set_xlabel("step")
    ax.set_ylabel("D's accuracy on reals")
    ax.set_title(f"{fraction:.0%} of the data, mean over seeds", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    names = ("none", "diffaugment")
    summaries = [_lookup(gaps, fraction, a) for a in names]
    bars.bar([labels[a] for a in names], [s.mean for s in summaries], yerr=[s.std for s in summaries],
             capsize=3, color=[colors[a] for a in names])
    for i, s in enumerate(summaries):
        bars.scatter([i] * s.n, s.values, color="black", s=10, zorder=3)
    bars.axhline(0, color="black", linewidth=0.8)
    bars.set_ylabel("final gap: train - held-out accuracy")
    bars.grid(axis="y", alpha=0.3)
    fig.suptitle(f"D's accuracy on training vs held-out reals · data: "
                 f"{short_source(recording.data_source)} · {recording.preset} preset", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def best_and_final(recording, fraction: float, augment_name: str, key: str = "fd") -> dict:
    """Where the seeds' mean ``key`` curve was lowest, and where it ended:
    ``{"best_step", "best", "final_step", "final", "rise"}`` (rise = final / best - 1)."""
    return recording.best_and_final(fraction, augment_name, key=key)


def plot_fd_over_training(recording, fraction: float = 0.1, labels: dict | None = None, ax=None):
    """FD over training with and without DiffAugment (mean over seeds, band: min to max),
    each curve's lowest point marked."""
    import matplotlib.pyplot as plt

    from course_lib.experiments import STRATEGY_LABELS

    labels = labels or STRATEGY_LABELS
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    colors = STRATEGY_COLORS
    for augment_name in ("none", "diffaugment"):
        n = len(recording.select(fraction, augment_name))
        steps, mean, low, high = recording.curve(fraction, augment_name, key="fd")
        ax.plot(steps, mean, color=colors[augment_name], lw=2,
                label=f"{labels[augment_name]} (n={n})")
        ax.fill_between(steps, low, high, color=colors[augment_name], alpha=0.15)
        best = best_and_final(recording, fraction, augment_name)
        ax.scatter([best["best_step"]], [best["best"]], color=colors[augment_name], marker="v", s=50, zorder=3)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(metric_name(recording.feature_extractor) + " (log scale)")
    ax.set_title(f"{fraction:.0%} of the data: the distance over training, mean over seeds (band: min-max; "
                 f"▼ lowest)\n{recording.feature_extractor} · {recording.preset} preset", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax


# --- DiffAugment's cost ---------------------------------------------------------------

def saved_benchmark(path: Path | None = None) -> dict | None:
    """The last full run of ``benchmarks/bench_diffaugment.py``
    (``build/benchmarks/diffaugment.json``), if any."""
    path = path or build_dir() / "benchmarks" / "diffaugment.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --- the live re-run ----------------------------------------------------------------------

@dataclass
class LiveState:
    """The live runs so far (dicts: fraction, augment, seed, fd, gap, seconds) and a status line."""
    runs: list = field(default_factory=list)
    status: str = ""
    running: bool = False


def _render(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def fd_plot_png(recording, live: list | None = None) -> bytes:
    """:func:`plot_fd_vs_fraction` as PNG bytes (for an ``ipywidgets.Image``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    plot_fd_vs_fraction(recording, live=live, ax=ax)
    return _render(fig)


def run_summary(result, fraction: float, augment_name: str, seed: int, seconds: float) -> dict:
    """A finished live run as a point for the plot."""
    history = result.history
    return {"fraction": fraction, "augment": augment_name, "seed": seed,
            "fd": float(history["fd"][-1]), "gap": float(history["gap"][-1]),
            "feature_extractor": getattr(result, "feature_extractor", ""),
            "seconds": round(seconds, 1)}


class LiveRun(CourseWidget):
    """Pick a configuration, press the button, watch it train, see its point on the plot;
    see :func:`live_run`."""

    def __init__(self, recording, run_fn: Callable, preset_name: str, fraction: float = 0.1,
                 augment_name: str = "diffaugment", seed: int = 0):
        import ipywidgets as W

        from course_lib.experiments import FRACTIONS, STRATEGY_LABELS

        self.recording, self.run_fn, self.preset_name = recording, run_fn, preset_name
        self.controls = {
            "fraction": W.Dropdown(options=[(f"{f:.0%}", f) for f in FRACTIONS], value=fraction,
                                   description="data", layout=W.Layout(width="160px")),
            "augment": W.Dropdown(options=[(STRATEGY_LABELS[a], a) for a in ("none", "diffaugment")],
                                  value=augment_name, description="strategy",
                                  layout=W.Layout(width="260px")),
            "seed": W.BoundedIntText(value=seed, min=0, max=99, description="seed",
                                     layout=W.Layout(width="140px")),
            "run": W.Button(description="train it live", button_style="primary", icon="play"),
        }
        self.status = W.HTML()
        self.log = W.Output()       # training's progress bar shows here
        self.output = W.Image(format="png")
        self.state = LiveState()
        self.controls["run"].on_click(lambda _: self.run())
        row = W.HBox([self.controls[k] for k in ("fraction", "augment", "seed", "run")])
        self.widget = W.VBox([row, self.status, self.log, self.output])
        self.update()

    def update(self, *_):
        self.output.value = fd_plot_png(self.recording, self.state.runs)
        self.status.value = self.state.status

    def run(self) -> dict | None:
        """Train the chosen configuration (or load it from the zoo) and add its point."""
        if self.state.running:
            return None
        fraction = self.controls["fraction"].value
        augment_name, seed = self.controls["augment"].value, int(self.controls["seed"].value)
        self.state.running = True
        self.controls["run"].disabled = True
        self.state.status = (f"training {augment_name} at {fraction:.0%}, seed {seed} on the "
                             f"{self.preset_name} preset …")
        self.status.value = self.state.status
        started = time.perf_counter()
        try:
            with self.log:
                result = self.run_fn(fraction, augment_name, seed)
            point = run_summary(result, fraction, augment_name, seed, time.perf_counter() - started)
        except Exception as exc:  # show it on the widget; a button callback has nowhere to raise
            self.state.status = f"⚠️ the live run failed: {type(exc).__name__}: {exc}"
            point = None
        else:
            self.state.runs.append(point)
            recorded = _recorded_fd(self.recording, fraction, augment_name, seed)
            compare = f"; the recording says {recorded:.2f}" if recorded is not None else ""
            mismatch = ""
            if point["feature_extractor"] and point["feature_extractor"] != self.recording.feature_extractor:
                mismatch = (f" ⚠️ measured with {point['feature_extractor']}, the bars with "
                            f"{self.recording.feature_extractor}: not comparable")
            if self.preset_name != self.recording.preset:
                mismatch += (f" ⚠️ the bars are the {self.recording.preset} preset's, this run "
                             f"used {self.preset_name}")
            self.state.status = (f"live run: {augment_name} at {fraction:.0%}, seed {seed}: FD "
                                 f"{point['fd']:.2f}{compare} ({point['seconds']:.0f} s){mismatch}")
        finally:
            self.state.running = False
            self.controls["run"].disabled = False
        self.update()
        return point


def _recorded_fd(recording, fraction: float, augment_name: str, seed: int) -> float | None:
    try:
        return float(recording.find(fraction, augment_name, seed)["final"]["fd"])
    except KeyError:
        return None


def live_run(recording, preset, run_fn: Callable | None = None, **defaults) -> LiveRun:
    """The FD-vs-fraction plot with a button that trains one configuration live and adds
    it to the plot (a gold star). ``run_fn(fraction, augment, seed)`` -> a TrainResult
    whose history has ``fd`` and ``gap``; by default
    :func:`course_lib.experiments.cifar_run` on ``preset`` (cached in the zoo, so a second
    press is instant)."""
    from course_lib.experiments import cifar_run

    name = getattr(preset, "name", str(preset))
    if run_fn is None:
        def run_fn(fraction, augment_name, seed):
            return cifar_run(fraction, augment_name, seed, preset)
    return LiveRun(recording, run_fn, name, **defaults)


__all__ = [
    "policy_string", "augment", "augmented_grid", "AugmentState", "AugmentExplorer",
    "augment_explorer", "Summary", "summarize", "headline_figures", "plot_strategies",
    "plot_fd_vs_fraction", "plot_gap", "mean_curve", "best_and_final", "plot_fd_over_training",
    "leak_indicators", "measure_augment_overhead",
    "saved_benchmark", "LiveState", "LiveRun", "live_run", "fd_plot_png",
    "run_summary", "short_source", "recording_banner",
]
