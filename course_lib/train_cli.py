"""``python -m course_lib train-gan``: train a DCGAN from the command line.

    python -m course_lib train-gan --data cifar10 --fraction 0.1 --augment diffaugment \\
        --policy color,translation,cutout --preset class --out runs/cifar10-10pct

``--data`` takes ``cifar10``, a registry name of a few-shot set, or any folder of images.
Writes ``checkpoint.pt`` (resumable: run the same command again to continue),
``samples.png``, ``history.json`` and ``summary.json`` into ``--out``.
"""
from __future__ import annotations

import json
from pathlib import Path

from course_lib.presets import PRESETS, get_preset
from course_lib.train import STRATEGIES, TrainConfig, train_gan


def add_arguments(parser):
    parser.add_argument("--data", default="cifar10", help="cifar10, a few-shot set name, or a folder of images")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the training set to use (CIFAR track)")
    parser.add_argument("--augment", choices=STRATEGIES, default="diffaugment")
    parser.add_argument("--policy", default="color,translation,cutout", help="DiffAugment policy")
    parser.add_argument("--preset", choices=list(PRESETS), default=None, help="ci, class or full (default: $COURSE_PRESET or class)")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64), help="image size")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    parser.add_argument("--loss", default="hinge", choices=("hinge", "nonsaturating", "lsgan"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    parser.add_argument("--out", required=True, help="output folder (a checkpoint there is resumed)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")


def run(args) -> int:
    from course_lib.data import get_dataset
    from course_lib.plotting import image_grid
    from course_lib.report import _plain

    preset = get_preset(args.preset)
    if not 0 < args.fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {args.fraction}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the checkpoint and samples")
    dataset = get_dataset(args.data, size=args.size, fraction=args.fraction, seed=args.seed)
    summary = getattr(dataset, "summary", None)
    print(summary() if callable(summary) else f"data: {len(dataset)} images")
    print(f"source: {dataset.source}")
    steps = preset.gan_steps if args.steps is None else args.steps  # --steps 0 is an error, not "default"
    config = TrainConfig.from_preset(
        preset, steps=steps, image_size=args.size, augment=args.augment, policy=args.policy,
        loss=args.loss, seed=args.seed,
        checkpoint_every=args.checkpoint_every or max(1, min(1000, steps // 5)),
    )
    result = train_gan(dataset, config, out_dir=out, resume=not args.no_resume)

    from PIL import Image
    Image.fromarray(image_grid(result.sample(64), nrow=8)).save(out / "samples.png")
    (out / "history.json").write_text(json.dumps(_plain(result.history)))
    final = {k: v[-1] for k, v in result.history.items() if v and k not in ("step", "eval_step")}
    summary = {"preset": preset.name, "data": args.data, "data_source": dataset.source,
               "images": len(dataset), "config": config.as_dict(), "final": _plain(final)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"done: {steps} steps; samples in {out / 'samples.png'}")
    for key, value in final.items():
        print(f"  {key:<12} {value:.4f}")
    return 0
