"""Compared runs, recorded: one pattern for every track that compares training runs.

A notebook that compares many runs (data fractions x augmentation strategies, the four
few-shot ways, later students and supernets) cannot train them in class. It shows a
**recording**: each run's curves, final figures and a grid of samples, made ahead of time
by this library's own code and shipped in ``course_lib/recorded/<preset>/``.

- :class:`Track` says what the runs of a track differ in (its ``factors``, e.g.
  ``("fraction", "augment")``), how a run is named, and how to remake the recording;
- :func:`record_runs` (the runner) trains, or loads from the zoo, every run of a plan and
  writes the recording; :func:`load_recording` reads it back as a :class:`Recording`;
- :func:`summarize` gives mean ± sd over seeds, :func:`best_and_final` where a curve was
  lowest and where it ended, and :func:`verdict` turns two sets of per-seed figures into
  "better", "worse" or "inconclusive" (the seeds' ranges overlap). Every printed verdict
  goes through it (:func:`trend` for an ordered series, e.g. "rises as data shrinks"),
  on the final figure and on the best one over training (``which="best"``), side by side.

File layout (JSON + NumPy, no pickles): ``<prefix>runs.json`` holds the track, factors,
preset, feature extractor, data source, the runs (key, factor values, seed, n_train,
history, final figures, seconds) and track-specific extras; ``<prefix>samples.npz`` holds
uint8 [n, 3, S, S] sample grids by run key. Weights a notebook needs live (a pretrained
model, a teacher) are shipped beside them in fp16: :func:`to_fp16` before saving,
:func:`to_fp32` after loading.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from course_lib.diffaugment import policy_tag
from course_lib.fileio import atomic_path

RECORDED_DIR = Path(__file__).parent / "recorded"


class NotRecorded(LookupError):
    """Raised by a runner's ``train`` for a run it will not train (e.g. assembling a
    recording from cached runs only): the run is listed as missing, not recorded."""


# --- figures over seeds, and verdicts --------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """One configuration's figure over its seeds."""
    mean: float
    std: float          # sample standard deviation over seeds (0 with one seed)
    low: float
    high: float
    values: tuple

    @property
    def n(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.std:.2g} (n={self.n})"


def summarize(values: Iterable[float]) -> Summary:
    """Mean ± sd (and range) of per-seed figures; ``None`` entries are left out."""
    kept = tuple(float(v) for v in values if v is not None)
    if not kept:
        raise ValueError("no values to summarize")
    arr = np.asarray(kept)
    return Summary(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                   float(arr.min()), float(arr.max()), kept)


def best_and_final(steps: list, values: list) -> dict:
    """Where a curve was lowest and where it ended: ``{"best_step", "best", "final_step",
    "final", "rise"}`` (rise = final / best - 1)."""
    if not values:
        raise ValueError("an empty curve has no best or final value")
    i = int(np.argmin(values))
    return {"best_step": steps[i], "best": float(values[i]), "final_step": steps[-1],
            "final": float(values[-1]), "rise": float(values[-1]) / float(values[i]) - 1}


@dataclass(frozen=True)
class Verdict:
    """How a candidate compares with a baseline over seeds."""
    word: str           # "better", "worse" or "inconclusive"
    reason: str
    baseline: Summary
    candidate: Summary

    def __str__(self) -> str:
        return f"{self.word} ({self.reason})"


def verdict(baseline: Iterable[float], candidate: Iterable[float], *,
            lower_is_better: bool = True, min_seeds: int = 2) -> Verdict:
    """"better" when every seed of ``candidate`` beats every seed of ``baseline`` (the
    seeds' ranges do not overlap), "worse" when every one loses, else "inconclusive" —
    also when either side has fewer than ``min_seeds`` seeds (one seed has no range)."""
    a, b = summarize(baseline), summarize(candidate)
    if min(a.n, b.n) < min_seeds:
        return Verdict("inconclusive", f"{min(a.n, b.n)} seed(s); at least {min_seeds} needed "
                                       f"to tell a difference from the seed spread", a, b)
    lo_better = b.high < a.low        # candidate entirely below the baseline
    hi_better = b.low > a.high        # candidate entirely above
    if (lo_better and lower_is_better) or (hi_better and not lower_is_better):
        return Verdict("better", f"{b.low:.3g}–{b.high:.3g} against {a.low:.3g}–{a.high:.3g}, "
                                 f"{a.n} and {b.n} seeds", a, b)
    if lo_better or hi_better:
        return Verdict("worse", f"{b.low:.3g}–{b.high:.3g} against {a.low:.3g}–{a.high:.3g}, "
                                f"{a.n} and {b.n} seeds", a, b)
    return Verdict("inconclusive", f"the seeds' ranges overlap: {b.low:.3g}–{b.high:.3g} "
                                   f"against {a.low:.3g}–{a.high:.3g}", a, b)


