"""Post-training compression of trained generators, measured (notebook 09).

Mordido, Yang and Meinel (arXiv 2103.11912) compress *trained* GANs without retraining
and evaluate quality and diversity separately, and per sample. This module does the
measuring for the notebook, on two generators:

- the DCGAN of notebook 01 (from the model zoo), where the question is diversity:
  :func:`compress` makes one compressed copy (quantization, pruning or both, by
  ``method``), :class:`Evaluator` measures FD, precision, recall, density and coverage on
  several fixed latent sets ("seeds") against held-out reals, :func:`sweep` does it along
  a curve, :func:`relative_drops` and :func:`quality_vs_diversity` turn the numbers into a
  verdict (through :func:`course_lib.recording.verdict`, so overlapping seeds say
  "inconclusive"), and :func:`survivors_and_broken` finds the samples whose realism
  changed least and most;
- a CycleGAN teacher and its compressed student, where the question is compounding:
  :func:`speed_and_size` times fp32, int8 and pruned models interleaved and reads their
  state-dict sizes; :func:`compounding` gives the "compressed, then int8" student's
  speed-up over the fp32 teacher (notebook 07's models, :func:`notebook07_models`, or a
  stand-in of the same architecture, :func:`cyclegan_pair`).

Latency is measured on one thread by default (``PTQSettings.latency_threads``): on a
shared 2-core machine two threads made these ratios noise. Quote ratios from one run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib.compress import (channel_prune, count_macs, magnitude_prune_model,
                                 prune_then_quantize, quantize_int8, quantize_model,
                                 size_report, state_dict_bytes)
from course_lib.compress.latency import compare_latency
from course_lib.metrics import density_coverage, precision_recall, realism_score
from course_lib.metrics.features import extract_features
from course_lib.metrics.fid import feature_stats, frechet_distance
from course_lib.presets import Preset, PTQSettings, get_preset
from course_lib.recording import Verdict, summarize, verdict

NOTEBOOK = "09_post_training_compression"
METHODS = ("per_tensor", "per_channel", "kmeans", "magnitude", "channel", "combined")
METHOD_LABELS = {
    "per_tensor": "linear, one scale per tensor",
    "per_channel": "linear, one scale per output channel",
    "kmeans": "k-means codebook",
    "magnitude": "magnitude pruning (zeros)",
    "channel": "channel pruning (channels removed)",
    "combined": "magnitude pruning, then per-channel quantization",
}
QUALITY = ("precision", "density")        # are the samples realistic?
DIVERSITY = ("recall", "coverage")        # is the real data covered?
FIGURES = ("fd",) + QUALITY + DIVERSITY
# GAN Compression's horse2zebra student (Li et al., CVPR 2020): "16_16_32_16_32_32_16_16",
# 2.67 GMACs at 256x256 against the teacher's 56.8.
PAPER_STUDENT_WIDTHS = (16, 16, 32, 16, 32, 32, 16, 16)


def settings_for(preset: str | Preset | None = None) -> PTQSettings:
    return get_preset(preset).ptq


def notebook01_dcgan(preset: str | Preset | None = None, progress: bool = True):
    """Notebook 01's trained DCGAN (CIFAR track, all data, no augmentation), from the zoo:
    trained the first time (about 2 minutes on ``class``), loaded afterwards."""
    from course_lib import experiments

    preset = get_preset(preset)
    return experiments.cifar_run(1.0, "none", seed=0, preset=preset, steps=preset.cifar.steps,
                                 progress=progress)


# --- one compressed copy -----------------------------------------------------------------------

def compress(generator: nn.Module, method: str, *, weight_bits: int | None = 32,
             act_bits: int | None = 32, sparsity: float = 0.0, calibration=None,
             example_input: torch.Tensor | None = None) -> nn.Module:
    """A compressed copy of ``generator`` (simulated in float; the original is unchanged).

    method (``METHODS``): "per_tensor", "per_channel", "kmeans" quantize the weights to
    ``weight_bits`` (and the activations to ``act_bits``, calibrated on ``calibration``);
    "magnitude" zeroes ``sparsity`` of each layer's weights; "channel" removes ``sparsity``
    of the channels (needs ``example_input``); "combined" prunes by magnitude, then
    quantizes per channel. 32 or None bits: float. Returns the copy in eval mode.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method in ("per_tensor", "per_channel", "kmeans"):
        return quantize_model(generator, weight_bits, act_bits, method, calibration)
    if method == "magnitude":
        return magnitude_prune_model(generator, sparsity)
    if method == "channel":
        if example_input is None:
            raise ValueError("method 'channel' needs example_input (one input batch)")
        return channel_prune(generator, min(sparsity, 0.95), example_input)
    return prune_then_quantize(generator, sparsity, weight_bits, "per_channel", "magnitude",
                               act_bits, calibration)


