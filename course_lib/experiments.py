"""The standard runs the notebooks compare, and their recordings.

Notebooks 02 and 03 compare many training runs (data fractions x augmentation
strategies x seeds): far more than fit in a 5-minute class. They show *recorded* runs —
curves and sample grids made by this module with the class preset and shipped in
``course_lib/recorded/`` — and re-run one live on demand. Recreate the recordings with::

    python -m course_lib.experiments --preset class

Every run also goes through the model zoo, so a re-run of a notebook is fast.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib import zoo
from course_lib.metrics import default_extractor, frechet_distance
from course_lib.presets import Preset, get_preset
from course_lib.train import TrainConfig, TrainResult, fixed_latents, stack_images, train_gan

RECORDED_DIR = Path(__file__).parent / "recorded"
FRACTIONS = (1.0, 0.2, 0.1)
STRATEGY_LABELS = {
    "none": "no augmentation",
    "real_only": "augment reals only",
    "d_step_only": "augment in D step only",
    "diffaugment": "DiffAugment",
}


@dataclass
class Reference:
    """Feature statistics of real images that generated samples are compared with."""
    extractor: object
    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @property
    def label(self) -> str:
        return self.extractor.name

    def distance(self, images: torch.Tensor) -> float:
        """Fréchet distance between ``images`` [N, 3, H, W] and the reference."""
        mu, sigma = feature_stats(self.extractor, images)
        return float(frechet_distance(mu, sigma, self.mu, self.sigma))


def feature_stats(extractor, images: torch.Tensor, batch_size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    feats = np.concatenate([extractor(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def cifar_reference(preset: Preset, extractor=None) -> Reference:
    """Statistics of ``preset.n_eval`` test images of the CIFAR track (never trained on)."""
    from course_lib.data import cifar10

    extractor = extractor or default_extractor()
    images = stack_images(cifar10(split="test"), limit=preset.n_eval)
    mu, sigma = feature_stats(extractor, images)
    return Reference(extractor, mu, sigma, len(images))


def fd_eval_fn(reference: Reference, n_samples: int, seed: int = 777):
    """An ``eval_fn`` for :func:`train_gan` that adds ``fd`` of G's fixed samples."""
    z = None

    def evaluate(G) -> dict:
        nonlocal z
        if z is None:
            z = fixed_latents(n_samples, G.z_dim, seed)
        with torch.no_grad():
            fakes = torch.cat([G(z[i:i + 250]) for i in range(0, n_samples, 250)])
        return {"fd": reference.distance(fakes)}

    return evaluate


def run_name(fraction: float, augment: str) -> str:
    return f"dcgan-cifar-{round(fraction * 100)}pct-{augment}"