@dataclass(frozen=True)
class Trend:
    """Verdicts between neighbours of an ordered series of configurations (e.g. 100%, 20%
    and 10% of the data): ``steps`` holds (from, to, Verdict) with ``to`` the candidate."""
    steps: tuple

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(v.word for _, _, v in self.steps)

    def holds(self, word: str) -> bool:
        """True when every step's verdict is ``word`` (e.g. "worse": it worsens at every step)."""
        return bool(self.steps) and all(w == word for w in self.words)

    def __str__(self) -> str:
        return "; ".join(f"{a} -> {b}: {v}" for a, b, v in self.steps)


def trend(series: list[tuple[str, Iterable[float]]], *, lower_is_better: bool = True,
          min_seeds: int = 2) -> Trend:
    """:func:`verdict` of each configuration of ``series`` ([(label, per-seed figures)], in
    order) against the one before it. "FD rises as the data shrinks" holds only if
    ``trend([("100%", ...), ("20%", ...), ("10%", ...)]).holds("worse")``."""
    series = [(label, list(values)) for label, values in series]
    return Trend(tuple((a, b, verdict(va, vb, lower_is_better=lower_is_better, min_seeds=min_seeds))
                       for (a, va), (b, vb) in zip(series, series[1:])))


# --- tracks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Track:
    """What the recorded runs of one track differ in, and where its files are.

    ``factors``: the names of the settings runs differ in (besides the seed);
    ``key(run)``: a run's name from its factor values and seed; ``prefix``: file names are
    ``<prefix>runs.json`` and ``<prefix>samples.npz``; ``command``: remakes the recording.
    """
    name: str
    factors: tuple[str, ...]
    key: Callable[[dict], str]
    prefix: str
    command: str


TRACKS: dict[str, Track] = {}


def register_track(track: Track) -> Track:
    TRACKS[track.name] = track
    return track


register_track(Track(
    "cifar", ("fraction", "augment"),
    lambda r: f"dcgan-cifar-{round(r['fraction'] * 100)}pct-{r['augment']}-s{r['seed']}",
    "", "python -m course_lib.experiments"))
register_track(Track(
    "monitor", ("fraction", "augment"),
    lambda r: f"dcgan-cifar-{round(r['fraction'] * 100)}pct-{r['augment']}-s{r['seed']}",
    "monitor_", "python -m course_lib.experiments --monitor"))
register_track(Track(
    "policy", ("fraction", "augment", "policy"),
    lambda r: (f"dcgan-cifar-{round(r['fraction'] * 100)}pct-{r['augment']}-"
               f"{policy_tag(r['policy'])}-s{r['seed']}"),
    "policy_", "python -m course_lib.experiments --policy color,translation"))
register_track(Track(
    "fewshot", ("way",), lambda r: f"{r['way']}-s{r['seed']}",
    "fewshot_", "python -m course_lib.fewshot"))


# --- a recording -------------------------------------------------------------------------------

def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


