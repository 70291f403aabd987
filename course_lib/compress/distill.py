"""Distilling a student generator from a teacher (GAN Compression, Li et al., CVPR 2020).

The student's generator loss is

    L = λ_gan · L_GAN(D(student(x)))
      + λ_recon · L1(student(x), teacher(x))                              (pixel loss)
      + λ_distill · Σ_layers MSE(mapper_l(student_feat_l), teacher_feat_l)  (feature loss)

- For CycleGAN the teacher's output is the reconstruction target (no paired data needed);
  the paper's weights are λ_recon = 10, λ_distill = 0.01 and an LSGAN loss for L_GAN.
- ``mapper_l`` is a learnable 1x1 conv on the *student* side, from the student's channels
  to the teacher's: the thin student cannot match a wide teacher's features channel by
  channel, but a linear map of them can. It is trained with the student and thrown away
  after (it is not part of the exported model).
- The layers are named modules (``model.named_modules()``), hooked with forward hooks, so
  any generator of the course works: ``ResnetGenerator``, ``MobileResnetGenerator`` and the
  supernet share names (trunk input ``model.9``, blocks 3/6/9 ``model.12``/``15``/``18``);
  for a DCGAN generator pass ``layers`` yourself or take the default (its hidden ReLUs).

Per step, with ``distiller = Distiller(teacher, student, example_input)``::

    with torch.no_grad():
        target = teacher(x)                       # hooks keep the teacher's features
    fake = student(x)                             # ... and the student's (or student(x, config))
    losses = distill_losses(fake, target, distiller.feature_loss(), D(fake))
    losses["total"].backward()                    # student's and mappers' gradients

Optimise ``student.parameters()`` and ``distiller.parameters()`` (the mappers) together.
Under DDP, wrap both the student and the distiller (or put the mappers in one module with
the student) so the mappers' gradients are averaged too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.compress.profile import evaluating
from course_lib.compress.supernet import SuperConv2d, SuperMobileResnetBlock
from course_lib.losses import KINDS, g_loss
from course_lib.models.cyclegan import ResnetBlock
from course_lib.models.mobile_resnet import MobileResnetBlock

RESIDUAL_BLOCKS = (ResnetBlock, MobileResnetBlock, SuperMobileResnetBlock)


@dataclass(frozen=True)
class DistillWeights:
    """The loss weights; the defaults are GAN Compression's for CycleGAN."""
    recon: float = 10.0        # λ_recon, on the L1 pixel loss to the teacher's output
    distill: float = 0.01      # λ_distill, on the summed feature MSEs
    gan: float = 1.0           # on the student's GAN loss
    gan_kind: str = "lsgan"    # one of course_lib.losses.KINDS; CycleGAN uses LSGAN

    def __post_init__(self):
        if self.gan_kind not in KINDS:
            raise ValueError(f"unknown GAN loss kind {self.gan_kind!r}; choose one of {', '.join(KINDS)}")
        for name in ("recon", "distill", "gan"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be 0 or more, got {getattr(self, name)}")


def pixel_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (L1) between the two outputs ``[N, C, H, W]``; a scalar."""
    return F.l1_loss(student_out, teacher_out.detach())


def feature_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
                 mappers: Sequence[nn.Module]) -> torch.Tensor:
    """Σ_l MSE(mappers[l](student_feats[l]), teacher_feats[l]); a scalar.

    student_feats[l]: ``[N, c_s, H, W]``; teacher_feats[l]: ``[N, c_t, H, W]`` (same H, W);
    mappers[l]: a module mapping c_s to c_t channels (a 1x1 conv). The teacher's features
    are targets (no gradient flows into the teacher).
    """
    if not (len(student_feats) == len(teacher_feats) == len(mappers)) or not mappers:
        raise ValueError(f"feature_loss needs one mapper per layer and features from both models: "
                         f"got {len(student_feats)} student, {len(teacher_feats)} teacher "
                         f"features and {len(mappers)} mappers")
    return sum(F.mse_loss(m(s), t.detach()) for s, t, m in zip(student_feats, teacher_feats, mappers))


def distill_losses(student_out: torch.Tensor, teacher_out: torch.Tensor,
                   features: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                   weights: DistillWeights = DistillWeights()) -> dict[str, torch.Tensor]:
    """The student's losses for one step, as a dict of scalars.

    student_out, teacher_out: ``[N, C, H, W]`` in [-1, 1] on the same input;
    features: the summed feature loss (``Distiller.feature_loss()``), or None to leave it out;
    fake_logits: D's logits on ``student_out``, or None to leave the GAN loss out.
    Returns ``pixel``, ``feature`` and ``gan`` (unweighted, for logging) when present, and
    ``total``, the weighted sum to back-propagate.
    """
    losses = {"pixel": pixel_loss(student_out, teacher_out)}
    total = weights.recon * losses["pixel"]
    if features is not None:
        losses["feature"] = features
        total = total + weights.distill * features
    if fake_logits is not None:
        losses["gan"] = g_loss(fake_logits, weights.gan_kind)
        total = total + weights.gan * losses["gan"]
    losses["total"] = total
    return losses


def default_feature_layers(model: nn.Module) -> tuple[str, ...]:
    """The layers to distil at, by module name.

    For a residual generator (the CycleGAN family): the trunk input (the module just before
    the first residual block) and the outputs of the blocks ending each third of the trunk,
    e.g. ``("model.9", "model.12", "model.15", "model.18")`` with 9 blocks, as the paper.
    Otherwise (a DCGAN generator): every ReLU/LeakyReLU, i.e. each hidden layer's output.
    """
    blocks = [name for name, m in model.named_modules() if isinstance(m, RESIDUAL_BLOCKS)]
    if blocks:
        n = len(blocks)
        parent, _, index = blocks[0].rpartition(".")
        if not index.isdigit() or int(index) == 0:
            raise ValueError(f"cannot find the module before the first residual block {blocks[0]!r}; "
                             "pass layers=[...] naming the modules to distil at")
        trunk_input = f"{parent}.{int(index) - 1}" if parent else str(int(index) - 1)
        ends = sorted({n // 3 - 1, 2 * n // 3 - 1, n - 1})
        return (trunk_input, *(blocks[i] for i in ends if i >= 0))
    acts = tuple(name for name, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU)))
    if not acts:
        raise ValueError(f"no default distillation layers for {type(model).__name__}: "
                         "pass layers=[...] naming modules from model.named_modules()")
    return acts


class Distiller(nn.Module):
    """The feature part of distillation: hooks on both models and the 1x1 mappers.

    teacher, student: any two generators taking the same input. Forward hooks on the named
    ``layers`` of the teacher and ``student_layers`` of the student (default: the same
    names, or :func:`default_feature_layers`) keep each layer's output when the model runs.
    ``example_input`` (e.g. ``torch.zeros(1, 3, 64, 64)``) is run once through both to find
    each layer's channels; a supernet student runs at its largest config then, and its
    mappers slice their input channels like every super layer, so one mapper serves every
    subnet.

    The teacher is frozen here (``requires_grad_(False)`` and eval mode): it is a fixed
    target. Only the mappers are parameters of the Distiller; teacher and student are not
    submodules, so ``distiller.state_dict()`` holds the mappers alone. Call ``remove()``
    (or use ``with Distiller(...) as d:``) to take the hooks off.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, example_input: torch.Tensor,
                 layers: Sequence[str] | None = None, student_layers: Sequence[str] | None = None):
        super().__init__()
        self.layers = tuple(layers) if layers is not None else default_feature_layers(teacher)
        self.student_layers = (tuple(student_layers) if student_layers is not None
                               else self.layers if layers is not None
                               else default_feature_layers(student))
        if len(self.layers) != len(self.student_layers) or not self.layers:
            raise ValueError(f"teacher and student need the same number of distillation layers (at "
                             f"least one), got {list(self.layers)} and {list(self.student_layers)}")
        teacher.requires_grad_(False).eval()
        self._teacher_feats: dict[str, torch.Tensor] = {}
        self._student_feats: dict[str, torch.Tensor] = {}
        self._handles = _hook(teacher, self.layers, self._teacher_feats, "teacher")
        try:
            self._handles += _hook(student, self.student_layers, self._student_feats, "student")
            with torch.no_grad(), evaluating(student):   # eval: a probe must not move BN statistics
                teacher(example_input)
                student(example_input)
            silent = ([f"teacher {n!r}" for n in self.layers if n not in self._teacher_feats]
                      + [f"student {n!r}" for n in self.student_layers if n not in self._student_feats])
            if silent:
                raise ValueError(f"layers {', '.join(silent)} did not run on the example input; "
                                 "choose modules that the forward pass calls")
            shapes = [(self._student_feats[s].shape, self._teacher_feats[t].shape)
                      for s, t in zip(self.student_layers, self.layers)]
        except Exception:
            self.remove()
            raise
        finally:
            self.clear()
        for (s_shape, t_shape), s_name, t_name in zip(shapes, self.student_layers, self.layers):
            if s_shape[2:] != t_shape[2:]:
                self.remove()
                raise ValueError(f"student layer {s_name!r} gives {tuple(s_shape)} but teacher layer "
                                 f"{t_name!r} gives {tuple(t_shape)}: distilled layers need the same "
                                 "spatial size; choose matching layers")
        self.mappers = nn.ModuleList(SuperConv2d(s[1], t[1], 1) for s, t in shapes)
        self.mappers.to(example_input.device)

    def feature_loss(self) -> torch.Tensor:
        """Σ MSE(mapper(student feature), teacher feature) over the layers, from the last
        teacher and student forward passes.

        The student's features (which hold its graph) are released; the teacher's are kept
        until the teacher runs again, so one teacher pass serves several student passes on
        the same batch (the configs of a sandwich step).
        """
        missing = ([f"teacher {n!r}" for n in self.layers if n not in self._teacher_feats]
                   + [f"student {n!r}" for n in self.student_layers if n not in self._student_feats])
        if missing:
            self._student_feats.clear()
            raise RuntimeError(f"no features from {', '.join(missing)}: run the teacher and the student "
                               "on the batch before calling feature_loss()")
        try:
            return feature_loss([self._student_feats[n] for n in self.student_layers],
                                [self._teacher_feats[n] for n in self.layers], self.mappers)
        finally:
            self._student_feats.clear()

    @property
    def teacher_features(self) -> dict[str, torch.Tensor]:
        """The teacher's kept features, layer name -> ``[N, C, H, W]`` (a new dict)."""
        return dict(self._teacher_feats)

    @property
    def student_features(self) -> dict[str, torch.Tensor]:
        """The student's kept features since its last pass, layer name -> ``[N, C, H, W]``."""
        return dict(self._student_feats)

    def clear(self) -> None:
        """Forget the kept features (they hold activations, and the student's their graph)."""
        self._teacher_feats.clear()
        self._student_feats.clear()

    def remove(self) -> None:
        """Take the forward hooks off both models."""
        for handle in self._handles:
            handle.remove()
        self._handles = ()
        self.clear()

    def __enter__(self) -> "Distiller":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _hook(model: nn.Module, names: Sequence[str], store: dict, role: str) -> tuple:
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        sample = ", ".join(list(modules)[1:8])
        raise ValueError(f"the {role} ({type(model).__name__}) has no module named "
                         f"{', '.join(map(repr, unknown))}; names look like {sample}, ...")

    def keeper(name):
        def hook(module, inputs, output):
            store[name] = output
        return hook

    return tuple(modules[n].register_forward_hook(keeper(n)) for n in names)


def distillation_loss(student_out: torch.Tensor, teacher_out: torch.Tensor,
                      student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
                      mapper_weights: Sequence[torch.Tensor], lambda_recon: float = 10.0,
                      lambda_distill: float = 0.01) -> torch.Tensor:
    """The distillation part of the student's loss with the mappers given as 1x1 conv
    weights ``[c_t, c_s, 1, 1]`` (notebook 05's exercise):
    ``lambda_recon * L1(student_out, teacher_out) + lambda_distill * Σ_l MSE(conv1x1(s_l), t_l)``."""
    feature = sum(F.mse_loss(F.conv2d(s, w), t.detach())
                  for s, w, t in zip(student_feats, mapper_weights, teacher_feats))
    return lambda_recon * pixel_loss(student_out, teacher_out) + lambda_distill * feature
