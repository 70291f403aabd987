"""``python -m course_lib train-cyclegan``: train a CycleGAN (A <-> B) from the command line.

    python -m course_lib train-cyclegan --data embedded --preset class --out runs/cyclegan

``--data`` takes ``embedded`` (the default: natural-colour photo crops -> poster-style
crops, bundled with the course), ``horse2zebra`` (once fetched), or a folder with
``trainA/ trainB/ testA/ testB/``. Writes ``checkpoint.pt`` (resumable; it rebuilds with
``course_lib.engine.load_model``), ``samples.png`` (rows: test A, G_A(test A), test B,
G_B(test B)), ``history.json`` and ``summary.json`` into ``--out``. Every evaluation adds
``fd_a2b``, the Fréchet distance of G_A(test A) to test B; the summary sets it beside the
identity mapping's (test A itself against test B). Runs under ``torchrun`` like train-gan.
"""
from __future__ import annotations

import argparse
import time

from course_lib.engine.cli import add_common_arguments, run_training, whole_number, write_outputs
from course_lib.presets import get_preset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="embedded",
                        help="embedded (default), horse2zebra (once fetched), or a folder with "
                             "trainA/ trainB/ testA/ testB/")
    parser.add_argument("--size", type=whole_number("--size", 32, 1024, multiple_of=4),
                        default=None, help="image size, a multiple of 4 (default: the preset's)")
    add_common_arguments(parser, batch_help="global batch size (default: the preset's, 1 as in "
                                            "the paper); under torchrun a multiple of the "
                                            "number of processes")


def run(args) -> int:
    from pathlib import Path

    import torch

    from course_lib.metrics import Reference
    from course_lib.monitor import spread_subset
    from course_lib.tasks.cyclegan import CycleGANConfig, to_float, train_cyclegan, translate, \
        unpaired_images

    preset = get_preset(args.preset)
    size = args.size or preset.cyclegan.image_size
    data_dir = args.data if Path(args.data).expanduser().is_dir() else None

    def train(dist, out) -> int:
        say = print if dist.is_main else (lambda *a, **k: None)
        a, b, source = unpaired_images(args.data, "train", size)
        test_a, test_b, _ = unpaired_images(args.data, "test", size)
        say(f"data: {source}")
        steps = args.steps or preset.cyclegan.steps
        config = CycleGANConfig.from_preset(
            preset, steps=steps, image_size=size, seed=args.seed,
            batch_size=args.batch_size or preset.cyclegan.batch_size,
            checkpoint_every=args.checkpoint_every or max(1, min(1000, steps // 5)))
        say(f"preset {preset.name}: {steps} steps (learning rate decays after "
            f"{config.decay_start:.0%} of them), "
            f"batch {config.batch_size}, {size}x{size}, ngf {config.ngf}, ndf {config.ndf}, "
            f"{config.n_blocks} residual blocks")
        eval_a = spread_subset(test_a, preset.cyclegan.n_eval)
        reference = Reference.of(to_float(test_b)) if dist.is_main else None
        started = time.perf_counter()
        result = train_cyclegan(a, b, config, eval_a=eval_a, reference=reference, out_dir=out,
                                resume=not args.no_resume, device=args.device,
                                precision=args.precision, preset=preset.name, data_source=source)
        seconds = time.perf_counter() - started
        if not dist.is_main:
            return 0
        fd = reference.distance(translate(result.G_A, eval_a))
        fd_identity = reference.distance(to_float(eval_a))
        show_a, show_b = spread_subset(test_a, 8), spread_subset(test_b, 8)
        grid = torch.cat([to_float(show_a), result.translate(show_a, "A2B"),
                          to_float(show_b), result.translate(show_b, "B2A")])
        final = {k: v[-1] for k, v in result.history.items() if v and k not in ("step", "eval_step")}
        write_outputs(out, samples=grid, history=result.history, summary={
            "preset": preset.name, "data": args.data, "data_source": source,
            "images": {"trainA": len(a), "trainB": len(b), "testA": len(test_a), "testB": len(test_b)},
            "world_size": dist.world_size, "config": config.as_dict(), "final": final,
            "fd_a2b": fd, "fd_identity": fd_identity, "n_eval": len(eval_a),
            "feature_extractor": reference.label, "seconds_this_call": round(seconds, 1)})
        print(f"done: {steps} steps in {seconds:.0f} s; samples in {out / 'samples.png'}")
        print(f"  FD of G_A(test A) to test B: {fd:.3f}; of test A itself (the identity mapping): "
              f"{fd_identity:.3f}  [{reference.label}, {len(eval_a)} images]")
        return 0

    return run_training(args, train, data_dir=data_dir)
