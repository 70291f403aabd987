"""``python -m course_lib compress-cyclegan``: GAN Compression of a CycleGAN generator, end to end.

    python -m course_lib compress-cyclegan --teacher zoo --preset ci --out build/compress

distil -> supernet -> search -> export -> fine-tune -> evaluate
(:mod:`course_lib.gancomp.pipeline`).
``--teacher zoo`` uses the authors' horse2zebra generator on ``--preset full --data
horse2zebra`` when fetched, else the in-course CycleGAN teacher (trained once, then cached
in the zoo); a path uses that generator checkpoint. ``--budget-macs`` (MACs at
1x3x256x256, e.g. ``3e9``) defaults to the teacher's MACs over the preset's ratio.
Writes ``report.json``, ``student.pt`` (the compressed student: fine-tuned when that helped
on the held-out images, else the exported subnet) and ``grid.png``
(rows: test A, teacher, compressed student, 0.25x) into ``--out``. Runs under ``torchrun``
like the other entry points (training and fine-tuning are data-parallel; rank 0 searches,
measures and writes).
"""
from __future__ import annotations

import argparse
import math

from course_lib.engine.device import DEVICES
from course_lib.presets import PRESETS


def budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of MACs such as 3e9, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default="zoo",
                        help="zoo (default) or the path of a generator checkpoint")
    parser.add_argument("--budget-macs", type=budget, default=None,
                        help="MACs budget of the student at 1x3x256x256 (default: teacher / "
                             "the preset's ratio)")
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="ci, class or full (default: $COURSE_PRESET, else class)")
    parser.add_argument("--data", default="embedded",
                        help="embedded (default), horse2zebra (once fetched), or a folder with "
                             "trainA/ trainB/ testA/ testB/")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto picks CUDA, then MPS, then the CPU (and says which)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no-resume", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
    from course_lib.engine.cli import run_training
    from course_lib.gancomp.pipeline import compress_cyclegan

    def work(dist, out) -> int:
        report = compress_cyclegan(teacher=args.teacher, budget_macs=args.budget_macs,
                                   preset=args.preset, data=args.data, device=args.device,
                                   out=out if dist.is_main else None, progress=dist.is_main,
                                   main=dist.is_main)
        if dist.is_main:
            print(f"report: {out / 'report.json'}; student: {out / 'student.pt'}; "
                  f"images: {out / 'grid.png'}")
            print(f"  {report['mac_reduction']:.1f}x fewer MACs, {report['latency_speedup']:.2f}x "
                  f"faster on the CPU, FD {report['fid_teacher']:.3f} (teacher) vs "
                  + (f"{report['fid_student']:.3f} (student, fine-tuned; "
                     f"{report['fid_student_before_finetune']:.3f} before) vs "
                     if report["finetune_kept"] else
                     f"{report['fid_student']:.3f} (student as exported; fine-tuning gave "
                     f"{report['fid_finetuned']:.3f}, not kept) vs ")
                  + f"{report['fid_uniform_quarter']:.3f} (0.25x)")
        return 0

    return run_training(args, work, data_dir=args.data if args.data not in ("embedded", "horse2zebra") else None)
