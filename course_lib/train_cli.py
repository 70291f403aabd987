"""``python -m course_lib train-gan``: train a DCGAN from the command line.

    python -m course_lib train-gan --data cifar10 --fraction 0.1 --augment diffaugment \\
        --policy color,translation,cutout --preset class --out runs/cifar10-10pct

``--data`` takes ``cifar10``, a registry name of a few-shot set, or any folder of images.
Writes ``checkpoint.pt`` (resumable: run the same command again to continue; with more
``--steps`` a finished run is extended), ``samples.png``, ``history.json`` and
``summary.json`` into ``--out``. The same command runs under
``torchrun --nproc_per_node=N`` (see README.md): ``--batch-size`` is then the global batch.
"""
from __future__ import annotations

import argparse

from course_lib.engine.cli import add_common_arguments, fraction, run_training, write_outputs
from course_lib.presets import get_preset
from course_lib.train import STRATEGIES, TrainConfig, train_gan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="cifar10", help="cifar10, a few-shot set name, or a folder of images")
    parser.add_argument("--fraction", type=fraction, default=1.0,
                        help="fraction of the training set to use (CIFAR track)")
    parser.add_argument("--augment", choices=STRATEGIES, default="diffaugment")
    parser.add_argument("--policy", default="color,translation,cutout", help="DiffAugment policy")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64), help="image size")
    parser.add_argument("--loss", default="hinge", choices=("hinge", "nonsaturating", "lsgan"))
    add_common_arguments(parser, batch_help="global batch size (default: the preset's); under "
                                            "torchrun it is split evenly over the processes")


def run(args) -> int:
    from pathlib import Path

    from course_lib.data import get_dataset
    from course_lib.diffaugment import parse_policy

    preset = get_preset(args.preset)
    parse_policy(args.policy)                      # a bad policy fails now, not after loading
    data_dir = args.data if Path(args.data).expanduser().is_dir() else None

    def train(dist, out) -> int:
        say = print if dist.is_main else (lambda *a, **k: None)
        dataset = get_dataset(args.data, size=args.size, fraction=args.fraction, seed=args.seed)
        summary = getattr(dataset, "summary", None)
        say(summary() if callable(summary) else f"data: {len(dataset)} images")
        say(f"source: {dataset.source}")
        steps = args.steps or preset.cifar.steps
        config = TrainConfig.from_preset(
            preset, steps=steps, image_size=args.size, augment=args.augment, policy=args.policy,
            loss=args.loss, seed=args.seed,
            batch_size=args.batch_size or preset.cifar.batch_size,
            checkpoint_every=args.checkpoint_every or max(1, min(1000, steps // 5)),
        )
        say(f"preset {preset.name}: {steps} steps, batch {config.batch_size}"
            + (f" ({config.batch_size // dist.world_size} per process)" if dist.enabled else ""))
        result = train_gan(dataset, config, out_dir=out, resume=not args.no_resume,
                           device=args.device, precision=args.precision, preset=preset.name)
        if not dist.is_main:
            return 0
        final = {k: v[-1] for k, v in result.history.items() if v and k not in ("step", "eval_step")}
        write_outputs(out, samples=result.sample(64), history=result.history, summary={
            "preset": preset.name, "data": args.data, "data_source": dataset.source,
            "images": len(dataset), "world_size": dist.world_size, "config": config.as_dict(),
            "final": final})
        print(f"done: {steps} steps; samples in {out / 'samples.png'}")
        for key, value in final.items():
            print(f"  {key:<12} {value:.4f}")
        return 0

    return run_training(args, train, data_dir=data_dir)