@dataclass
class Recording:
    """Recorded runs of one track: ``runs`` (dicts: key, factor values, seed, n_train,
    history, final, seconds) and ``samples`` (uint8 grids by key); ``meta`` holds the
    track's extras (e.g. the few-shot settings and the pretrained model's figures).

    Runs are picked by their factor values in the track's order, e.g.
    ``rec.find(0.1, "none", seed=0)`` on the CIFAR track or ``rec.find("finetune", 0)`` on
    the few-shot one; ``rec.mean_final(0.1, "none", "fd")`` is the mean over seeds.
    """
    track: str
    factors: tuple
    preset: str
    feature_extractor: str
    data_source: str
    runs: list
    samples: dict
    meta: dict = field(default_factory=dict)

    # which runs
    def _where(self, values: tuple) -> dict:
        if len(values) > len(self.factors):
            raise TypeError(f"the {self.track} track's runs differ in {', '.join(self.factors)}; "
                            f"got {len(values)} values: {values}")
        return dict(zip(self.factors, values))

    def select(self, *values, **where) -> list[dict]:
        """Every seed's run of the configuration ``values`` (factor values, in order)."""
        where = {**self._where(values), **where}
        return sorted((r for r in self.runs if all(_same(r.get(k), v) for k, v in where.items())),
                      key=lambda r: r["seed"])

    def find(self, *values, seed: int | None = None) -> dict:
        """The run of ``values`` (all factors) and ``seed`` (default 0; it may also come
        last among the positional values)."""
        if len(values) == len(self.factors) + 1 and seed is None:
            values, seed = values[:-1], values[-1]
        seed = 0 if seed is None else seed
        found = self.select(*values, seed=seed)
        if not found:
            described = ", ".join(f"{k}={v!r}" for k, v in self._where(values).items())
            raise KeyError(f"no recorded run with {described}, seed={seed}")
        return found[0]

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.runs})

    def configurations(self) -> list[tuple]:
        """Every recorded configuration (factor values), in recording order."""
        seen = []
        for r in self.runs:
            config = tuple(r[k] for k in self.factors)
            if config not in seen:
                seen.append(config)
        return seen

    def images(self, run_or_key) -> torch.Tensor:
        """A run's (or a named extra's, e.g. "pretrained") final samples as floats
        [n, 3, S, S] in [-1, 1]."""
        key = run_or_key if isinstance(run_or_key, str) else run_or_key["key"]
        return torch.from_numpy(self.samples[key]).float() / 127.5 - 1

    # figures over seeds
    def finals(self, *values, key: str) -> list[float]:
        runs = self.select(*values)
        if not runs:
            raise KeyError(f"no recorded runs with {self._where(values)}")
        return [r["final"][key] for r in runs if r["final"].get(key) is not None]

    def bests(self, *values, key: str = "fd", lower_is_better: bool = True) -> list[float]:
        """Each seed's best ``key`` over its evaluations (the lowest, or the highest if not
        ``lower_is_better``): the snapshot a paper would report."""
        runs = self.select(*values)
        if not runs:
            raise KeyError(f"no recorded runs with {self._where(values)}")
        pick = min if lower_is_better else max
        out = []
        for r in runs:
            curve = [v for v in r["history"].get(key, []) if v is not None and np.isfinite(v)]
            if curve:
                out.append(float(pick(curve)))
        return out

    def figures(self, *values, key: str = "fd", which: str = "final",
                lower_is_better: bool = True) -> list[float]:
        """Per-seed figures of a configuration: ``which`` = "final" (the end of each run) or
        "best" (each run's lowest ``key`` over training; its highest if not
        ``lower_is_better``, e.g. coverage)."""
        if which == "final":
            return self.finals(*values, key=key)
        if which == "best":
            return self.bests(*values, key=key, lower_is_better=lower_is_better)
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")

    def at_step(self, *values, key: str = "fd", step: int) -> list[float]:
        """Per-seed ``key`` of a configuration at evaluation step ``step`` (e.g. the middle
        of the runs, to compare with their end)."""
        runs = self.select(*values)
        if not runs:
            raise KeyError(f"no recorded runs with {self._where(values)}")
        out = []
        for run in runs:
            steps = run["history"]["eval_step"]
            if step not in steps:
                raise KeyError(f"{run['key']} was not evaluated at step {step}; its evaluations: "
                               f"{', '.join(map(str, steps))}")
            out.append(float(run["history"][key][steps.index(step)]))
        return out

    def summary(self, *values, key: str = "fd", which: str = "final") -> Summary:
        """Mean ± sd over seeds of the final (or best) ``key`` of configuration ``values``."""
        return summarize(self.figures(*values, key=key, which=which))

    def mean_final(self, *values_and_key) -> float:
        """``mean_final(0.1, "none", "fd")``: the mean over seeds of a final figure."""
        *values, key = values_and_key
        return self.summary(*values, key=key).mean

    def summaries(self, key: str = "fd") -> dict[tuple, Summary]:
        """``{configuration: Summary}`` of the final ``key`` of every configuration."""
        out = {}
        for config in self.configurations():
            values = self.finals(*config, key=key)
            if values:
                out[config] = summarize(values)
        return out

    def curve(self, *values, key: str = "fd") -> tuple[list, list, list, list]:
        """(eval steps, mean, min, max over seeds) of an evaluated ``key``."""
        runs = self.select(*values)
        if not runs:
            raise KeyError(f"no recorded runs with {self._where(values)}")
        steps = list(runs[0]["history"]["eval_step"])
        arr = np.array([[np.nan if v is None else v for v in r["history"][key][:len(steps)]]
                        for r in runs], dtype=float)
        return (steps, [float(v) for v in np.nanmean(arr, 0)], [float(v) for v in np.nanmin(arr, 0)],
                [float(v) for v in np.nanmax(arr, 0)])

    def best_and_final(self, *values, key: str = "fd") -> dict:
        """:func:`best_and_final` of the mean-over-seeds curve of ``key``."""
        steps, mean, _, _ = self.curve(*values, key=key)
        return best_and_final(steps, mean)

    def table(self, keys: tuple = ("fd",), labels: dict | None = None) -> list[dict]:
        """One row per configuration: its factor values, ``label`` (from ``labels``, keyed
        by the last factor's value), ``n_seeds``, and for each of ``keys`` the mean over
        seeds and ``<key>_per_seed``."""
        rows = []
        for config in self.configurations():
            runs = self.select(*config)
            row = dict(zip(self.factors, config))
            row["label"] = (labels or {}).get(config[-1], " / ".join(map(str, config)))
            row["n_seeds"] = len(runs)
            for key in keys:
                values = self.finals(*config, key=key)
                row[key] = summarize(values).mean
                row[f"{key}_per_seed"] = values
            rows.append(row)
        return rows

    def compare(self, baseline: tuple, candidate: tuple, key: str = "fd",
                lower_is_better: bool = True, which: str = "final") -> Verdict:
        """:func:`verdict` of two configurations' final (or best: ``which``) ``key`` over
        their seeds."""
        return verdict(self.figures(*baseline, key=key, which=which, lower_is_better=lower_is_better),
                       self.figures(*candidate, key=key, which=which, lower_is_better=lower_is_better),
                       lower_is_better=lower_is_better)

    # track-specific extras, when the track records them
    @property
    def missing(self) -> list[dict]:
        """Planned runs not in this recording (a partial one): dicts of factor values, seed
        and key. The command that completes it is ``meta["complete_with"]``."""
        return list(self.meta.get("missing", []))

    @property
    def settings(self) -> dict:
        return self.meta.get("settings", {})

    @property
    def pretrain(self) -> dict:
        return self.meta.get("pretrain", {})


