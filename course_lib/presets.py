"""Presets: how big every long step is.

``ci`` runs in seconds (the tests), ``class`` in a few minutes on a 2-core laptop CPU,
``full`` at paper scale on a GPU. A notebook reads its preset from its tagged
``parameters`` cell; the ``COURSE_PRESET`` environment variable overrides it.

Budget for ``class``: a DCGAN D+G step (ngf 32, batch 64, 32x32) takes about 130 ms on a
2-core CPU, so 5 minutes hold about 2,300 steps in all. The comparison runs that notebooks
02-03 show from a recording (``compare_steps``) are longer: D's memorisation of 200 images
only starts to hurt G after about 2,500 steps, and the recording is made ahead of time.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

ENV_VAR = "COURSE_PRESET"


@dataclass(frozen=True)
class Preset:
    name: str
    # DCGAN on the 32x32 (CIFAR) track
    gan_steps: int          # training steps of one run trained live in a notebook
    compare_steps: int      # steps of each recorded comparison run (data fraction x strategy)
    batch_size: int
    ngf: int                # generator width
    ndf: int                # discriminator width
    eval_every: int         # steps between monitor/metric evaluations
    n_eval: int             # samples used for FID/KID and the monitor
    n_seeds: int            # seeds averaged when comparing runs
    # few-shot track (64x64)
    fewshot_size: int
    fewshot_steps: int
    pretrain_steps: int     # steps of the model that few-shot runs fine-tune from
    # anything that wants a small number of repeats (benchmarks, sweeps)
    repeats: int


PRESETS: dict[str, Preset] = {
    "ci": Preset(
        name="ci", gan_steps=20, compare_steps=20, batch_size=16, ngf=8, ndf=8, eval_every=10,
        n_eval=64, n_seeds=1, fewshot_size=32, fewshot_steps=10, pretrain_steps=10, repeats=1,
    ),
    "class": Preset(
        name="class", gan_steps=1000, compare_steps=4000, batch_size=64, ngf=32, ndf=32,
        eval_every=100, n_eval=500, n_seeds=3, fewshot_size=64, fewshot_steps=300, pretrain_steps=300,
        repeats=3,
    ),
    "full": Preset(
        name="full", gan_steps=100_000, compare_steps=100_000, batch_size=64, ngf=64, ndf=64,
        eval_every=5_000, n_eval=10_000, n_seeds=3, fewshot_size=256, fewshot_steps=20_000,
        pretrain_steps=100_000, repeats=5,
    ),
}


def get_preset(name: str | Preset | None = None) -> Preset:
    """The preset to use: ``$COURSE_PRESET`` if set, else ``name``, else ``class``.

    The environment variable wins so that the tests (and ``make workbook PRESET=ci``)
    can run every notebook small without editing its parameters cell.
    """
    chosen = os.environ.get(ENV_VAR) or name or "class"
    if isinstance(chosen, Preset):
        return chosen
    try:
        return PRESETS[chosen]
    except KeyError:
        raise ValueError(
            f"unknown preset {chosen!r}: choose one of {', '.join(PRESETS)} "
            f"(check the notebook's parameters cell or ${ENV_VAR})"
        ) from None


def with_overrides(preset: Preset, **changes) -> Preset:
    """A copy of ``preset`` with some fields changed (e.g. more steps for one run)."""
    return dataclasses.replace(preset, **changes)
