"""The DCGAN task: an unconditional DCGAN, with or without DiffAugment, from scratch or
fine-tuned (with FreezeD), trained by the engine's loop (:func:`course_lib.engine.fit`).

The four augmentation strategies the DiffAugment paper compares (T is the augmentation):

==============  =====================  ==================
strategy        D step                 G step
==============  =====================  ==================
``none``        D(x), D(G(z))          D(G(z))
``real_only``   D(T(x)), D(G(z))       D(G(z))
``d_step_only`` D(T(x)), D(T(G(z)))    D(G(z))
``diffaugment`` D(T(x)), D(T(G(z)))    D(T(G(z)))
==============  =====================  ==================

Only ``diffaugment`` keeps D's and G's objectives about the same (augmented)
distribution; ``real_only`` teaches G to reproduce T, ``d_step_only`` lets D and G
disagree on what "real" looks like.

:func:`train_gan` is the entry point (``course_lib.train`` re-exports it). Every random
draw (batch indices, latents, augmentations) comes from the loop's generators, saved in
the checkpoint, so resuming a run gives the same weights as running it without
interruption. Under torchrun each rank draws its own batches, latents and augmentations
(see :mod:`course_lib.engine.distributed`); ``batch_size`` is the global batch.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from course_lib import losses
from course_lib.diffaugment import diff_augment
from course_lib.engine.device import run_in_chunks
from course_lib.engine.loop import Run, StepContext, Task, fit
from course_lib.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_lib.models.registry import build_model, model_spec
from course_lib.monitor import SignTally, evaluate_discriminator, spread_subset
from course_lib.presets import Preset

STRATEGIES = ("none", "real_only", "d_step_only", "diffaugment")


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved in every checkpoint."""
    steps: int = 500
    batch_size: int = 64                        # the global batch (split over torchrun ranks)
    image_size: int = 32
    z_dim: int = 128
    ngf: int = 32
    ndf: int = 32
    spectral_norm: bool = False
    loss: str = "hinge"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple = (0.5, 0.999)
    augment: str = "none"                       # one of STRATEGIES
    policy: str = "color,translation,cutout"
    ema: float | None = 0.999                   # EMA decay of G; None turns it off
    seed: int = 0
    eval_every: int = 0                         # 0: evaluate only at the end
    checkpoint_every: int = 0                   # 0: no intermediate checkpoints

    def __post_init__(self):
        if self.augment not in STRATEGIES:
            raise ValueError(f"unknown augmentation strategy {self.augment!r}: choose one of {', '.join(STRATEGIES)}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be positive, got {self.steps} and {self.batch_size}")
        self.betas = tuple(self.betas)

    @classmethod
    def from_preset(cls, preset: Preset, **changes) -> "TrainConfig":
        """The CIFAR track's settings of ``preset`` (``preset.cifar``), with ``changes``."""
        c = preset.cifar
        base = dict(steps=c.steps, batch_size=c.batch_size, ngf=c.ngf, ndf=c.ndf,
                    eval_every=c.eval_every)
        base.update(changes)
        return cls(**base)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- the losses of one step, per strategy --------------------------------------------

