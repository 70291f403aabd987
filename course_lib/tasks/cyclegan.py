"""The CycleGAN task: unpaired translation between two image domains A and B (Zhu, Park,
Isola, Efros, ICCV 2017), trained by the engine's loop (:func:`course_lib.engine.fit`).

Two generators, G_A: A -> B and G_B: B -> A (the authors' ``ResnetGenerator``), and two
70x70 PatchGAN discriminators, D_A judging domain B and D_B judging domain A (their
``NLayerDiscriminator``), as in the authors' code. One step, with the paper's settings:

- G step (D_A and D_B frozen)::

      fake_B = G_A(a), rec_A = G_B(fake_B)        fake_A = G_B(b), rec_B = G_A(fake_A)
      loss_G = LSGAN(D_A(fake_B), real) + LSGAN(D_B(fake_A), real)
             + 10 * (|rec_A - a|_1 + |rec_B - b|_1)                        # cycle
             + 10 * 0.5 * (|G_A(b) - b|_1 + |G_B(a) - a|_1)                # identity

- D step: each D sees reals and fakes drawn from a pool of the last 50 fakes (half the
  time the new fake, half the time an older one, so D does not chase G's latest move)::

      loss_D_A = 0.5 * ((D_A(b) - 1)^2 + D_A(pool_B(fake_B))^2),   likewise D_B.

Adam at 2e-4 with beta1 0.5 for both; the learning rate is constant for the first
``decay_start`` share of the steps (half, as in the paper), then falls linearly towards 0. Weights start from N(0, 0.02).

Data: :func:`unpaired_images` gives the two domains (the embedded stand-in, horse2zebra
when fetched, or a folder with trainA/trainB/testA/testB like the authors' datasets). Each
step draws a random A batch and an independent random B batch, flipped left-right at
random. Under torchrun each rank draws its own (see :mod:`course_lib.engine.distributed`)
and keeps its own image pool; ``batch_size`` is the global batch.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import losses
from course_lib.engine.device import run_in_chunks
from course_lib.engine.loop import Run, StepContext, Task, fit
from course_lib.metrics import Reference
from course_lib.models.cyclegan import NLayerDiscriminator, ResnetGenerator, init_weights
from course_lib.models.registry import model_spec
from course_lib.presets import Preset

DATA_CHOICES = ("embedded", "horse2zebra")


def check_domains(a: torch.Tensor, b: torch.Tensor, image_size: int) -> None:
    """Refuse domains A and B that are not images [N, 3, image_size, image_size]."""
    for name, x in (("A", a), ("B", b)):
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] != image_size:
            raise ValueError(f"domain {name} must be images [N, 3, {image_size}, "
                             f"{image_size}], got {tuple(x.shape)}")


def check_run_settings(cfg) -> None:
    """What every image-to-image run's config must hold (:class:`CycleGANConfig`,
    :class:`course_lib.tasks.distill.DistillConfig`): positive ``steps`` and ``batch_size``,
    ``decay_start`` a share of the run, ``image_size`` a multiple of 4 (the generators
    downsample twice). Raises ``ValueError`` naming the setting."""
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {cfg.steps} and "
                         f"{cfg.batch_size}")
    if not 0 <= cfg.decay_start <= 1:
        raise ValueError(f"decay_start is a share of the run, in [0, 1]; got {cfg.decay_start}")
    if cfg.image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two downsamplings), got "
                         f"{cfg.image_size}")


@dataclass
class CycleGANConfig:
    """Everything that defines a CycleGAN run (saved in every checkpoint)."""
    steps: int = 1500
    decay_start: float = 0.5        # share of the steps at a constant LR; then linear decay to 0
    batch_size: int = 1             # the global batch (split over torchrun ranks)
    image_size: int = 64
    ngf: int = 16
    ndf: int = 32
    n_blocks: int = 6
    n_layers_d: int = 3
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5    # relative to lambda_cycle, as in the authors' code
    pool_size: int = 50
    flip: bool = True
    seed: int = 0
    eval_every: int = 0
    checkpoint_every: int = 0

    def __post_init__(self):
        check_run_settings(self)
        smallest = 3 * 2 ** self.n_layers_d      # the PatchGAN's last maps need 2x2 or more
        if self.image_size < smallest:
            raise ValueError(f"image_size {self.image_size} is too small for a PatchGAN of "
                             f"{self.n_layers_d} layers: use at least {smallest}")

    @classmethod
    def from_preset(cls, preset: Preset, **changes) -> "CycleGANConfig":
        """The CycleGAN track's settings of ``preset`` (``preset.cyclegan``), with ``changes``."""
        c = preset.cyclegan
        base = dict(steps=c.steps, decay_start=c.decay_start, batch_size=c.batch_size,
                    image_size=c.image_size, ngf=c.ngf, ndf=c.ndf, n_blocks=c.n_blocks,
                    n_layers_d=c.n_layers_d, eval_every=c.eval_every)
        base.update(changes)
        return cls(**base)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def lr_factor(step: int, steps: int, decay_start: float) -> float:
    """The learning rate's multiplier at ``step`` (0-based): 1 for the first ``decay_start``
    share of the steps, then linearly down to 1/(n + 1) at the last step, n being the
    decaying steps (the authors' ``linear`` policy, per step instead of per epoch; a
    share rather than a step number, so more ``--steps`` stretch the same schedule)."""
    decay_from = int(steps * decay_start)
    # step + 1, as the authors' epoch + epoch_count: the first decaying step is already
    # below 1, and the last one is at 1/(n + 1).
    return 1.0 - max(0, step + 1 - decay_from) / float(max(1, steps - decay_from) + 1)


