"""What every training command shares: its arguments, checked when parsed, and the wrapper
that runs it alone or under torchrun.

Every number is checked by its argparse ``type`` (so a bad value is refused before any
data is loaded, in one line naming the flag), ``--out`` is checked and locked by rank 0
before training (:mod:`course_lib.engine.outdir`), and only rank 0 writes the outputs.
"""
from __future__ import annotations

import argparse
import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from course_lib.engine.device import DEVICES, PRECISIONS
from course_lib.engine.distributed import Distributed, init_from_env, shutdown
from course_lib.engine.outdir import RunLock, check_out_dir
from course_lib.fileio import atomic_path, atomic_write_text
from course_lib.presets import PRESETS

MAX_SEED = 2**32 - 1
MAX_STEPS = 10_000_000
OUTPUT_NAMES = ("checkpoint.pt", "samples.png", "history.json", "summary.json")


def whole_number(flag: str, low: int, high: int, multiple_of: int = 1) -> Callable[[str], int]:
    """An argparse type for ``flag``: an integer in [low, high], a multiple of
    ``multiple_of`` (``1e4`` is accepted as 10000). argparse names the flag in its message."""
    what = f" (a multiple of {multiple_of})" if multiple_of > 1 else ""

    def parse(text: str) -> int:
        try:
            value = float(text)
            ok = math.isfinite(value) and value == int(value) and int(value) % multiple_of == 0
        except ValueError:
            ok = False
        if not ok or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number{what} from {low:,} to {high:,}, got {text!r}")
        return int(value)

    parse.__name__ = flag.lstrip("-").replace("-", "_")
    return parse


def fraction(text: str) -> float:
    """An argparse type: a share of the data in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (e.g. 0.1 for 10%), got {text!r}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, *, batch_help: str) -> None:
    """--preset, --steps, --batch-size, --seed, --checkpoint-every, --device, --precision,
    --out, --no-resume."""
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="ci, class or full (default: $COURSE_PRESET, else class)")
    parser.add_argument("--steps", type=whole_number("--steps", 1, MAX_STEPS), default=None,
                        help="training steps in all (default: the preset's); more steps than "
                             "a finished run in --out had extend it")
    parser.add_argument("--batch-size", type=whole_number("--batch-size", 1, 4096), default=None,
                        help=batch_help)
    parser.add_argument("--seed", type=whole_number("--seed", 0, MAX_SEED), default=0)
    parser.add_argument("--checkpoint-every", type=whole_number("--checkpoint-every", 1, MAX_STEPS),
                        default=None, help="steps between checkpoints (default: a fifth of the run)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto picks CUDA, then MPS, then the CPU (and says which)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 (or fp16) autocast on CUDA, fp32 elsewhere")
    parser.add_argument("--out", required=True,
                        help="output folder (a checkpoint there is resumed)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over even if --out has a checkpoint (it is replaced)")


def _device_type(device: str) -> str:
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def _preflight(out: str, data_dir: str | None) -> tuple[Path, str | None]:
    """Rank 0's checks of --out before anything is trained: (folder, error or None)."""
    try:
        folder = check_out_dir(out, data=data_dir)
        for name in OUTPUT_NAMES:
            if (folder / name).is_dir():
                raise ValueError(f"{folder / name} is a folder, where this run writes its "
                                 f"{name}: move it away or choose another --out")
        return folder, None
    except ValueError as exc:
        return Path(str(out) or "."), str(exc)


def run_training(args, train: Callable[[Distributed, Path], int], *,
                 data_dir: str | None = None) -> int:
    """Run ``train(dist, out)`` alone or as one rank under torchrun.

    Before it: join the process group (if under torchrun), and on rank 0 check ``--out``
    and take its lock; every rank stops with rank 0's one-line error if that fails.
    """
    import os

    from course_lib.engine.device import resolve_device

    resolve_device(args.device, int(os.environ.get("LOCAL_RANK", 0)))  # --device cuda without CUDA: now
    dist = init_from_env(_device_type(args.device))
    with ExitStack() as stack:
        stack.callback(shutdown, dist)
        error = None
        out = Path(args.out)
        if dist.is_main:
            out, error = _preflight(args.out, data_dir)
            if error is None:
                try:
                    stack.enter_context(RunLock(out))
                except ValueError as exc:
                    error = str(exc)
        dist.agree(error)
        return train(dist, out)


def write_outputs(out: Path, *, samples, history: dict, summary: dict) -> None:
    """samples.png (a grid of ``samples`` [N, 3, H, W] in [-1, 1]), history.json and
    summary.json, each written atomically."""
    from PIL import Image

    from course_lib.plotting import image_grid
    from course_lib.report import plain

    with atomic_path(out / "samples.png") as tmp:
        Image.fromarray(image_grid(samples, nrow=8)).save(tmp, format="PNG")
    atomic_write_text(json.dumps(plain(history)), out / "history.json")
    atomic_write_text(json.dumps(plain(summary), indent=2) + "\n", out / "summary.json")
