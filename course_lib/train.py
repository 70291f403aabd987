"""Training a DCGAN, with or without DiffAugment.

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

:func:`train_gan` is the entry point. Every random draw (batch indices, latents,
augmentations) comes from generators saved in the checkpoint, so resuming a run gives
the same weights as running it without interruption.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import losses
from course_lib.diffaugment import diff_augment
from course_lib.fileio import atomic_torch_save, load_checkpoint
from course_lib.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_lib.monitor import evaluate_discriminator
from course_lib.presets import Preset

STRATEGIES = ("none", "real_only", "d_step_only", "diffaugment")


@dataclass
class TrainConfig:
    """Everything that defines a run. Saved in every checkpoint."""
    steps: int = 500
    batch_size: int = 64
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
        base = dict(steps=preset.gan_steps, batch_size=preset.batch_size, ngf=preset.ngf,
                    ndf=preset.ndf, eval_every=preset.eval_every)
        base.update(changes)
        return cls(**base)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- the losses of one step, per strategy --------------------------------------------

def discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, augment: str = "none",
                       T: Callable | None = None, kind: str = "hinge") -> torch.Tensor:
    """D's loss on a batch of reals and (detached) fakes, with the strategy's augmentation.

    real, fake: [N, 3, H, W] in [-1, 1]; T: images -> augmented images (differentiable).
    """
    if augment != "none" and T is None:
        raise ValueError(f"strategy {augment!r} needs an augmentation T")
    if augment in ("real_only", "d_step_only", "diffaugment"):
        real = T(real)
    if augment in ("d_step_only", "diffaugment"):
        fake = T(fake)
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
    """One D step then one G step. Returns the two losses as floats."""
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


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay to use after ``step`` updates: ramps up as (1 + step) / (10 + step).

    Without the ramp a 0.999 average still holds 37% of the random initial weights after
    1,000 steps (0.999**1000); with it the average only ever spans the recent past.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema_model.buffers(), model.buffers()):
        b_ema.copy_(b)


# --- the run ----------------------------------------------------------------------------

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


def fixed_latents(n: int, z_dim: int, seed: int = 1234) -> torch.Tensor:
    """The same latents every time, so sample grids and metrics compare across runs."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@dataclass
class TrainResult:
    config: TrainConfig
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    history: dict = field(default_factory=dict)
    data_source: str = ""

    @property
    def G_eval(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int = 64, seed: int = 1234) -> torch.Tensor:
        G = self.G_eval.eval()
        return G(fixed_latents(n, self.config.z_dim, seed))

    def to_payload(self) -> dict:
        """What the model zoo stores (tensors and plain values only)."""
        return {
            "config": self.config.as_dict(),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "history": self.history,
            "data_source": self.data_source,
        }

    @classmethod
    def from_payload(cls, payload: dict) -> "TrainResult":
        config = TrainConfig(**payload["config"])
        G, D = build_models(config)
        G.load_state_dict(payload["G"])
        D.load_state_dict(payload["D"])
        G_ema = None
        if payload.get("G_ema") is not None:
            G_ema = copy.deepcopy(G)
            G_ema.load_state_dict(payload["G_ema"])
        return cls(config, G.eval(), D.eval(), G_ema.eval() if G_ema else None,
                   payload.get("history", {}), payload.get("data_source", ""))


def build_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    G = DCGANGenerator(z_dim=config.z_dim, ngf=config.ngf, image_size=config.image_size)
    D = DCGANDiscriminator(ndf=config.ndf, image_size=config.image_size, spectral_norm=config.spectral_norm)
    return G, D


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


def _rng_states(gens: dict[str, torch.Generator]) -> dict:
    return {k: g.get_state() for k, g in gens.items()}