def recording_dir(preset: str, directory: str | os.PathLike | None = None) -> Path:
    return Path(directory) if directory else RECORDED_DIR / preset


def load_recording(track: str, preset: str = "class",
                   directory: str | os.PathLike | None = None) -> Recording:
    """The recording of ``track`` made with ``preset`` (from ``course_lib/recorded/<preset>/``
    or ``directory``). Files written before the track name was stored load as well."""
    t = TRACKS[track]
    directory = recording_dir(preset, directory)
    path = directory / f"{t.prefix}runs.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded {track} runs in {directory}: make them with "
                                f"`{t.command} --preset {preset}`")
    meta = json.loads(path.read_text())
    with np.load(directory / f"{t.prefix}samples.npz") as npz:
        samples = {k: npz[k] for k in npz.files}
    known = ("track", "factors", "preset", "feature_extractor", "data_source", "runs")
    return Recording(meta.get("track", track), tuple(meta.get("factors", t.factors)),
                     meta["preset"], meta["feature_extractor"], meta["data_source"],
                     meta["runs"], samples, {k: v for k, v in meta.items() if k not in known})


# --- weights shipped with a recording -------------------------------------------------------------

def to_fp16(obj):
    """``obj`` (tensors in nested dicts and lists) with every floating-point tensor in fp16:
    weights shipped in the package are half the size (the size rule: no file over 5 MB)."""
    if isinstance(obj, dict):
        return {k: to_fp16(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_fp16(v) for v in obj)
    return obj.half() if torch.is_tensor(obj) and obj.is_floating_point() else obj


def to_fp32(obj):
    """The inverse of :func:`to_fp16`: every floating-point tensor back in fp32."""
    if isinstance(obj, dict):
        return {k: to_fp32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_fp32(v) for v in obj)
    return obj.float() if torch.is_tensor(obj) and obj.is_floating_point() else obj


# --- the runner --------------------------------------------------------------------------------

def thin_history(history: dict, every: int = 10) -> dict:
    """Keep every ``every``-th per-step value (recordings stay small); evaluations stay whole."""
    n_steps, n_evals = len(history.get("step", [])), len(history.get("eval_step", []))
    per_step = {k for k, v in history.items()
                if k != "eval_step" and len(v) == n_steps and n_steps > n_evals}
    return {k: (v[::every] if k in per_step else v) for k, v in history.items()}


def final_figures(history: dict) -> dict:
    """The last value of every series but ``eval_step``."""
    return {k: v[-1] for k, v in history.items() if v and k != "eval_step"}


def grid_u8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] -> uint8 [n, 3, S, S] (what a recording stores)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def record_runs(track: str, plan: Iterable[dict], train: Callable[..., object], *, preset: str,
                feature_extractor: str, data_source: str, out_dir: str | os.PathLike | None = None,
                n_samples: int = 16, meta: dict | None = None, extra_samples: dict | None = None,
                describe: Callable[[dict, dict], str] | None = None,
                keep: Recording | None = None) -> Recording:
    """Train (or load) every run of ``plan`` and write the recording; returns it.

    plan: dicts of the track's factor values and ``seed``; ``train(**cell)`` returns a
        result with ``.history``, ``.sample(n)``, ``.n_train`` and ``.seconds``, or raises
        :class:`NotRecorded`: the run is left out and listed in ``meta["missing"]`` (a
        partial recording; notebooks show such runs as "not recorded").
    meta: track-specific extras written with the runs; ``extra_samples``: more grids by
        name (e.g. {"pretrained": images}). ``describe(run, final)`` -> a progress line.
    """
    t = TRACKS[track]
    out = recording_dir(preset, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, samples, missing, kept = [], {}, [], []
    if keep is not None and (keep.track, keep.preset, keep.feature_extractor, keep.data_source) != (
            track, preset, feature_extractor, data_source):
        raise ValueError(f"cannot keep runs of the {keep.preset} {keep.track} recording ("
                         f"{keep.feature_extractor}; {keep.data_source}) in a {preset} {track} "
                         f"recording ({feature_extractor}; {data_source}): record it whole")
    earlier = {r["key"]: r for r in keep.runs} if keep is not None else {}
    for cell in plan:
        key = t.key(cell)
        if key in earlier:
            runs.append(earlier[key])
            samples[key] = keep.samples[key]
            kept.append(key)
            print(f"{key}: kept from the earlier recording")
            continue
        try:
            result = train(**cell)
        except NotRecorded:
            missing.append({**{k: cell[k] for k in t.factors}, "seed": cell["seed"], "key": key})
            print(f"{key}: not recorded (missing)")
            continue
        run = {"key": key, **{k: cell[k] for k in t.factors}, "seed": cell["seed"],
               "n_train": result.n_train, "history": thin_history(result.history),
               "final": final_figures(result.history),
               "seconds": result.seconds}   # training time (the run may come from the zoo)
        runs.append(run)
        samples[key] = grid_u8(result.sample(n_samples))
        print(describe(run, run["final"]) if describe else
              f"{key}: " + ", ".join(f"{k} {v:.3g}" for k, v in run["final"].items()
                                     if k in ("fd", "kid", "gap") and v is not None))
    for name, images in (extra_samples or {}).items():
        samples[name] = grid_u8(images)
    body = {"track": track, "factors": list(t.factors), "preset": preset,
            "feature_extractor": feature_extractor, "data_source": data_source, "runs": runs,
            **(meta or {}), "missing": missing, **({"kept": kept} if kept else {}),
            "machine": {"torch_threads": torch.get_num_threads(),
                        "load_average": [round(x, 2) for x in os.getloadavg()]}}
    with atomic_path(out / f"{t.prefix}runs.json") as tmp:
        tmp.write_text(json.dumps(body, indent=1))
    with atomic_path(out / f"{t.prefix}samples.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **samples)
    return load_recording(track, preset, out)
