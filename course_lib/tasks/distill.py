"""Distillation and supernet training as engine tasks (GAN Compression, Li et al., CVPR 2020).

One task, :class:`DistillTask`, trains a student generator against a frozen teacher with
the losses of :mod:`course_lib.compress.distill`; the student is either

- a plain generator of fixed widths (a ``MobileResnetGenerator``): *distillation*, or
- a ``SuperMobileResnetGenerator``: *once-for-all supernet training*. Each step draws a
  config (8 widths) from the run's ``arch`` random stream (``sampling="random"``, as the
  paper) or the largest, the smallest and a random one (``"sandwich"``), and distils
  each subnet on the same batch (the teacher runs once).

One step, for domain-A images ``a`` and domain-B images ``b`` (the teacher translates
A -> B, so the student learns A -> B without paired data)::

    target = teacher(a)                                   # frozen, no gradient
    for config in configs:                                # one config, or the sandwich
        fake = student(a[, config])
        loss_G += λ_gan·LSGAN(D(fake), real) + λ_recon·L1(fake, target)
                + λ_distill·Σ MSE(1x1conv(student feature), teacher feature)
    loss_D = 0.5·((D(b) - 1)² + D(fake.detach())²)        # D sees real B images

The 1x1 mappers belong to the task (not to the exported student); they are saved in the
checkpoint's task state. Under torchrun their gradients are averaged over ranks by hooks.

The baseline a distilled student is compared with is the *same* architecture trained
without a teacher, as a CycleGAN (:class:`StudentCycleGANTask`).
"""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import losses
from course_lib.compress.distill import Distiller, DistillWeights, distill_losses
from course_lib.compress.supernet import SAMPLING, SuperMobileResnetGenerator, sample_configs
from course_lib.engine.loop import Run, StepContext, Task, fit
from course_lib.metrics import Reference
from course_lib.models.cyclegan import NLayerDiscriminator, init_weights
from course_lib.models.registry import model_spec
from course_lib.tasks.cyclegan import (CycleGANConfig, CycleGANTask, check_domains,
                                      check_run_settings, lr_factor, translate, unpaired_batch)