def d_step_inputs(real: torch.Tensor, fake: torch.Tensor, augment: str = "none",
                  T: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What D sees in its step under ``augment``: (reals, fakes), augmented per the table."""
    if augment != "none" and T is None:
        raise ValueError(f"strategy {augment!r} needs an augmentation T")
    if augment in ("real_only", "d_step_only", "diffaugment"):
        real = T(real)
    if augment in ("d_step_only", "diffaugment"):
        fake = T(fake)
    return real, fake


def discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, augment: str = "none",
                       T: Callable | None = None, kind: str = "hinge") -> torch.Tensor:
    """D's loss on a batch of reals and (detached) fakes, with the strategy's augmentation.

    real, fake: [N, 3, H, W] in [-1, 1]; T: images -> augmented images (differentiable).
    """
    real, fake = d_step_inputs(real, fake, augment, T)
    return losses.d_loss(D(real), D(fake), kind)


def generator_loss(D: nn.Module, fake: torch.Tensor, augment: str = "none", T: Callable | None = None,
                   kind: str = "hinge") -> torch.Tensor:
    """G's loss on a batch of fakes; only ``diffaugment`` augments here (gradient flows through T)."""
    if augment == "diffaugment":
        if T is None:
            raise ValueError("strategy 'diffaugment' needs an augmentation T")
        fake = T(fake)
    return losses.g_loss(D(fake), kind)


def train_step(G, D, opt_g, opt_d, real, z, augment="none", T=None, kind="hinge") -> dict:
    """One D step then one G step, written out plainly (the reference of notebook 01's
    exercise; the engine's :class:`DCGANTask` does the same and also freezes D during the
    G step). Returns the two losses as floats."""
    fake = G(z)
    opt_d.zero_grad(set_to_none=True)
    loss_d = discriminator_loss(D, real, fake.detach(), augment, T, kind)
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    loss_g = generator_loss(D, fake, augment, T, kind)
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


# --- images and latents -----------------------------------------------------------------

def stack_images(dataset, limit: int | None = None) -> torch.Tensor:
    """All images of a dataset as one tensor [N, 3, H, W] (datasets here are small).

    Items may be images or (image, label) pairs.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise ValueError("the dataset is empty: nothing to train on")
    items = [dataset[i] for i in range(n)]
    images = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
    return torch.stack(images)


def images_of(data) -> torch.Tensor:
    """Every image of a dataset (or a tensor) as float [N, 3, H, W] in [-1, 1]."""
    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "tensors"):
        return data.tensors()
    return stack_images(data)


def fixed_latents(n: int, z_dim: int, seed: int = 1234) -> torch.Tensor:
    """The same latents every time, so sample grids and metrics compare across runs."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """G's images for latents ``z`` [n, z_dim], in chunks, on the CPU: [n, 3, S, S].
    G is used as it is (switch it to eval mode first to sample)."""
    return run_in_chunks(G, z, batch_size)


# --- the models -------------------------------------------------------------------------

def model_specs(config: TrainConfig) -> dict[str, dict]:
    """The architecture specs of a run's G and D (and G_ema, a copy of G, with EMA)."""
    g = model_spec(DCGANGenerator, z_dim=config.z_dim, ngf=config.ngf,
                   image_size=config.image_size, out_channels=3)
    d = model_spec(DCGANDiscriminator, ndf=config.ndf, image_size=config.image_size,
                   in_channels=3, spectral_norm=config.spectral_norm)
    specs = {"G": g, "D": d}
    if config.ema:
        specs["G_ema"] = g
    return specs


def build_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """A fresh (G, D) of this configuration (seed torch first for reproducible weights)."""
    specs = model_specs(config)
    return build_model(specs["G"]), build_model(specs["D"])


def freeze_discriminator_layers(D: nn.Module, n: int) -> list[nn.Parameter]:
    """FreezeD: stop training D's first ``n`` conv layers and the norms that follow them.

    Their parameters get ``requires_grad = False``; returns the parameters still trained
    (for D's optimiser). ``n`` must leave at least the final (logit) conv trainable.
    """
    blocks: list[list[nn.Module]] = []
    for module in D.modules():
        if isinstance(module, nn.Conv2d):
            blocks.append([module])
        elif blocks and isinstance(module, nn.modules.batchnorm._BatchNorm):
            blocks[-1].append(module)
    if not 0 <= n < len(blocks):
        raise ValueError(f"freeze_d_layers must be between 0 and {len(blocks) - 1} (this D has "
                         f"{len(blocks)} conv layers, and the last one must train), got {n}")
    frozen = {id(p) for block in blocks[:n] for m in block for p in m.parameters()}
    for p in D.parameters():
        if id(p) in frozen:
            p.requires_grad_(False)
    return [p for p in D.parameters() if id(p) not in frozen]


def _state_dicts(payload: dict) -> dict:
    """The models' state dicts of a payload: ``payload["models"]``, or, in payloads written
    before the engine, the top-level "G", "D" and "G_ema"."""
    return payload["models"] if isinstance(payload.get("models"), dict) else payload


# --- the task ---------------------------------------------------------------------------

class DCGANTask(Task):
    """An unconditional DCGAN on in-memory images, one of the four strategies.

    reals: [N, 3, S, S] in [-1, 1] (S = config.image_size). heldout: real images D never
    trains on (the monitor's held-out set). eval_fn(G) -> dict of figures added at each
    evaluation. init_from: state dicts {"G", "D"} to start from (fine-tuning);
    freeze_d_layers: FreezeD.

    Per step it logs ``loss_d``, ``loss_g`` and ``r_t_batch``, the mean sign of D's logits
    on the real batch it trained on (augmented, if the strategy augments reals): ADA's
    r_t as D sees the data in training (BatchNorm in batch-statistics mode). Each
    evaluation's ``acc_train`` and ``r_t`` accumulate those logits over the steps since
    the previous evaluation; held-out reals, training reals and fakes are measured the same
    way (see :mod:`course_lib.monitor`). Under torchrun the tally is rank 0's batches.
    """

    name = "dcgan"
    rng_streams = ("data", "z", "augment")

    def __init__(self, config: TrainConfig, reals: torch.Tensor, *, heldout: torch.Tensor | None = None,
                 eval_fn: Callable[[nn.Module], dict] | None = None, n_monitor: int = 256,
                 init_from: dict | None = None, freeze_d_layers: int = 0, data_source: str = "",
                 step_fn: Callable | None = None, augment_fn: Callable | None = None):
        if reals.shape[-1] != config.image_size:
            raise ValueError(f"images are {reals.shape[-1]}px but config.image_size is "
                             f"{config.image_size}: load the data at that size or change the config")
        self.cfg = config
        self.seed = config.seed
        self.reals = reals
        self.eval_fn = eval_fn
        self.init_from = init_from
        self.freeze_d_layers = int(freeze_d_layers)
        self.ema_roles = {"G_ema": ("G", config.ema)} if config.ema else {}
        self.sample_role = "G_ema" if config.ema else "G"
        self._source = data_source
        self.monitor_reals = spread_subset(reals, n_monitor)
        self.monitor_heldout = None if heldout is None else spread_subset(heldout, n_monitor)
        self.monitor_z = fixed_latents(n_monitor, config.z_dim, seed=4321)
        self.d_params: list[nn.Parameter] | None = None
        self.T: Callable | None = None
        # A learner's own step (notebook 01's exercise 1.3) in place of the one below.
        if step_fn is not None and config.augment != "none":
            raise ValueError(f"a step_fn trains without augmentation; got augment={config.augment!r}")
        self.step_fn = step_fn
        self.augment_fn = augment_fn    # T(x, generator=...) of one's own, instead of diff_augment
        self.tally = SignTally()        # D's logits on its training reals since the last evaluation

    @property
    def data_source(self) -> str:
        return self._source

    def config(self) -> dict:
        out = self.cfg.as_dict()
        if self.init_from is not None or self.freeze_d_layers:
            out["init_from"] = self.init_from is not None
            out["freeze_d_layers"] = self.freeze_d_layers
        for name in ("step_fn", "augment_fn"):
            fn = getattr(self, name)
            if fn is not None:
                out[name] = getattr(fn, "__qualname__", type(fn).__name__)
        return out

    def model_specs(self) -> dict[str, dict]:
        return model_specs(self.cfg)

    def setup(self, models, ctx: StepContext) -> None:
        ctx.check_split(len(self.reals), self.cfg.batch_size)
        if self.step_fn is not None and ctx.world_size > 1:
            raise ValueError("a step_fn steps its own optimisers, which DistributedDataParallel "
                             "cannot synchronise: train it in one process")
        if self.init_from is not None:
            states = _state_dicts(self.init_from)
            models["G"].load_state_dict(states["G"])
            models["D"].load_state_dict(states["D"])
        D = models["D"]
        self.d_params = (freeze_discriminator_layers(D, self.freeze_d_layers)
                         if self.freeze_d_layers else list(D.parameters()))
        policy, gen = self.cfg.policy, ctx.rng["augment"]
        if self.augment_fn is not None:
            own = self.augment_fn
            self.T = lambda x: own(x, generator=gen)  # noqa: E731
        else:
            self.T = lambda x: diff_augment(x, policy, generator=gen)  # noqa: E731

    def optimizers(self, models):
        c = self.cfg
        return {"G": torch.optim.Adam(models["G"].parameters(), lr=c.lr_g, betas=c.betas),
                "D": torch.optim.Adam(self.d_params, lr=c.lr_d, betas=c.betas)}

    def batch(self, ctx: StepContext):
        per_rank = self.cfg.batch_size // ctx.world_size
        idx = torch.randint(len(self.reals), (per_rank,), generator=ctx.rng["data"])
        z = torch.randn(per_rank, self.cfg.z_dim, generator=ctx.rng["z"])
        return self.reals[idx], z

    def train_step(self, batch, models, optimizers, ctx: StepContext) -> dict:
        real, z = batch
        G, D, c = models["G"], models["D"], self.cfg
        if self.step_fn is not None:   # it zeroes, backpropagates and steps by itself
            # Its logits stay inside it: nothing is tallied, so the monitor's acc_train and
            # r_t are the snapshot's, and say so (acc_train_tallied = 0).
            out = self.step_fn(G, D, optimizers["G"], optimizers["D"], real, z)
            return {key: torch.as_tensor(float(out[key])) for key in ("loss_d", "loss_g")}
        with ctx.autocast():
            fake = G(z)
            real_in, fake_in = d_step_inputs(real, fake.detach(), c.augment, self.T)
            real_logits = D(real_in)
            loss_d = losses.d_loss(real_logits, D(fake_in), c.loss)
        ctx.update(loss_d, optimizers["D"])
        self.tally.add(real_logits)
        # D is frozen for G's step: no gradients for its weights (and no all-reduce).
        with ctx.frozen(D) as D_fixed, ctx.autocast():
            loss_g = generator_loss(D_fixed, fake, c.augment, self.T, c.loss)
        ctx.update(loss_g, optimizers["G"])
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "r_t_batch": torch.sign(real_logits.detach().float()).mean()}

    def state_dict(self) -> dict:
        return {"tally": self.tally.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tally.load_state_dict(state.get("tally", {}))

    def sampler(self, models) -> nn.Module:
        return models[self.sample_role]

    def evaluate(self, models, step: int) -> dict:
        G_eval, D = self.sampler(models).eval(), models["D"]
        device = next(D.parameters()).device
        fakes = generate(G_eval, self.monitor_z)
        held = None if self.monitor_heldout is None else self.monitor_heldout.to(device)
        # The strategy's augmentation as in D's step, from a generator of its own (the same
        # draws at every evaluation; the training streams are not touched).
        c, gen, own = self.cfg, torch.Generator().manual_seed(4321), self.augment_fn
        if own is not None:             # the learner's own T, as in D's step
            T = lambda x: own(x, generator=gen)  # noqa: E731
        else:
            T = lambda x: diff_augment(x, c.policy, generator=gen)  # noqa: E731
        real_t = T if c.augment in ("real_only", "d_step_only", "diffaugment") else None
        fake_t = T if c.augment in ("d_step_only", "diffaugment") else None
        figures = evaluate_discriminator(D, self.monitor_reals.to(device), held, fakes.to(device),
                                         batch_size=max(1, c.batch_size), train_tally=self.tally.read(),
                                         real_transform=real_t, fake_transform=fake_t)
        if self.eval_fn is not None:
            figures.update(self.eval_fn(G_eval))
        return figures


# --- the result, and the entry point ------------------------------------------------------

@dataclass
class TrainResult:
    config: TrainConfig
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    history: dict = field(default_factory=dict)
    data_source: str = ""
    spec: dict | None = None
    feature_extractor: str = ""          # the extractor behind history["fd"], if any
    n_train: int | None = None           # training images
    seconds: float | None = None         # training time, wherever it was trained

    @property
    def G_eval(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int = 64, seed: int = 1234) -> torch.Tensor:
        """n images [n, 3, S, S] in [-1, 1] (CPU) from the fixed latents of ``seed``."""
        return generate(self.G_eval.eval(), fixed_latents(n, self.config.z_dim, seed))

    def to_payload(self) -> dict:
        """What the model zoo stores: the spec, the weights, the history (tensors and plain
        values only, so it loads with weights_only=True and rebuilds with load_model)."""
        models = {"G": self.G.state_dict(), "D": self.D.state_dict()}
        if self.G_ema is not None:
            models["G_ema"] = self.G_ema.state_dict()
        spec = self.spec
        if spec is None:
            from course_lib.engine.checkpoint import make_spec

            spec = make_spec(DCGANTask.name, model_specs(self.config), self.config.as_dict(),
                             sample_role="G_ema" if self.G_ema is not None else "G")
        return {"spec": spec, "config": self.config.as_dict(), "models": models,
                "history": self.history, "data_source": self.data_source}

    @classmethod
    def from_payload(cls, payload: dict) -> "TrainResult":
        """Rebuild from :meth:`to_payload`'s dict (or a payload written before the engine,
        which held the state dicts at its top level)."""
        config = TrainConfig(**payload["config"])
        states = _state_dicts(payload)
        G, D = build_models(config)
        G.load_state_dict(states["G"])
        D.load_state_dict(states["D"])
        G_ema = None
        if states.get("G_ema") is not None:
            G_ema = copy.deepcopy(G)
            G_ema.load_state_dict(states["G_ema"])
        return cls(config, G.eval(), D.eval(), G_ema.eval() if G_ema else None,
                   payload.get("history", {}), payload.get("data_source", ""), payload.get("spec"),
                   payload.get("feature_extractor", ""), payload.get("n_train"),
                   payload.get("seconds"))

    @classmethod
    def from_run(cls, run: Run, config: TrainConfig) -> "TrainResult":
        m = run.models
        return cls(config, m["G"], m["D"], m.get("G_ema"), run.history, run.data_source, run.spec)


def train_gan(
    data,
    config: TrainConfig,
    *,
    heldout=None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    callback: Callable[[int, dict, TrainResult], None] | None = None,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    n_monitor: int = 256,
    progress: bool = True,
    stop_after: int | None = None,
    init_from: dict | TrainResult | None = None,
    freeze_d_layers: int = 0,
    device: str = "auto",
    precision: str = "auto",
    preset: str | None = None,
    log_every: int = 10,
    step_fn: Callable | None = None,
    augment_fn: Callable | None = None,
) -> TrainResult:
    """Train a DCGAN on ``data`` and return the models and their history.

    data: a dataset (items are images or (image, label) pairs, [3, H, W] in [-1, 1]) or a
        tensor [N, 3, H, W]. ``heldout``: real images D never trains on; with it the
        history records D's accuracy on training vs held-out reals (the overfitting gap),
        measured on up to ``n_monitor`` images of each, drawn across the sets.
    out_dir: where ``checkpoint.pt`` is written every ``config.checkpoint_every`` steps and
        at the end (atomically). With ``resume`` a matching checkpoint there is continued
        (and a finished one extended, if ``config.steps`` is larger).
    callback(step, history, result): called after every evaluation (live plots).
    eval_fn(G) -> dict of figures (e.g. {"fd": ...}) added to the history at every evaluation.
    stop_after: stop early after this many steps of this call (to demonstrate resuming).
    init_from: start from pretrained weights instead of a random init (fine-tuning): a
        :class:`TrainResult` or its payload of the same architecture. The EMA generator
        starts as a copy of the loaded G.
    freeze_d_layers: FreezeD (Mo et al., 2020): keep D's first N conv layers (and their
        norms) fixed; they are left out of D's optimiser. 0 trains all of D.
    device, precision: see :func:`course_lib.engine.fit` ("auto": CUDA, MPS or CPU).
    step_fn(G, D, opt_g, opt_d, real, z) -> {"loss_d": float, "loss_g": float}: a step of
        your own (notebook 01's exercise 1.3) instead of the built-in one; it must zero,
        backpropagate and step the optimisers itself. One process, no augmentation.
    augment_fn(x, generator=None) -> x: a T of one's own (notebook 03's exercises 3.1-3.3)
        in place of ``diff_augment`` with ``config.policy``, placed as ``config.augment`` says.
    """
    reals = data if isinstance(data, torch.Tensor) else stack_images(data)
    data_source = getattr(data, "source", "tensor given by the caller")
    held = None if heldout is None else spread_subset(heldout, n_monitor)
    start_from = init_from.to_payload() if isinstance(init_from, TrainResult) else init_from
    task = DCGANTask(config, reals, heldout=held, eval_fn=eval_fn, n_monitor=n_monitor,
                     init_from=start_from, freeze_d_layers=freeze_d_layers, data_source=data_source,
                     step_fn=step_fn, augment_fn=augment_fn)
    hook = None
    if callback is not None:
        def hook(step, history, run):
            callback(step, history, TrainResult.from_run(run, config))
    run = fit(task, steps=config.steps, out_dir=out_dir, resume=resume, device=device,
              precision=precision, eval_every=config.eval_every,
              checkpoint_every=config.checkpoint_every, log_every=log_every, progress=progress,
              stop_after=stop_after, preset=preset, callback=hook,
              describe=f"{config.augment} s{config.seed}")
    return TrainResult.from_run(run, config)