# --- quality and diversity ---------------------------------------------------------------------

@dataclass
class Evaluator:
    """Measures a generator against held-out reals on fixed latent sets, one per seed.

    real_feats: [N, D] features of the real images; extractor: the feature extractor (its
    ``name`` labels every figure); latents: one [n, z_dim] tensor per seed. The same
    latents are used for every model, so a change is the compression's, not the draw's.
    """
    extractor: object
    real_feats: np.ndarray
    latents: list

    @classmethod
    def of(cls, real_images: torch.Tensor, z_dim: int, n_samples: int, n_seeds: int,
           extractor=None) -> "Evaluator":
        from course_lib.metrics.features import default_extractor
        from course_lib.train import fixed_latents

        extractor = extractor or default_extractor()
        latents = [fixed_latents(n_samples, z_dim, seed=1000 + s) for s in range(n_seeds)]
        return cls(extractor, extract_features(real_images, extractor), latents)

    @property
    def label(self) -> str:
        return self.extractor.name

    @torch.no_grad()
    def samples(self, generator: nn.Module, seed: int = 0, n: int | None = None) -> torch.Tensor:
        z = self.latents[seed] if n is None else self.latents[seed][:n]
        generator.eval()
        # chunks of 250 (not train.generate: an int8 model has no parameters to find a device)
        return torch.cat([generator(z[i:i + 250]) for i in range(0, len(z), 250)]).clamp(-1, 1)

    def figures(self, generator: nn.Module, seeds: int | None = None) -> list[dict]:
        """Per seed (the first ``seeds`` latent sets; default all): ``{"fd", "precision",
        "recall", "density", "coverage"}``, and for seed 0 also ``"realism"``: [n]
        per-sample realism scores (k = 3)."""
        mu_r, sigma_r = feature_stats(self.real_feats)
        out = []
        for seed in range(len(self.latents) if seeds is None else seeds):
            feats = extract_features(self.samples(generator, seed), self.extractor)
            precision, recall = precision_recall(self.real_feats, feats)
            density, coverage = density_coverage(self.real_feats, feats)
            row = {"fd": frechet_distance(*feature_stats(feats), mu_r, sigma_r),
                   "precision": precision, "recall": recall, "density": density,
                   "coverage": coverage}
            if seed == 0:
                row["realism"] = realism_score(self.real_feats, feats)
            out.append(row)
        return out


def mean_figures(per_seed: list[dict]) -> dict:
    """The mean over seeds of each figure in ``FIGURES``."""
    return {k: float(np.mean([r[k] for r in per_seed])) for k in FIGURES}


def sweep(evaluator: Evaluator, generator: nn.Module, settings: list[dict],
          desc: str = "compressing") -> list[dict]:
    """Evaluate ``compress(generator, **s)`` for each ``s`` in ``settings``.

    Returns one row per setting: the setting, ``per_seed`` (from :meth:`Evaluator.figures`),
    the means of ``FIGURES`` and the model's ``size_report``. Shows a progress bar.
    """
    from tqdm.auto import tqdm

    rows = []
    for setting in tqdm(settings, desc=desc):
        model = compress(generator, **setting)
        per_seed = evaluator.figures(model)
        rows.append({**setting, "per_seed": per_seed, **mean_figures(per_seed),
                     "size": size_report(model, bits=_storage_bits(setting))})
    return rows


def _storage_bits(setting: dict) -> int:
    bits = setting.get("weight_bits")
    if setting.get("method") in ("magnitude", "channel") or bits in (None, 32):
        return 32
    return int(bits)


def relative_drops(base: dict, row: dict, keys=QUALITY + DIVERSITY) -> dict:
    """``{key: 1 - row[key] / base[key]}``: the share of the uncompressed value lost
    (negative: it rose). Keys whose base value is 0 are left out."""
    return {k: 1 - row[k] / base[k] for k in keys if base[k]}


def _group_drop(base: dict, row: dict, keys) -> float | None:
    drops = relative_drops(base, row, keys)
    return float(np.mean(list(drops.values()))) if drops else None


