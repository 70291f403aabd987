"""``python -m course_lib <command>``: the command line of the workbook.

Each command lives in the module of its idea and provides ``add_arguments(parser)`` and
``run(args) -> int``. Add a command by adding a line to ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "data": ("course_lib.data.cli", "list, fetch and verify datasets and weights"),
    "train-gan": ("course_lib.train_cli", "train a DCGAN (optionally with DiffAugment)"),
    "train-cyclegan": ("course_lib.cyclegan_cli", "train a CycleGAN (unpaired A <-> B translation)"),
    "compress-cyclegan": ("course_lib.gancomp_cli",
                          "GAN Compression of a CycleGAN: distil, supernet, search, export, "
                          "fine-tune, evaluate"),
    "zoo": ("course_lib.zoo_cli", "list or clear the cache of trained models"),
    "pool": ("course_lib.pool", "pool the runs a class handed in into one recording (a jigsaw)"),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the flag, what was wrong, where to look."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m course_lib",
        description="Efficient GANs — a hands-on workbook. Library commands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(command)
        command.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # --help, or an argument refused by its check
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        # Errors the user can act on are raised with a full sentence: show it, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 1