class ImagePool:
    """A history of up to ``size`` generated images (Shrivastava et al., 2017).

    ``query(images)`` returns, per image: while the pool fills, the image itself (stored);
    then with probability 1/2 the image itself, else a random stored one, which the new
    image replaces. Draws come from ``generator``, so a seed reproduces them.
    """

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator = size, generator
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": torch.cat(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        images = state.get("images")
        self.images = [] if images is None or images.numel() == 0 else \
            [im.unsqueeze(0).to(device) for im in images]


# --- data ---------------------------------------------------------------------------------

def _as_uint8(ds) -> torch.Tensor:
    """An ImageDataset's images as uint8 [N, 3, S, S] at its ``size`` (4x smaller than float)."""
    if ds.images.shape[-1] == ds.size:
        return ds.images
    return ((ds.tensors() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def unpaired_images(data: str | os.PathLike = "embedded", split: str = "train", size: int = 64
                    ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(A, B, source): the two domains as uint8 [N, 3, size, size] and a description.

    ``data``: "embedded" (natural-colour photo crops as A, poster-style crops of other
    photographs as B, bundled with scikit-image/scikit-learn: 400 train, 60 test each),
    "horse2zebra" (when fetched with ``python data_scripts/get_data.py horse2zebra``), or a
    folder with ``trainA``, ``trainB``, ``testA``, ``testB`` sub-folders of images.
    """
    from course_lib.data import embedded, is_present, load_image_folder, unpaired

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    key = str(data)
    if key == "embedded":
        a, b = embedded.unpaired_domains(split, size)
        source = (f"embedded: {len(a)} natural-colour photo crops (A) and {len(b)} poster-style "
                  f"crops of other photographs (B), {size}x{size}, from scikit-image and "
                  f"scikit-learn (not horse2zebra)")
        return torch.from_numpy(a), torch.from_numpy(b), source
    if key == "horse2zebra":
        if not is_present("horse2zebra"):
            raise ValueError("horse2zebra is not fetched: get it with `python data_scripts/"
                             "get_data.py horse2zebra`, or train on --data embedded")
        ds = unpaired("horse2zebra", split=split, size=size)
        return _as_uint8(ds.domain_a), _as_uint8(ds.domain_b), ds.source
    folder = Path(key).expanduser()
    if not folder.is_dir():
        raise ValueError(f"--data {key!r} is not one of {', '.join(DATA_CHOICES)} and not a "
                         f"folder: give a folder with trainA/ trainB/ testA/ testB/ sub-folders")
    missing = [f"{split}{d}" for d in "AB" if not (folder / f"{split}{d}").is_dir()]
    if missing:
        raise ValueError(f"{folder} has no {' or '.join(missing)} sub-folder: an unpaired set "
                         f"needs trainA/ trainB/ (and testA/ testB/ for evaluation)")
    a = load_image_folder(folder / f"{split}A", size)
    b = load_image_folder(folder / f"{split}B", size)
    source = f"{folder} ({split}: {len(a)} A / {len(b)} B images, {size}x{size})"
    return _as_uint8(a), _as_uint8(b), source


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] in 0..255 -> float in [-1, 1]; float images pass unchanged."""
    return images.float().div(127.5).sub(1.0) if images.dtype == torch.uint8 else images


def translate(G: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """G applied to ``images`` [N, 3, S, S] in [-1, 1] (float or uint8), in chunks, on the
    CPU. G is used as it is (CycleGAN's instance norm behaves the same in both modes)."""
    return run_in_chunks(G, images, batch_size, prepare=to_float)


def unpaired_batch(a: torch.Tensor, b: torch.Tensor, batch_size: int, flip: bool,
                   ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of ``batch_size``: a random A batch and an independent random B
    batch from ``a``/``b`` (uint8 or float [N, 3, S, S]) as floats in [-1, 1], each image
    flipped left-right with probability 1/2 when ``flip`` (the ``data``/``augment`` streams)."""
    per_rank = batch_size // ctx.world_size
    ia = torch.randint(len(a), (per_rank,), generator=ctx.rng["data"])
    ib = torch.randint(len(b), (per_rank,), generator=ctx.rng["data"])
    a, b = to_float(a[ia]), to_float(b[ib])
    if flip:
        flips = torch.rand(2, per_rank, generator=ctx.rng["augment"]) < 0.5
        a = torch.where(flips[0].view(-1, 1, 1, 1), a.flip(-1), a)
        b = torch.where(flips[1].view(-1, 1, 1, 1), b.flip(-1), b)
    return a, b


# --- the task -------------------------------------------------------------------------------

def model_specs(config: CycleGANConfig) -> dict[str, dict]:
    g = model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=config.ngf, n_blocks=config.n_blocks)
    d = model_spec(NLayerDiscriminator, input_nc=3, ndf=config.ndf, n_layers=config.n_layers_d)
    return {"G_A": g, "G_B": g, "D_A": d, "D_B": d}


class CycleGANTask(Task):
    """CycleGAN on in-memory domains ``a``, ``b`` (uint8 [N, 3, S, S]).

    eval_a: test images of A (uint8 or float) translated at each evaluation;
    reference: a :class:`course_lib.metrics.Reference` of domain B's test images. The
    evaluation adds ``fd_a2b``, the Fréchet distance of G_A(test A) to test B (in the
    reference's features).
    """

    name = "cyclegan"
    rng_streams = ("data", "augment", "pool")
    sample_role = "G_A"

    def __init__(self, config: CycleGANConfig, a: torch.Tensor, b: torch.Tensor, *,
                 eval_a: torch.Tensor | None = None, reference: Reference | None = None,
                 data_source: str = ""):
        check_domains(a, b, config.image_size)
        self.cfg, self.seed = config, config.seed
        self.a, self.b = a, b
        self.eval_a, self.reference = eval_a, reference
        self._source = data_source
        self.pools: dict[str, ImagePool] = {}
        self.device = torch.device("cpu")

    @property
    def data_source(self) -> str:
        return self._source

    def config(self) -> dict:
        return self.cfg.as_dict()

    def model_specs(self) -> dict[str, dict]:
        return model_specs(self.cfg)

    def setup(self, models, ctx: StepContext) -> None:
        ctx.check_split(min(len(self.a), len(self.b)), self.cfg.batch_size,
                        "images in the smaller domain")
        for m in models.values():
            init_weights(m, 0.02)
        self.device = ctx.device
        self.pools = {d: ImagePool(self.cfg.pool_size, ctx.rng["pool"]) for d in ("A", "B")}

    def optimizers(self, models):
        betas = (self.cfg.beta1, 0.999)
        g = list(models["G_A"].parameters()) + list(models["G_B"].parameters())
        d = list(models["D_A"].parameters()) + list(models["D_B"].parameters())
        return {"G": torch.optim.Adam(g, lr=self.cfg.lr, betas=betas),
                "D": torch.optim.Adam(d, lr=self.cfg.lr, betas=betas)}

    def lr_factor(self, step: int) -> float:
        return lr_factor(step, self.cfg.steps, self.cfg.decay_start)

    def batch(self, ctx: StepContext):
        return unpaired_batch(self.a, self.b, self.cfg.batch_size, self.cfg.flip, ctx)

    def train_step(self, batch, models, optimizers, ctx: StepContext) -> dict:
        a, b = batch
        c = self.cfg
        G_A, G_B, D_A, D_B = (models[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        with ctx.frozen(D_A, D_B) as (dA, dB), ctx.autocast():
            fake_b, fake_a = G_A(a), G_B(b)
            rec_a, rec_b = G_B(fake_b), G_A(fake_a)
            gan_a = losses.g_loss(dA(fake_b), "lsgan")
            gan_b = losses.g_loss(dB(fake_a), "lsgan")
            cycle_a = F.l1_loss(rec_a, a) * c.lambda_cycle
            cycle_b = F.l1_loss(rec_b, b) * c.lambda_cycle
            if c.lambda_identity > 0:
                idt_a = F.l1_loss(G_A(b), b) * c.lambda_cycle * c.lambda_identity
                idt_b = F.l1_loss(G_B(a), a) * c.lambda_cycle * c.lambda_identity
            else:
                idt_a = idt_b = torch.zeros((), device=a.device)
            loss_g = gan_a + gan_b + cycle_a + cycle_b + idt_a + idt_b
        ctx.update(loss_g, optimizers["G"])
        pooled_b = self.pools["B"].query(fake_b.detach())
        pooled_a = self.pools["A"].query(fake_a.detach())
        with ctx.autocast():
            loss_d_a = 0.5 * losses.d_loss(D_A(b), D_A(pooled_b), "lsgan")
            loss_d_b = 0.5 * losses.d_loss(D_B(a), D_B(pooled_a), "lsgan")
        ctx.update(loss_d_a + loss_d_b, optimizers["D"])
        return {"loss_g_a": gan_a.detach(), "loss_g_b": gan_b.detach(),
                "loss_cycle_a": cycle_a.detach(), "loss_cycle_b": cycle_b.detach(),
                "loss_idt_a": idt_a.detach(), "loss_idt_b": idt_b.detach(),
                "loss_d_a": loss_d_a.detach(), "loss_d_b": loss_d_b.detach()}

    def evaluate(self, models, step: int) -> dict:
        if self.eval_a is None or self.reference is None:
            return {}
        return {"fd_a2b": self.reference.distance(translate(models["G_A"], self.eval_a))}

    def state_dict(self) -> dict:
        return {name: pool.state_dict() for name, pool in self.pools.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, pool_state in state.items():
            if name in self.pools:
                self.pools[name].load_state_dict(pool_state, self.device)


@dataclass
class CycleGANResult:
    """A trained CycleGAN: its four models (eval mode), history and spec."""
    config: CycleGANConfig
    models: dict
    history: dict
    spec: dict
    data_source: str = ""

    @property
    def G_A(self) -> nn.Module:
        return self.models["G_A"]

    @property
    def G_B(self) -> nn.Module:
        return self.models["G_B"]

    def translate(self, images: torch.Tensor, direction: str = "A2B") -> torch.Tensor:
        """A -> B with G_A (``"A2B"``) or B -> A with G_B (``"B2A"``); CPU, [-1, 1]."""
        if direction not in ("A2B", "B2A"):
            raise ValueError(f"direction must be 'A2B' or 'B2A', got {direction!r}")
        return translate(self.G_A if direction == "A2B" else self.G_B, images)

    @classmethod
    def from_run(cls, run: Run, config: CycleGANConfig) -> "CycleGANResult":
        return cls(config, run.models, run.history, run.spec, run.data_source)


def train_cyclegan(a: torch.Tensor, b: torch.Tensor, config: CycleGANConfig, *,
                   eval_a: torch.Tensor | None = None, reference: Reference | None = None,
                   out_dir: str | os.PathLike | None = None, resume: bool = True,
                   device: str = "auto", precision: str = "auto", preset: str | None = None,
                   progress: bool = True, stop_after: int | None = None, log_every: int = 10,
                   data_source: str = "") -> CycleGANResult:
    """Train a CycleGAN on domains ``a`` and ``b`` (uint8 or float [N, 3, S, S]); see
    :class:`CycleGANTask` and :func:`course_lib.engine.fit` for the arguments."""
    task = CycleGANTask(config, a, b, eval_a=eval_a, reference=reference, data_source=data_source)
    run = fit(task, steps=config.steps, out_dir=out_dir, resume=resume, device=device,
              precision=precision, eval_every=config.eval_every,
              checkpoint_every=config.checkpoint_every, log_every=log_every, progress=progress,
              stop_after=stop_after, preset=preset, describe=f"cyclegan s{config.seed}")
    return CycleGANResult.from_run(run, config)