def quality_vs_diversity(base_per_seed: list[dict], per_seed: list[dict]) -> Verdict:
    """Did compression cost more diversity (recall, coverage) than quality (precision,
    density)? Per seed, the mean relative drop of each group (same latents, before and
    after); ``verdict`` on the two sets of drops. Its ``word``: "better" = diversity lost
    more, "worse" = quality lost more, "inconclusive" = the seeds' ranges overlap. Use
    :func:`describe_quality_vs_diversity` for a sentence."""
    quality = [_group_drop(b, r, QUALITY) for b, r in zip(base_per_seed, per_seed)]
    diversity = [_group_drop(b, r, DIVERSITY) for b, r in zip(base_per_seed, per_seed)]
    if None in quality or None in diversity:
        zero = " and ".join(name for name, drops in (("precision and density", quality),
                                                     ("recall and coverage", diversity))
                            if None in drops)
        return Verdict("inconclusive", f"the uncompressed generator already scores 0 on {zero} "
                                       f"for some latent set: nothing left to lose",
                       summarize([d for d in quality if d is not None] or [0.0]),
                       summarize([d for d in diversity if d is not None] or [0.0]))
    return verdict(quality, diversity, lower_is_better=False)


def describe_quality_vs_diversity(v: Verdict) -> str:
    """One sentence for a :func:`quality_vs_diversity` verdict, quoting its numbers."""
    q, d = v.baseline, v.candidate
    figures = f"quality drop {q.mean:+.1%}, diversity drop {d.mean:+.1%} (mean of {q.n} seeds)"
    if "already scores 0" in v.reason:
        return f"inconclusive: {v.reason}"
    if v.word == "better":
        return f"diversity suffered more than quality: {figures}; {v.reason}"
    if v.word == "worse":
        return f"quality suffered more than diversity: {figures}; {v.reason}"
    return f"inconclusive: {figures}; {v.reason}"


REALISM_CAP = 1e12   # realism is inf on an exact match of a real point: capped for log ratios


def realism_log_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """log(after) - log(before) of per-sample realism scores [M] -> [M], always finite:
    scores are clipped to [1 / REALISM_CAP, REALISM_CAP] first, since a sample on a real
    point scores inf and inf - inf is NaN (an exact match kept is a change of 0)."""
    before, after = (np.clip(np.asarray(v, float), 1 / REALISM_CAP, REALISM_CAP)
                     for v in (before, after))
    return np.log(after) - np.log(before)