@dataclass
class DistillConfig:
    """Everything that defines a distillation or supernet run (saved in every checkpoint)."""
    steps: int = 1000
    batch_size: int = 1
    image_size: int = 64
    decay_start: float = 0.5        # share of the run at a constant LR, then linear decay
    lr: float = 2e-4
    beta1: float = 0.5
    ndf: int = 32
    n_layers_d: int = 3
    recon: float = 10.0             # λ_recon (GAN Compression's CycleGAN weights)
    distill: float = 0.01           # λ_distill
    gan: float = 1.0
    sampling: str = "random"        # supernet only: "random" or "sandwich"
    flip: bool = True
    seed: int = 0
    eval_every: int = 0
    checkpoint_every: int = 0

    def __post_init__(self):
        check_run_settings(self)
        if self.sampling not in SAMPLING:
            raise ValueError(f"unknown sampling {self.sampling!r}; choose one of {', '.join(SAMPLING)}")

    @property
    def weights(self) -> DistillWeights:
        return DistillWeights(recon=self.recon, distill=self.distill, gan=self.gan, gan_kind="lsgan")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class DistillTask(Task):
    """Distil ``student_spec`` from a teacher (``teacher_spec`` with weights ``teacher_state``).

    a, b: domains A (the input) and B (the reals D sees), uint8 or float [N, 3, S, S];
    eval_a and reference: test A images and a :class:`Reference` of test B for the
    evaluations (``fd_a2b``; a supernet reports ``fd_largest`` and ``fd_smallest``).
    init_from: the student's state dict to start from instead of a random init
    (fine-tuning, e.g. a subnet exported from a supernet); D and the 1x1 mappers start
    afresh. None: the usual random init.
    """

    name = "distill"
    rng_streams = ("data", "augment", "arch")
    sample_role = "student"

    def __init__(self, config: DistillConfig, teacher_spec: dict, teacher_state: dict,
                 student_spec: dict, a: torch.Tensor, b: torch.Tensor, *,
                 eval_a: torch.Tensor | None = None, reference: Reference | None = None,
                 init_from: dict | None = None, data_source: str = ""):
        check_domains(a, b, config.image_size)
        self.cfg, self.seed = config, config.seed
        self.teacher_spec, self.teacher_state, self.student_spec = teacher_spec, teacher_state, student_spec
        self.a, self.b = a, b
        self.eval_a, self.reference = eval_a, reference
        self.init_from = init_from
        self._source = data_source
        self.distiller: Distiller | None = None
        self.supernet = student_spec["class"] == SuperMobileResnetGenerator.__name__

    @property
    def data_source(self) -> str:
        return self._source

    def config(self) -> dict:
        # Marked only when set, so the checkpoints of plain runs keep their spec.
        return {**self.cfg.as_dict(), **({"init_from": True} if self.init_from is not None else {})}

    def model_specs(self) -> dict[str, dict]:
        d = model_spec(NLayerDiscriminator, input_nc=3, ndf=self.cfg.ndf, n_layers=self.cfg.n_layers_d)
        return {"teacher": self.teacher_spec, "student": self.student_spec, "D": d}

    def setup(self, models, ctx: StepContext) -> None:
        ctx.check_split(min(len(self.a), len(self.b)), self.cfg.batch_size,
                        "images in the smaller domain")
        init_weights(models["student"], 0.02)
        init_weights(models["D"], 0.02)
        _load_weights(models["teacher"], self.teacher_state, "the teacher's weights")
        if self.init_from is not None:      # before a resume, which overwrites it
            _load_weights(models["student"], self.init_from, "the student's init_from weights")
        s = self.cfg.image_size
        # Freezes the teacher (so the loop keeps it out of DDP and in eval mode).
        self.distiller = Distiller(models["teacher"], models["student"], torch.zeros(1, 3, s, s))
        self.distiller.to(ctx.device)
        if ctx.dist.enabled:
            world = ctx.world_size
            for p in self.distiller.parameters():   # DDP averages the student's; these by hand
                p.register_hook(lambda g: _all_reduce_mean(g, world))

    def optimizers(self, models):
        betas = (self.cfg.beta1, 0.999)
        g = list(models["student"].parameters()) + list(self.distiller.parameters())
        return {"G": torch.optim.Adam(g, lr=self.cfg.lr, betas=betas),
                "D": torch.optim.Adam(models["D"].parameters(), lr=self.cfg.lr, betas=betas)}

    def lr_factor(self, step: int) -> float:
        return lr_factor(step, self.cfg.steps, self.cfg.decay_start)

    def batch(self, ctx: StepContext):
        return unpaired_batch(self.a, self.b, self.cfg.batch_size, self.cfg.flip, ctx)

    def configs(self, ctx: StepContext, space) -> list:
        """This step's configs, drawn from the run's ``arch`` stream (so a seed repeats them)."""
        seed = int(torch.randint(2**31 - 1, (), generator=ctx.rng["arch"]))
        return sample_configs(space, random.Random(seed), self.cfg.sampling)

    def train_step(self, batch, models, optimizers, ctx: StepContext) -> dict:
        a, b = batch
        teacher, student, D = models["teacher"], models["student"], models["D"]
        space = getattr(getattr(student, "module", student), "space", None)
        configs = self.configs(ctx, space) if self.supernet else [None]
        with torch.no_grad(), ctx.autocast():
            target = teacher(a)                       # the hooks keep its features
        parts = {"pixel": 0.0, "feature": 0.0, "gan": 0.0}
        total = 0.0
        with ctx.frozen(D) as d:
            for config in configs:
                with ctx.autocast():
                    fake = student(a) if config is None else student(a, config)
                    step_losses = distill_losses(fake, target, self.distiller.feature_loss(),
                                                 d(fake), self.cfg.weights)
                total = total + step_losses["total"] / len(configs)
                for k in parts:
                    parts[k] = parts[k] + step_losses[k].detach() / len(configs)
        ctx.update(total, optimizers["G"])
        with ctx.autocast():
            loss_d = 0.5 * losses.d_loss(D(b), D(fake.detach()), "lsgan")
        ctx.update(loss_d, optimizers["D"])
        self.distiller.clear()
        return {"loss_pixel": parts["pixel"], "loss_feature": parts["feature"],
                "loss_gan": parts["gan"], "loss_d": loss_d.detach()}

    def evaluate(self, models, step: int) -> dict:
        if self.eval_a is None or self.reference is None:
            return {}
        student = models["student"]
        try:
            if not self.supernet:
                return {"fd_a2b": self.reference.distance(translate(student, self.eval_a))}
            return {"fd_largest": self.reference.distance(translate(student.with_config(student.largest), self.eval_a)),
                    "fd_smallest": self.reference.distance(translate(student.with_config(student.smallest), self.eval_a))}
        finally:
            self.distiller.clear()

    def state_dict(self) -> dict:
        return {"mappers": self.distiller.state_dict()} if self.distiller is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("mappers") and self.distiller is not None:
            self.distiller.load_state_dict(state["mappers"])