def train_gan(
    data,
    config: TrainConfig,
    *,
    heldout=None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    callback: Callable[[int, dict, "TrainResult"], None] | None = None,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    n_monitor: int = 256,
    progress: bool = True,
    stop_after: int | None = None,
    init_from: dict | TrainResult | None = None,
    freeze_d_layers: int = 0,
) -> TrainResult:
    """Train a DCGAN on ``data`` and return the models and their history.

    data: a dataset (items are images or (image, label) pairs, [3, H, W] in [-1, 1]) or a
        tensor [N, 3, H, W]. ``heldout``: real images D never trains on; with it the
        history records D's accuracy on training vs held-out reals (the overfitting gap).
    out_dir: where ``checkpoint.pt`` is written every ``config.checkpoint_every`` steps and
        at the end (atomically). With ``resume`` a matching checkpoint there is continued.
    callback(step, history, result): called after every evaluation (live plots).
    eval_fn(G) -> dict of figures (e.g. {"fd": ...}) added to the history at every evaluation.
    stop_after: stop early after this many steps of this call (to demonstrate resuming).
    init_from: start from pretrained weights instead of a random init (fine-tuning): a
        :class:`TrainResult` or its payload (a dict with "G" and "D" state dicts) of the
        same architecture. The EMA generator starts as a copy of the loaded G.
    freeze_d_layers: FreezeD (Mo et al., 2020): keep D's first N conv layers (and their
        norms) fixed; they are left out of D's optimiser. 0 trains all of D.
    With neither, training and its checkpoints are exactly as before; with either, the
    checkpoint records them and a resume with different ones is refused.
    """
    reals = data if isinstance(data, torch.Tensor) else stack_images(data)
    data_source = getattr(data, "source", "tensor given by the caller")
    if reals.shape[-1] != config.image_size:
        raise ValueError(f"images are {reals.shape[-1]}px but config.image_size is {config.image_size}: "
                         f"load the data at that size or change the config")
    held = None if heldout is None else (heldout if isinstance(heldout, torch.Tensor)
                                         else stack_images(heldout, n_monitor))

    torch.manual_seed(config.seed)  # initial weights
    G, D = build_models(config)
    init_info = None
    if init_from is not None or freeze_d_layers:
        init_info = {"init_from": init_from is not None, "freeze_d_layers": int(freeze_d_layers)}
    if init_from is not None:
        start_from = init_from.to_payload() if isinstance(init_from, TrainResult) else init_from
        G.load_state_dict(start_from["G"])
        D.load_state_dict(start_from["D"])
    d_params = freeze_discriminator_layers(D, freeze_d_layers) if freeze_d_layers else D.parameters()
    G_ema = copy.deepcopy(G).eval() if config.ema else None
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(d_params, lr=config.lr_d, betas=config.betas)
    gens = {name: torch.Generator().manual_seed(config.seed * 1000 + i)
            for i, name in enumerate(("data", "z", "augment"))}
    history: dict[str, list] = {"step": [], "loss_d": [], "loss_g": [], "eval_step": []}
    start = 0

    ckpt_path = Path(out_dir) / "checkpoint.pt" if out_dir else None
    if ckpt_path and resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["config"] != config.as_dict():
            raise ValueError(f"{ckpt_path} was made with a different configuration; "
                             f"use another --out folder or pass resume=False to start over")
        if ckpt.get("init") != init_info:
            raise ValueError(f"{ckpt_path} was made with other init_from/freeze_d_layers "
                             f"({ckpt.get('init')}, now {init_info}); use another out_dir "
                             f"or pass resume=False to start over")
        G.load_state_dict(ckpt["G"]); D.load_state_dict(ckpt["D"])
        if G_ema is not None:
            G_ema.load_state_dict(ckpt["G_ema"])
        opt_g.load_state_dict(ckpt["opt_g"]); opt_d.load_state_dict(ckpt["opt_d"])
        for name, state in ckpt["rng"].items():
            gens[name].set_state(state)
        history, start = ckpt["history"], ckpt["step"]

    result = TrainResult(config, G, D, G_ema, history, data_source)
    T = lambda x: diff_augment(x, config.policy, generator=gens["augment"])  # noqa: E731
    monitor_fakes_z = fixed_latents(n_monitor, config.z_dim, seed=4321)
    monitor_reals = reals[:n_monitor]

    def save_checkpoint(step):
        if ckpt_path:
            ckpt = {
                "config": config.as_dict(), "step": step, "history": history,
                "G": G.state_dict(), "D": D.state_dict(),
                "G_ema": G_ema.state_dict() if G_ema is not None else None,
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": _rng_states(gens),
            }
            if init_info is not None:
                ckpt["init"] = init_info
            atomic_torch_save(ckpt, ckpt_path)

    def evaluate(step):
        history["eval_step"].append(step)
        G_eval = result.G_eval.eval()
        with torch.no_grad():
            fakes = G_eval(monitor_fakes_z)
        figures = evaluate_discriminator(D, monitor_reals, held, fakes)
        if eval_fn is not None:
            figures.update(eval_fn(G_eval))
        G.train(); D.train()  # evaluation switched them to eval mode
        for key, value in figures.items():
            history.setdefault(key, []).append(float(value))
        if callback is not None:
            callback(step, history, result)

    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    G.train(); D.train()
    bar = tqdm(range(start, end), initial=start, total=config.steps, disable=not progress,
               desc=f"{config.augment} s{config.seed}", leave=False)
    for step in bar:
        idx = torch.randint(len(reals), (config.batch_size,), generator=gens["data"])
        z = torch.randn(config.batch_size, config.z_dim, generator=gens["z"])
        out = train_step(G, D, opt_g, opt_d, reals[idx], z, config.augment, T, config.loss)
        if G_ema is not None:
            update_ema(G_ema, G, ema_decay(config.ema, step))
        history["step"].append(step + 1)
        history["loss_d"].append(out["loss_d"])
        history["loss_g"].append(out["loss_g"])
        if step % 10 == 0:
            bar.set_postfix(loss_d=f"{out['loss_d']:.3f}", loss_g=f"{out['loss_g']:.3f}")
        done = step + 1
        if config.eval_every and done % config.eval_every == 0 and done != config.steps:
            evaluate(done)
        if config.checkpoint_every and done % config.checkpoint_every == 0:
            save_checkpoint(done)
    bar.close()
    if end == config.steps and (not history["eval_step"] or history["eval_step"][-1] != end):
        evaluate(end)
    save_checkpoint(end)
    G.eval(); D.eval()
    return result
