"""The standard runs the CIFAR track compares (notebooks 01-03), and their recording.

Notebooks 02 and 03 compare many training runs (data fractions x augmentation
strategies x seeds): far more than fit in a 5-minute class. They show *recorded* runs —
curves and sample grids made by this module with the class preset and shipped in
``course_lib/recorded/`` (the ``cifar`` track of :mod:`course_lib.recording`) — and
re-run one live on demand. Recreate the recordings with::

    python -m course_lib.experiments --preset class

Every run also goes through the model zoo, so a re-run of a notebook is fast.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from course_lib import recording, zoo
from course_lib.metrics import Reference
from course_lib.presets import Preset, get_preset
from course_lib.recording import RECORDED_DIR, Recording, record_runs
from course_lib.train import TrainConfig, TrainResult, fixed_latents, generate, stack_images, train_gan

FRACTIONS = (1.0, 0.2, 0.1)
STRATEGY_LABELS = {
    "none": "no augmentation",
    "real_only": "augment reals only",
    "d_step_only": "augment in D step only",
    "diffaugment": "DiffAugment",
}
# Bump when the training of these runs changes, so their zoo entries are retrained.
# 2: the monitor's reals are drawn across the sets (not the first 256); r_t_batch is logged.
RECIPE = 2

__all__ = ["FRACTIONS", "STRATEGY_LABELS", "RECORDED_DIR", "Recording", "Reference",
           "cifar_reference", "fd_eval_fn", "run_name", "cifar_run", "recording_plan", "record",
           "load_recording"]


def cifar_reference(preset: Preset, extractor=None) -> Reference:
    """Statistics of the first ``preset.cifar.n_eval`` test images of the CIFAR track (never
    trained on; the recordings were measured against these)."""
    from course_lib.data import cifar10

    return Reference.of(stack_images(cifar10(split="test"), limit=preset.cifar.n_eval), extractor)


def fd_eval_fn(reference: Reference, n_samples: int, seed: int = 777):
    """An ``eval_fn`` for :func:`train_gan` that adds ``fd`` of G's fixed samples."""
    def evaluate(G) -> dict:
        return {"fd": reference.distance(generate(G, fixed_latents(n_samples, G.z_dim, seed)))}

    return evaluate


def run_name(fraction: float, augment: str) -> str:
    return f"dcgan-cifar-{round(fraction * 100)}pct-{augment}"


def cifar_run(fraction: float, augment: str, seed: int = 0, preset: str | Preset | None = None,
              policy: str = "color,translation,cutout", reference: Reference | None = None,
              progress: bool = True, steps: int | None = None) -> TrainResult:
    """Train (or load from the zoo) a DCGAN on ``fraction`` of the CIFAR track for ``steps``
    steps (default: the preset's ``cifar.compare_steps``, the length of the recorded runs).

    The history holds D's accuracy on training vs held-out reals, r_t and the Fréchet
    distance to the test images, evaluated 20 times over the run (or every
    ``preset.cifar.eval_every`` steps, if that is rarer).
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    steps = steps or preset.cifar.compare_steps
    config = TrainConfig.from_preset(preset, augment=augment, policy=policy, seed=seed, steps=steps,
                                     eval_every=max(preset.cifar.eval_every, steps // 20))

    def train(p: Preset, s: int) -> dict:
        ref = reference or cifar_reference(p)
        data = cifar10(fraction=fraction, split="train", seed=s)
        heldout = cifar10(split="heldout")
        started = time.perf_counter()
        result = train_gan(data, config, heldout=heldout, eval_fn=fd_eval_fn(ref, p.cifar.n_eval),
                           progress=progress, preset=p.name)
        payload = result.to_payload()
        payload.update(feature_extractor=ref.label, n_train=len(data),
                       seconds=round(time.perf_counter() - started, 1))
        return payload

    payload = zoo.load_or_train(run_name(fraction, augment), train, preset=preset, seed=seed,
                                config={**config.as_dict(), "fraction": fraction}, recipe=RECIPE)
    return TrainResult.from_payload(payload)


def recording_plan(preset: Preset, strategies_at_10pct=("real_only", "d_step_only")) -> list[tuple]:
    """(fraction, strategy, seed) of every recorded run, the most important first."""
    plan = [(0.1, a, s) for s in range(preset.cifar.n_seeds) for a in ("none", "diffaugment")]
    plan += [(0.1, a, 0) for a in strategies_at_10pct if a not in ("none", "diffaugment")]
    plan += [(f, a, 0) for f in FRACTIONS if f != 0.1 for a in ("none", "diffaugment")]
    return plan


def record(preset: str | Preset = "class", out_dir: str | Path | None = None, n_samples: int = 16,
           strategies_at_10pct=("none", "real_only", "d_step_only", "diffaugment")) -> Path:
    """Run the comparison grid and save its curves and samples to ``out_dir``.

    The grid: fractions {100%, 20%, 10%} x {none, diffaugment}, with ``preset.cifar.n_seeds``
    seeds at 10% (where the comparison is closest and matters most) and seed 0 elsewhere,
    plus the two failing strategies at 10% (seed 0). Writes ``runs.json`` (configs,
    histories, final figures) and ``samples.npz`` (uint8 [n_samples, 3, H, W] of each
    run's fixed latents at the end), through :func:`course_lib.recording.record_runs`.
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    reference = cifar_reference(preset)
    plan = [{"fraction": f, "augment": a, "seed": s}
            for f, a, s in recording_plan(preset, strategies_at_10pct)]

    def train(fraction, augment, seed):
        return cifar_run(fraction, augment, seed, preset, reference=reference)

    def describe(run, final):
        return (f"{run['key']}: fd {final.get('fd', float('nan')):.2f}, "
                f"gap {final.get('gap', float('nan')):.3f}")

    rec = record_runs("cifar", plan, train, preset=preset.name,
                      feature_extractor=reference.label,
                      data_source=cifar10(split="test").source, out_dir=out_dir,
                      n_samples=n_samples, describe=describe)
    return Path(out_dir) if out_dir else RECORDED_DIR / rec.preset


def load_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    """The CIFAR-track recording (``course_lib/recorded/<preset>/runs.json``)."""
    return recording.load_recording("cifar", preset, directory)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=record.__doc__.splitlines()[0])
    parser.add_argument("--preset", default="class")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    print(f"recorded runs written to {record(args.preset, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