def cifar_run(fraction: float, augment: str, seed: int = 0, preset: str | Preset | None = None,
              policy: str = "color,translation,cutout", reference: Reference | None = None,
              progress: bool = True, steps: int | None = None) -> TrainResult:
    """Train (or load from the zoo) a DCGAN on ``fraction`` of the CIFAR track for ``steps``
    steps (default: the preset's ``compare_steps``, the length of the recorded runs).

    The history holds D's accuracy on training vs held-out reals, r_t and the Fréchet
    distance to the test images, evaluated 20 times over the run (or every
    ``preset.eval_every`` steps, if that is rarer).
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    steps = steps or preset.compare_steps
    config = TrainConfig.from_preset(preset, augment=augment, policy=policy, seed=seed, steps=steps,
                                     eval_every=max(preset.eval_every, steps // 20))

    def train(p: Preset, s: int) -> dict:
        ref = reference or cifar_reference(p)
        data = cifar10(fraction=fraction, split="train", seed=s)
        heldout = cifar10(split="heldout")
        started = time.perf_counter()
        result = train_gan(data, config, heldout=heldout, eval_fn=fd_eval_fn(ref, p.n_eval),
                           progress=progress)
        payload = result.to_payload()
        payload.update(feature_extractor=ref.label, n_train=len(data),
                       seconds=round(time.perf_counter() - started, 1))
        return payload

    payload = zoo.load_or_train(run_name(fraction, augment), train, preset=preset, seed=seed,
                                config={**config.as_dict(), "fraction": fraction})
    result = TrainResult.from_payload(payload)
    result.feature_extractor = payload.get("feature_extractor", "")
    result.n_train = payload.get("n_train")
    result.seconds = payload.get("seconds")  # training time, wherever it was trained
    return result


# --- recordings shipped with the library ----------------------------------------------

def _thin_losses(history: dict, every: int = 10) -> dict:
    """Keep every ``every``-th per-step loss (the recordings stay small); evaluations stay whole."""
    return {k: (v[::every] if k in ("step", "loss_d", "loss_g") else v) for k, v in history.items()}


def _grid_u8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def recording_plan(preset: Preset, strategies_at_10pct=("real_only", "d_step_only")) -> list[tuple]:
    """(fraction, strategy, seed) of every recorded run, the most important first."""
    plan = [(0.1, a, s) for s in range(preset.n_seeds) for a in ("none", "diffaugment")]
    plan += [(0.1, a, 0) for a in strategies_at_10pct if a not in ("none", "diffaugment")]
    plan += [(f, a, 0) for f in FRACTIONS if f != 0.1 for a in ("none", "diffaugment")]
    return plan


def record(preset: str | Preset = "class", out_dir: str | Path | None = None, n_samples: int = 16,
           strategies_at_10pct=("none", "real_only", "d_step_only", "diffaugment")) -> Path:
    """Run the comparison grid and save its curves and samples to ``out_dir``.

    The grid: fractions {100%, 20%, 10%} x {none, diffaugment}, with ``preset.n_seeds``
    seeds at 10% (where the comparison is closest and matters most) and seed 0 elsewhere,
    plus the two failing strategies at 10% (seed 0). Writes ``runs.json`` (configs,
    histories, final figures) and ``samples.npz`` (uint8 [n_samples, 3, H, W] of each
    run's fixed latents at the end).
    """
    preset = get_preset(preset)
    out_dir = Path(out_dir) if out_dir else RECORDED_DIR / preset.name
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = cifar_reference(preset)
    plan = recording_plan(preset, strategies_at_10pct)
    runs, samples = [], {}
    for fraction, augment, seed in plan:
        result = cifar_run(fraction, augment, seed, preset, reference=reference)
        key = f"{run_name(fraction, augment)}-s{seed}"
        runs.append({
            "key": key, "fraction": fraction, "augment": augment, "seed": seed,
            "n_train": result.n_train, "history": _thin_losses(result.history),
            "final": {k: v[-1] for k, v in result.history.items() if v and k != "eval_step"},
            "seconds": result.seconds,  # None for runs trained before the zoo kept the time
        })
        samples[key] = _grid_u8(result.sample(n_samples))
        print(f"{key}: fd {runs[-1]['final'].get('fd', float('nan')):.2f}, "
              f"gap {runs[-1]['final'].get('gap', float('nan')):.3f}")
    from course_lib.data import cifar10
    meta = {"preset": preset.name, "feature_extractor": reference.label,
            "data_source": cifar10(split="test").source, "runs": runs}
    from course_lib.fileio import atomic_path
    with atomic_path(out_dir / "runs.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    with atomic_path(out_dir / "samples.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **samples)
    return out_dir


@dataclass
class Recording:
    """Recorded runs: ``runs`` (list of dicts as written by :func:`record`) and samples."""
    preset: str
    feature_extractor: str
    data_source: str
    runs: list
    samples: dict

    def find(self, fraction: float, augment: str, seed: int = 0) -> dict:
        for run in self.runs:
            if abs(run["fraction"] - fraction) < 1e-9 and run["augment"] == augment and run["seed"] == seed:
                return run
        raise KeyError(f"no recorded run with fraction={fraction}, augment={augment!r}, seed={seed}")

    def images(self, run: dict) -> torch.Tensor:
        """The run's final samples as floats in [-1, 1]."""
        return torch.from_numpy(self.samples[run["key"]]).float() / 127.5 - 1

    def mean_final(self, fraction: float, augment: str, key: str) -> float:
        values = [r["final"][key] for r in self.runs
                  if abs(r["fraction"] - fraction) < 1e-9 and r["augment"] == augment]
        return float(np.mean(values))


def load_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    directory = Path(directory) if directory else RECORDED_DIR / preset
    path = directory / "runs.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded runs in {directory}: make them with "
                                f"`python -m course_lib.experiments --preset {preset}`")
    meta = json.loads(path.read_text())
    with np.load(directory / "samples.npz") as npz:
        samples = {k: npz[k] for k in npz.files}
    return Recording(meta["preset"], meta["feature_extractor"], meta["data_source"], meta["runs"], samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=record.__doc__.splitlines()[0])
    parser.add_argument("--preset", default="class")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    print(f"recorded runs written to {record(args.preset, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