def survivors_and_broken(before: np.ndarray, after: np.ndarray, n: int = 8
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` samples whose realism score changed least (survivors) and the
    ``n`` whose score changed most (broken; look at before and after to see which way),
    from per-sample scores [M] before and after compression. Changes are compared on a log
    scale (the score is a ratio of distances)."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"need two [M] score arrays, got shapes {before.shape} and {after.shape}")
    n = min(n, len(before))
    change = realism_log_change(before, after)
    order = np.argsort(np.abs(change), kind="stable")
    return order[:n], order[::-1][:n].copy()   # a copy: torch refuses negative strides


# --- speed and size ----------------------------------------------------------------------------

def speed_and_size(models: dict, x: torch.Tensor, repeats: int, threads: int = 1,
                   baseline: str | None = None) -> dict:
    """Median CPU latency (interleaved) and state-dict bytes of each model on input ``x``.

    models: ``{name: model}``; baseline: the name the ratios are over (default: the first).
    Returns ``{name: {"ms", "bytes", "speedup", "size_ratio"}}`` plus ``"threads"`` and
    ``"load_average"``; speedup = baseline ms / ms, size_ratio = baseline bytes / bytes.
    """
    baseline = baseline or next(iter(models))
    times = compare_latency(models, x, repeats=repeats, warmup=max(1, repeats // 5),
                            threads=threads)
    out = {"threads": threads, "load_average": times["load_average"]}
    base_ms, base_bytes = times[baseline]["ms"], state_dict_bytes(models[baseline])
    for name, model in models.items():
        size = state_dict_bytes(model)
        out[name] = {"ms": times[name]["ms"], "bytes": size,
                     "speedup": base_ms / times[name]["ms"], "size_ratio": base_bytes / size}
    return out


@torch.no_grad()
def output_change(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Mean |a(x) - b(x)| (outputs in [-1, 1])."""
    return float((a(x) - b(x)).abs().mean())


def cyclegan_pair(scale: str, preset: str | Preset | None = None):
    """``(teacher, student, image_size, description)`` for the compounding measurement.

    scale "class": the preset's CycleGAN teacher size (``preset.cyclegan``) and the paper's
    student widths scaled by ngf/64; "paper": the official ngf-64, 9-block teacher
    (56.8 GMACs at 256x256) and GAN Compression's student (``PAPER_STUDENT_WIDTHS``).
    Random weights (seeded): latency and size depend on the architecture only.
    """
    from course_lib.models import MobileResnetGenerator, ResnetGenerator

    preset = get_preset(preset)
    if scale == "paper":
        ngf, n_blocks, size = 64, 9, 256
    elif scale == "class":
        c = preset.cyclegan
        ngf, n_blocks, size = c.ngf, max(c.n_blocks, 3), c.image_size
    else:
        raise ValueError(f"scale must be 'class' or 'paper', got {scale!r}")
    widths = tuple(max(1, w * ngf // 64) for w in PAPER_STUDENT_WIDTHS)
    torch.manual_seed(0)
    teacher = ResnetGenerator(ngf=ngf, n_blocks=n_blocks).eval()
    student = MobileResnetGenerator(widths=widths, n_blocks=n_blocks).eval()
    return teacher, student, size, (f"teacher ResnetGenerator ngf {ngf}, {n_blocks} blocks; student "
                                    f"MobileResnetGenerator widths {'_'.join(map(str, widths))}; "
                                    f"{size}x{size}")


def notebook07_models(preset: str | Preset | None = None):
    """``(teacher, student, image_size)``: notebook 07's recorded CycleGAN teacher and its
    compressed student (fp32, eval) when the GAN Compression recording of ``preset`` is
    shipped (``course_lib.gancomp.record``), else None; then the notebook uses
    :func:`cyclegan_pair`'s labelled stand-in (another preset's recording would measure
    models of another size). ``image_size`` is 256, the size notebook 07 times them at
    (the paper's; both are fully convolutional, whatever size they were trained at)."""
    from course_lib.gancomp.pipeline import INPUT_256
    from course_lib.gancomp.record import has_recording, recorded_models

    preset = get_preset(preset)
    if not has_recording(preset.name):
        return None
    models = recorded_models(preset.name)
    return models["teacher"], models["student"], INPUT_256[-1]


def compounding(teacher: nn.Module, student: nn.Module, images: torch.Tensor, repeats: int,
                threads: int = 1, calibration_batches: int = 4) -> dict:
    """The compressed student, then int8, against the fp32 teacher, on 1-image calls.

    images: [N, 3, S, S] in [-1, 1]; the first is timed, up to ``calibration_batches`` of
    them calibrate the int8 model. Returns the :func:`speed_and_size` rows of "teacher
    fp32", "student fp32" and "student int8", both models' MACs, the int8 student's output
    change from its fp32 self, and ``backend`` (whether int8 was real).
    """
    x = images[:1]
    calibration = [images[i:i + 1] for i in range(min(calibration_batches, len(images)))]
    student_int8 = quantize_int8(student, calibration)
    rows = speed_and_size({"teacher fp32": teacher, "student fp32": student,
                           "student int8": student_int8}, x, repeats, threads)
    size = tuple(x.shape)
    rows.update(teacher_macs=count_macs(teacher, size), student_macs=count_macs(student, size),
                int8_output_change=output_change(student, student_int8, x),
                backend=student_int8.backend, real_int8=student_int8.real)
    return rows


def plot_tradeoff(rows: list[dict], x_key: str, ax=None, title: str | None = None,
                  xlabel: str | None = None):
    """Quality (precision, density; solid) and diversity (recall, coverage; dashed) of
    sweep ``rows`` against ``x_key`` ("weight_bits" or "sparsity"), as a share of the
    uncompressed value (the row with 32 bits or sparsity 0); bands: the seeds' range."""
    import warnings

    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    base = next(r for r in rows if r.get(x_key) in (32, 0, 0.0))
    xs = [r[x_key] for r in rows]
    positions = list(range(len(xs))) if x_key == "weight_bits" else xs
    styles = {"precision": ("tab:blue", "-"), "density": ("tab:cyan", "-"),
              "recall": ("tab:red", "--"), "coverage": ("tab:orange", "--")}
    for key, (color, line) in styles.items():
        per_seed = np.array([[s[key] / b[key] if b[key] else np.nan
                              for s, b in zip(r["per_seed"], base["per_seed"])] for r in rows])
        with warnings.catch_warnings():   # a figure that is 0 uncompressed has no share: a gap
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (np.nanmean(per_seed, 1), np.nanmin(per_seed, 1),
                               np.nanmax(per_seed, 1))
        ax.plot(positions, mean, line, color=color, marker="o", ms=3,
                label=f"{key} ({'quality' if key in QUALITY else 'diversity'})")
        ax.fill_between(positions, low, high, color=color, alpha=0.15)
    if x_key == "weight_bits":
        ax.set_xticks(positions, [str(x) for x in xs])
    else:
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel or x_key.replace("_", " "))
    ax.set_ylabel("share of the uncompressed value")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def summary_line(values, fmt: str = ".3f") -> str:
    """``mean (low–high, n seeds)`` of per-seed values."""
    s = summarize(values)
    return f"{s.mean:{fmt}} ({s.low:{fmt}}–{s.high:{fmt}}, {s.n} seeds)"
