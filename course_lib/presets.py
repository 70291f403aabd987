"""Presets: how big every long step is.

``ci`` runs in seconds (the tests), ``class`` in a few minutes on a 2-core laptop CPU,
``full`` at paper scale on a GPU. A preset is a name plus one small frozen dataclass per
track of the course (the CIFAR-track DCGAN, few-shot faces, CycleGAN, ...); each preset
is written out below as one table, so the whole ``class`` preset reads in one place.

Which preset applies:

- an explicit choice wins: ``get_preset("full")``, a :class:`Preset` object, or
  ``--preset full`` on the command line;
- ``$COURSE_PRESET`` fills in only where nothing was chosen: ``get_preset(None)``, and a
  notebook's parameters cell through :func:`notebook_preset` (the way papermill injects
  parameters), which is how ``make workbook PRESET=ci`` and the tests run every
  notebook small.

Budget for ``class``: a DCGAN D+G step (ngf 32, batch 64, 32x32) takes about 130 ms on a
2-core CPU, so 5 minutes hold about 2,300 steps in all. The comparison runs that notebooks
02-03 show from a recording (``cifar.compare_steps``) are longer: D's memorisation of 200
images only starts to hurt G after about 2,500 steps, and the recording is made ahead of
time.

Adding a track (``anycost`` is next): write its
settings dataclass here, add a field to :class:`Preset`, and one row to each table.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

ENV_VAR = "COURSE_PRESET"


@dataclass(frozen=True)
class CifarSettings:
    """The DCGAN on the 32x32 CIFAR track (notebooks 01-03)."""
    steps: int              # training steps of one run trained live in a notebook
    compare_steps: int      # steps of each recorded comparison run (data fraction x strategy)
    batch_size: int
    ngf: int                # generator width
    ndf: int                # discriminator width
    eval_every: int         # steps between monitor/metric evaluations
    n_eval: int             # samples used for FD/KID and the monitor
    n_seeds: int            # seeds averaged when comparing runs


@dataclass(frozen=True)
class FewShotSettings:
    """How the few-shot runs (and the model they fine-tune from) are trained (notebook 04).

    Measured on the class preset (100 embedded faces, 64x64, width 16, batch 32): at lr
    2e-4 a run of 300 steps was still noise, at 5e-4 faces appear within 400 steps; an
    EMA generator (0.99) came out washed-out (its BatchNorm statistics are copied from G,
    which has moved on), so few-shot runs sample G itself; and cutout slowed learning at
    this budget, so the policy is ``color,translation``. Runs last 800 steps, with
    precision, recall, density and coverage at every evaluation (the plain GAN's narrow
    samples, which its FD misses, show as low recall). The
    pretrained model (4,000 steps, 71 passes over the CIFAR track) ships with the
    recording, so a notebook never trains it live.
    """
    image_size: int             # 32 or 64 (the course's DCGAN sizes)
    steps: int                  # steps of each few-shot run
    pretrain_steps: int         # steps of the pretrained model
    batch_size: int
    width: int                  # ngf = ndf
    lr_g: float
    lr_d: float
    lr_finetune: float          # learning rate (G and D) when fine-tuning
    ema: float | None           # EMA decay of G; None: sample G itself
    freeze_d_layers: int        # FreezeD: D's conv layers kept fixed when fine-tuning
    policy: str                 # DiffAugment policy
    loss: str
    n_eval: int                 # generated samples for FD/KID
    eval_every: int
    n_seeds: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CycleGANSettings:
    """Unpaired translation A -> B with CycleGAN (Zhu et al., ICCV 2017).

    The losses and optimiser are the paper's at every preset (LSGAN, cycle weight 10,
    identity weight 0.5, an image pool of 50, Adam 2e-4 with beta1 0.5, constant LR then
    a linear decay to 0); presets change only the size. ``full`` is the paper's
    horse2zebra run: 256x256, batch 1, 200 epochs of the 1,334 B images (100 constant +
    100 decaying).
    """
    image_size: int
    steps: int
    decay_start: float      # share of the run with a constant LR; then it decays linearly to 0
    batch_size: int
    ngf: int                # generator width (64 in the paper)
    ndf: int                # discriminator width (64 in the paper)
    n_blocks: int           # residual blocks in G (9 at 256x256, 6 at 128x128 in the paper)
    n_layers_d: int         # PatchGAN depth: 3 gives the 70x70 receptive field
    eval_every: int
    n_eval: int             # test images translated for the FD


@dataclass(frozen=True)
class PTQSettings:
    """Post-training quantization and pruning of a trained generator (notebook 09).

    Nothing is trained here (the DCGAN is notebook 01's, from the zoo), so a preset sets
    how much is *measured*: samples per evaluation, how many latent sets (each one a
    "seed" for the verdicts), which bit widths and sparsities the curves visit, and how
    often each latency is timed. Latency runs on ``latency_threads`` (1: two threads on
    a shared 2-core machine made the ratios noise).
    """
    n_samples: int              # generated samples per evaluation (FD, precision/recall, ...)
    n_real: int                 # held-out real images the samples are compared with
    n_seeds: int                # latent sets per setting (the spread behind every verdict)
    bits: tuple                 # weight bit widths of the quantization curve (32 = float)
    sparsities: tuple           # sparsities of the pruning curve
    latency_repeats: int        # timed calls per model (medians of interleaved runs)
    latency_threads: int
    calibration_batches: int    # input batches that set the int8 activation ranges
    paper_scale: bool           # also time the paper-size CycleGAN teacher and student


@dataclass(frozen=True)
class GanCompSettings:
    """GAN Compression on the CycleGAN track (notebooks 05-07, ``compress-cyclegan``).

    The teacher is a CycleGAN A -> B generator of the official layout (``ResnetGenerator``)
    trained in-course at ``teacher_ngf``/``teacher_blocks`` (``full``: the authors'
    horse2zebra generator when fetched). Students are mobile-ResNet generators distilled
    from it; the supernet has the teacher's ngf and blocks, with GAN Compression's width
    choices {64, 48, 32, 24, 16} scaled to that ngf. MACs and latency are always measured
    at 1x3x256x256, as the paper reports them, whatever size the models were trained at.
    """
    image_size: int             # training and evaluation images (square)
    teacher_ngf: int
    teacher_blocks: int
    teacher_steps: int          # CycleGAN steps of the in-course teacher
    student_widths: tuple       # the fixed student of notebook 05 (8 widths, ngf units)
    distill_steps: int          # steps of each fixed-width student (distilled or not)
    supernet_steps: int         # steps of the once-for-all supernet
    finetune_steps: int         # steps distilling the exported subnet further, from its weights
    batch_size: int
    sampling: str               # supernet config sampling: "random" (GAN Compression) or "sandwich"
    holdout: int                # training A images held out to score search candidates
    population: int             # evolutionary search (GAN Compression: 100, 25, 50, 50)
    parents: int
    mutations: int
    crossovers: int
    generations: int
    budget_ratio: float         # default budget: teacher MACs / this
    pareto_ratios: tuple        # budgets (teacher MACs / ratio) searched for the Pareto front
    n_eval: int                 # test A images translated for the final FD
    n_seeds: int                # seeds of the compared fixed-width students
    latency_threads: int
    latency_repeats: int


@dataclass(frozen=True)
class Preset:
    name: str
    cifar: CifarSettings
    fewshot: FewShotSettings
    cyclegan: CycleGANSettings
    ptq: PTQSettings
    gancomp: GanCompSettings
    repeats: int            # anything that wants a small number of repeats (benchmarks, sweeps)
    # anycost: added here by its track


_FEWSHOT_COMMON = dict(lr_g=5e-4, lr_d=5e-4, lr_finetune=5e-4, ema=None, freeze_d_layers=0,
                       policy="color,translation", loss="hinge")

PRESETS: dict[str, Preset] = {
    "ci": Preset(
        name="ci",
        cifar=CifarSettings(steps=20, compare_steps=20, batch_size=16, ngf=8, ndf=8,
                            eval_every=10, n_eval=64, n_seeds=1),
        fewshot=FewShotSettings(image_size=32, steps=10, pretrain_steps=10, batch_size=16,
                                width=8, n_eval=64, eval_every=5, n_seeds=1, **_FEWSHOT_COMMON),
        cyclegan=CycleGANSettings(image_size=32, steps=8, decay_start=0.5, batch_size=2, ngf=4,
                                  ndf=4, n_blocks=2, n_layers_d=3, eval_every=4, n_eval=16),
        ptq=PTQSettings(n_samples=64, n_real=64, n_seeds=2, bits=(32, 8, 2), sparsities=(0.0, 0.9),
                        latency_repeats=2, latency_threads=1, calibration_batches=2,
                        paper_scale=False),
        gancomp=GanCompSettings(image_size=32, teacher_ngf=8, teacher_blocks=3, teacher_steps=30,
                                student_widths=(4, 4, 4, 2, 2, 2, 4, 4), distill_steps=16,
                                supernet_steps=30, finetune_steps=16, batch_size=4,
                                sampling="random", holdout=16, population=8, parents=3,
                                mutations=4, crossovers=4, generations=2, budget_ratio=8.0,
                                pareto_ratios=(3, 5, 8, 10), n_eval=16, n_seeds=2,
                                latency_threads=1, latency_repeats=3),
        repeats=1,
    ),
    "class": Preset(
        name="class",
        cifar=CifarSettings(steps=1000, compare_steps=4000, batch_size=64, ngf=32, ndf=32,
                            eval_every=100, n_eval=500, n_seeds=3),
        fewshot=FewShotSettings(image_size=64, steps=800, pretrain_steps=4000, batch_size=32,
                                width=16, n_eval=500, eval_every=80, n_seeds=3,
                                **_FEWSHOT_COMMON),
        cyclegan=CycleGANSettings(image_size=64, steps=1200, decay_start=0.5, batch_size=1,
                                  ngf=16, ndf=32, n_blocks=6, n_layers_d=3, eval_every=200,
                                  n_eval=60),
        ptq=PTQSettings(n_samples=500, n_real=500, n_seeds=3, bits=(32, 8, 6, 4, 3, 2, 1),
                        sparsities=(0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95), latency_repeats=15,
                        latency_threads=1, calibration_batches=4, paper_scale=True),
        # Sized to be recorded in about 40 minutes on this busy 2-core machine, one thread
        # per process (measured under load: a teacher step ~1.4 s, a distillation step
        # ~0.3 s, a thin CycleGAN step ~0.7 s): short runs, still far beyond class time, so notebooks 05-07 show the recording
        # (python -m course_lib.gancomp.record --preset class). The student's widths give
        # about the 0.25x generator's MACs, so the two compare at equal cost. The fine-tune
        # of the searched subnet gets the fixed distilled student's steps (as in every preset).
        gancomp=GanCompSettings(image_size=64, teacher_ngf=16, teacher_blocks=9,
                                teacher_steps=800, student_widths=(6, 6, 8, 6, 6, 6, 6, 6),
                                distill_steps=600, supernet_steps=1200, finetune_steps=600,
                                batch_size=1, sampling="random", holdout=60, population=20,
                                parents=6, mutations=8, crossovers=8, generations=4,
                                budget_ratio=20.0, pareto_ratios=(5, 10, 15, 20), n_eval=60,
                                n_seeds=2, latency_threads=1, latency_repeats=10),
        repeats=3,
    ),
    "full": Preset(
        name="full",
        cifar=CifarSettings(steps=100_000, compare_steps=100_000, batch_size=64, ngf=64,
                            ndf=64, eval_every=5_000, n_eval=10_000, n_seeds=3),
        # The course's DCGAN stops at 64x64; a paper-scale few-shot run needs StyleGAN2.
        fewshot=FewShotSettings(image_size=64, steps=20_000, pretrain_steps=100_000,
                                batch_size=32, width=64, n_eval=5_000, eval_every=4_000,
                                n_seeds=3, **_FEWSHOT_COMMON),
        cyclegan=CycleGANSettings(image_size=256, steps=266_800, decay_start=0.5,
                                  batch_size=1, ngf=64, ndf=64, n_blocks=9, n_layers_d=3,
                                  eval_every=13_340, n_eval=120),
        ptq=PTQSettings(n_samples=10_000, n_real=10_000, n_seeds=3,
                        bits=(32, 8, 7, 6, 5, 4, 3, 2, 1),
                        sparsities=(0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95), latency_repeats=30,
                        latency_threads=1, calibration_batches=8, paper_scale=True),
        # The paper's horse2zebra pipeline: the authors' teacher (56.8G MACs) when fetched.
        # finetune_steps = distill_steps, as in ci and class: the searched subnet's fine-tune
        # gets the fixed distilled student's budget.
        gancomp=GanCompSettings(image_size=256, teacher_ngf=64, teacher_blocks=9,
                                teacher_steps=266_800, student_widths=(16, 16, 32, 16, 32, 32, 16, 16),
                                distill_steps=266_800, supernet_steps=400_000,
                                finetune_steps=266_800, batch_size=1, sampling="random",
                                holdout=120, population=100, parents=25, mutations=50,
                                crossovers=50, generations=10, budget_ratio=21.0,
                                pareto_ratios=(5, 10, 20, 30, 40), n_eval=120, n_seeds=1,
                                latency_threads=1, latency_repeats=20),
        repeats=5,
    ),
}


def get_preset(name: str | Preset | None = None) -> Preset:
    """The preset to use: ``name`` (a preset name or a :class:`Preset`) if given, else
    ``$COURSE_PRESET`` if set, else ``class``. An explicit choice always wins."""
    if isinstance(name, Preset):
        return name
    chosen = name or os.environ.get(ENV_VAR) or "class"
    try:
        return PRESETS[chosen]
    except KeyError:
        where = "" if name else f" (from ${ENV_VAR})"
        raise ValueError(f"unknown preset {chosen!r}{where}: choose one of {', '.join(PRESETS)}"
                         ) from None


def notebook_preset(default: str) -> Preset:
    """The preset of a notebook whose parameters cell says ``PRESET = default``.

    ``$COURSE_PRESET``, when set, replaces that default, as papermill's parameter
    injection would: ``make workbook PRESET=ci`` and the tests run every notebook small
    without editing it. (Library calls with an explicit preset are not affected.)
    """
    return get_preset(os.environ.get(ENV_VAR) or default)


def with_overrides(preset: Preset, **changes) -> Preset:
    """A copy of ``preset`` with some of its tracks' fields changed, e.g.
    ``with_overrides(p, cifar={"steps": 50})`` or ``with_overrides(p, repeats=1)``."""
    fields = {}
    for key, value in changes.items():
        current = getattr(preset, key)
        fields[key] = dataclasses.replace(current, **value) if isinstance(value, dict) else value
    return dataclasses.replace(preset, **fields)