def _load_weights(model: nn.Module, state: dict, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{what} do not fit its spec ({str(exc).splitlines()[0][:160]})") from None


def _all_reduce_mean(grad: torch.Tensor, world: int) -> torch.Tensor:
    grad = grad.clone()
    torch.distributed.all_reduce(grad)
    return grad / world


def train_distill(teacher_spec: dict, teacher_state: dict, student_spec: dict, a: torch.Tensor,
                  b: torch.Tensor, config: DistillConfig, *, eval_a=None, reference=None,
                  out_dir: str | os.PathLike | None = None, resume: bool = True,
                  device: str = "auto", precision: str = "auto", preset: str | None = None,
                  progress: bool = True, data_source: str = "", describe: str = "",
                  init_from: dict | None = None) -> Run:
    """Distil (or train a supernet) with :class:`DistillTask`; returns the engine's Run
    (``run.models["student"]`` in eval mode; the teacher's hooks are removed).
    init_from: the student's state dict to start from (fine-tuning); None: a random init."""
    task = DistillTask(config, teacher_spec, teacher_state, student_spec, a, b, eval_a=eval_a,
                       reference=reference, init_from=init_from, data_source=data_source)
    try:
        return fit(task, steps=config.steps, out_dir=out_dir, resume=resume, device=device,
                   precision=precision, eval_every=config.eval_every,
                   checkpoint_every=config.checkpoint_every, progress=progress, preset=preset,
                   describe=describe or ("supernet" if task.supernet else "distill"))
    finally:
        if task.distiller is not None:
            task.distiller.remove()


class StudentCycleGANTask(CycleGANTask):
    """A CycleGAN whose two generators have another architecture (``generator_spec``):
    a thin student or a uniformly thinned generator trained *without* a teacher."""

    def __init__(self, config: CycleGANConfig, a, b, generator_spec: dict, **kwargs):
        super().__init__(config, a, b, **kwargs)
        self.generator_spec = generator_spec

    def config(self) -> dict:
        return {**super().config(), "generator": self.generator_spec}

    def model_specs(self) -> dict[str, dict]:
        specs = super().model_specs()
        return {**specs, "G_A": self.generator_spec, "G_B": self.generator_spec}


def train_student_cyclegan(generator_spec: dict, a, b, config: CycleGANConfig, *, eval_a=None,
                           reference=None, out_dir=None, device: str = "auto",
                           preset: str | None = None, progress: bool = True,
                           data_source: str = "", describe: str = "") -> Run:
    """Train ``generator_spec`` as both CycleGAN generators, from scratch (no teacher)."""
    task = StudentCycleGANTask(config, a, b, generator_spec, eval_a=eval_a, reference=reference,
                               data_source=data_source)
    return fit(task, steps=config.steps, out_dir=out_dir, device=device,
               eval_every=config.eval_every, checkpoint_every=config.checkpoint_every,
               progress=progress, preset=preset, describe=describe or "student cyclegan")
