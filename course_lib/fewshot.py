"""Few-shot generation: the same ~100 images trained four ways (notebook 04).

==========================  ===================================  ===============
way                         starts from                          augmentation
==========================  ===================================  ===============
``baseline``                random weights                       none
``diffaugment``             random weights                       DiffAugment
``finetune``                a G/D pair pretrained on a larger    none
                            set (the CIFAR track at 64x64)
``finetune_diffaugment``    the same pretrained pair             DiffAugment
==========================  ===================================  ===============

The DiffAugment paper (Zhao et al., NeurIPS 2020) trains StyleGAN2 on 100 images of one
face or animal; with DiffAugment the FID against the training set falls from 80.20 to
46.87 (100-shot Obama), 48.90 to 27.08 (grumpy cat), 34.27 to 12.06 (panda), and
fine-tuning a pretrained model with DiffAugment is better still. Here the model is the
course's small DCGAN at 64x64 and the pretrained model is trained in-course on the CIFAR
track (cached in the model zoo), so the numbers are ours, not the paper's.

FreezeD (Mo, Cho, Shin, 2020) keeps D's lower layers fixed while fine-tuning:
``freeze_d_layers`` in :class:`FewShotSettings`.

Notebook 04 shows recorded runs (curves, final figures and sample grids made by
:func:`record` with the class preset, shipped in ``course_lib/recorded/<preset>/``) and
re-runs one live. Recreate the recordings with::

    python -m course_lib.fewshot --preset class

Metrics: a Fréchet distance and KID against the *training* images, as the low-shot
papers do (there is no test split), labelled with the feature extractor's name.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib import zoo
from course_lib.experiments import RECORDED_DIR, Reference, _grid_u8, _thin_losses, feature_stats
from course_lib.metrics import default_extractor, kid
from course_lib.models.dcgan import SIZES
from course_lib.presets import PRESETS, Preset, get_preset, with_overrides
from course_lib.train import TrainConfig, TrainResult, fixed_latents, stack_images, train_gan

WAYS = ("baseline", "diffaugment", "finetune", "finetune_diffaugment")
WAY_LABELS = {
    "baseline": "from scratch",
    "diffaugment": "from scratch + DiffAugment",
    "finetune": "fine-tune",
    "finetune_diffaugment": "fine-tune + DiffAugment",
}
DEFAULT_SET = "100-shot-obama"
RECORDING_STEM = "fewshot"       # recorded/<preset>/fewshot_runs.json, fewshot_samples.npz
N_SEEDS = 2                      # seeds averaged in the comparison (fewer if the preset has fewer)
# Preset values measured for the few-shot track (see notebook 04), applied with
# ``with_overrides`` until ``presets.py`` carries them; a no-op once it does.
PRESET_OVERRIDES = {"class": {"fewshot_steps": 400, "pretrain_steps": 300}}
# Network width (ngf = ndf) of the few-shot DCGAN. A 64x64 DCGAN costs about 5x a 32x32
# one at the same width, so the class preset halves the width to stay in budget.
WIDTHS = {"ci": 8, "class": 16}


@dataclass(frozen=True)
class FewShotSettings:
    """How the few-shot runs (and the model they fine-tune from) are trained."""
    image_size: int
    steps: int                  # steps of each few-shot run
    pretrain_steps: int         # steps of the pretrained model
    batch_size: int
    width: int                  # ngf = ndf
    lr_g: float
    lr_d: float
    lr_finetune: float          # learning rate (G and D) when fine-tuning
    ema: float | None           # EMA decay of G; None: sample G itself (see settings_for)
    freeze_d_layers: int        # FreezeD: D's conv layers kept fixed when fine-tuning
    policy: str                 # DiffAugment policy
    loss: str
    n_eval: int                 # generated samples for FD/KID
    eval_every: int
    n_seeds: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def settings_for(preset: str | Preset | None = None, **changes) -> FewShotSettings:
    """The few-shot settings of a preset; ``changes`` override single fields.

    The DCGAN here supports 32x32 and 64x64 images, so a preset asking for more (the
    ``full`` preset's 256) trains at 64x64, with a note.

    Measured on the class preset (100 embedded faces, 64x64, width 16, batch 32):
    at lr 2e-4 a run of 300 steps was still noise, at 5e-4 faces appear within 400
    steps; an EMA generator (0.99) came out washed-out (its BatchNorm statistics are
    copied from G, which has moved on), so few-shot runs sample G itself; and cutout
    slowed learning at this budget, so the policy is ``color,translation``.
    """
    preset = get_preset(preset)
    if preset.name in PRESET_OVERRIDES and preset == PRESETS.get(preset.name):  # the stock preset
        preset = with_overrides(preset, **PRESET_OVERRIDES[preset.name])
    size = preset.fewshot_size
    if size not in SIZES:
        size = max(s for s in SIZES if s <= size) if size > min(SIZES) else min(SIZES)
        print(f"note: the course's DCGAN supports {SIZES} pixels; preset {preset.name!r} "
              f"asks for {preset.fewshot_size}, so few-shot runs use {size}x{size}")
    steps = preset.fewshot_steps
    base = FewShotSettings(
        image_size=size, steps=steps, pretrain_steps=preset.pretrain_steps,
        batch_size=min(preset.batch_size, 32), width=WIDTHS.get(preset.name, preset.ngf),
        lr_g=5e-4, lr_d=5e-4, lr_finetune=5e-4, ema=None, freeze_d_layers=0,
        policy="color,translation", loss="hinge", n_eval=preset.n_eval,
        eval_every=max(5, steps // 5), n_seeds=min(N_SEEDS, preset.n_seeds),
    )
    return dataclasses.replace(base, **changes)


# --- data ----------------------------------------------------------------------------------

def fewshot_data(name: str = DEFAULT_SET, size: int = 64):
    """The ~100-image set: the real one if fetched, else 100 embedded LFW faces."""
    from course_lib.data import few_shot

    return few_shot(name, size=size)


def pretrain_data(size: int = 64):
    """The larger set the pretrained model learns: the CIFAR track's training split
    (real CIFAR-10 if fetched, else the 2,000 embedded crops), resized to ``size``."""
    from course_lib.data import cifar10

    ds = cifar10(split="train")
    ds.size = size
    ds.source = f"{ds.source}; resized to {size}x{size}"
    return ds


def images_of(data) -> torch.Tensor:
    """Every image of a dataset (or a tensor) as float [N, 3, H, W] in [-1, 1]."""
    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "tensors"):
        return data.tensors()
    return stack_images(data)


def fingerprint(images: torch.Tensor) -> str:
    """A short hash of the image values: a zoo entry trained on other images is another entry."""
    q = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).contiguous().numpy()
    return hashlib.sha256(q.tobytes() + str(q.shape).encode()).hexdigest()[:16]


# --- the reference the samples are compared with ------------------------------------------------

@dataclass
class TrainingSetReference(Reference):
    """Features of the training images: FD (from :class:`Reference`) and KID against them."""
    feats: np.ndarray | None = None

    def kid(self, images: torch.Tensor, seed: int = 0):
        """KID (mean, std over subsets) between ``images`` and the training images."""
        fake = np.concatenate([self.extractor(images[i:i + 250]) for i in range(0, len(images), 250)])
        return kid(self.feats, fake, n_subsets=50, seed=seed)


def training_set_reference(images: torch.Tensor, extractor=None) -> TrainingSetReference:
    extractor = extractor or default_extractor()
    feats = np.concatenate([extractor(images[i:i + 250]) for i in range(0, len(images), 250)])
    mu, sigma = feats.mean(axis=0), np.cov(feats, rowvar=False)
    return TrainingSetReference(extractor, mu, sigma, len(images), feats)


def evaluate(G, reference: TrainingSetReference, n_samples: int, seed: int = 777) -> dict:
    """FD and KID of ``n_samples`` fixed-latent samples of G against the reference."""
    z = fixed_latents(n_samples, G.z_dim, seed)
    was_training = G.training
    G.eval()
    with torch.no_grad():
        fakes = torch.cat([G(z[i:i + 250]) for i in range(0, n_samples, 250)])
    G.train(was_training)
    mu, sigma = feature_stats(reference.extractor, fakes)
    from course_lib.metrics import frechet_distance

    k = reference.kid(fakes)
    return {"fd": float(frechet_distance(mu, sigma, reference.mu, reference.sigma)),
            "kid": k.mean, "kid_std": k.std}


def fewshot_eval_fn(reference: TrainingSetReference, n_samples: int):
    """An ``eval_fn`` for :func:`course_lib.train.train_gan` adding fd, kid and kid_std."""
    return lambda G: evaluate(G, reference, n_samples)


# --- the pretrained model ------------------------------------------------------------------

def pretrain_config(s: FewShotSettings, seed: int = 0) -> TrainConfig:
    return TrainConfig(steps=s.pretrain_steps, batch_size=s.batch_size, image_size=s.image_size,
                       ngf=s.width, ndf=s.width, lr_g=s.lr_g, lr_d=s.lr_d, loss=s.loss,
                       augment="none", ema=s.ema, seed=seed, eval_every=0)


def pretrained_model(preset: str | Preset | None = None, settings: FewShotSettings | None = None,
                     progress: bool = True) -> TrainResult:
    """The G/D pair the fine-tuning runs start from: trained on :func:`pretrain_data`
    for ``settings.pretrain_steps`` steps, or loaded from the zoo."""
    preset = get_preset(preset)
    s = settings or settings_for(preset)
    config = pretrain_config(s)

    def train(p: Preset, seed: int) -> dict:
        data = pretrain_data(s.image_size)
        started = time.perf_counter()
        result = train_gan(data, config, progress=progress)
        payload = result.to_payload()
        payload.update(n_train=len(data), seconds=round(time.perf_counter() - started, 1))
        return payload

    payload = zoo.load_or_train(f"dcgan-pretrain-cifar-{s.image_size}px", train, preset=preset,
                                seed=0, config={**config.as_dict(), "data": "cifar10 train"})
    result = TrainResult.from_payload(payload)
    result.n_train = payload.get("n_train")
    result.seconds = payload.get("seconds")
    return result


# --- one few-shot run --------------------------------------------------------------------

def fewshot_config(way: str, s: FewShotSettings, seed: int = 0) -> TrainConfig:
    if way not in WAYS:
        raise ValueError(f"unknown way {way!r}: choose one of {', '.join(WAYS)}")
    finetune = way.startswith("finetune")
    lr_g = s.lr_finetune if finetune else s.lr_g
    lr_d = s.lr_finetune if finetune else s.lr_d
    return TrainConfig(steps=s.steps, batch_size=s.batch_size, image_size=s.image_size,
                       ngf=s.width, ndf=s.width, lr_g=lr_g, lr_d=lr_d, loss=s.loss,
                       augment="diffaugment" if way.endswith("diffaugment") else "none",
                       policy=s.policy, ema=s.ema, seed=seed, eval_every=s.eval_every)


def fewshot_run(way: str, seed: int = 0, preset: str | Preset | None = None, data=None,
                settings: FewShotSettings | None = None,
                reference: TrainingSetReference | None = None, use_zoo: bool = True,
                progress: bool = True) -> TrainResult:
    """Train (or load from the zoo) one of the four :data:`WAYS` on ``data``.

    data: a dataset or a tensor [N, 3, S, S] in [-1, 1] at ``settings.image_size``
        (default: :func:`fewshot_data`). The history holds ``fd``, ``kid`` and ``kid_std``
        against the training images every ``settings.eval_every`` steps.
    Returns the :class:`TrainResult` with ``.feature_extractor``, ``.n_train`` and
    ``.data_source`` set.
    """
    preset = get_preset(preset)
    s = settings or settings_for(preset)
    data = data if data is not None else fewshot_data(size=s.image_size)
    images = images_of(data)
    source = getattr(data, "source", "images given as a tensor")
    config = fewshot_config(way, s, seed)
    finetune = way.startswith("finetune")

    def train(p: Preset, sd: int) -> dict:
        ref = reference or training_set_reference(images)
        init = pretrained_model(p, s, progress=progress).to_payload() if finetune else None
        started = time.perf_counter()
        result = train_gan(images, config, eval_fn=fewshot_eval_fn(ref, s.n_eval),
                           init_from=init, freeze_d_layers=s.freeze_d_layers if finetune else 0,
                           progress=progress)
        payload = result.to_payload()
        payload.update(feature_extractor=ref.label, n_train=len(images), data_source=source,
                       seconds=round(time.perf_counter() - started, 1))
        return payload

    described = {**config.as_dict(), "way": way, "data": fingerprint(images),
                 "freeze_d_layers": s.freeze_d_layers if finetune else 0,
                 "pretrain": pretrain_config(s).as_dict() if finetune else None}
    if use_zoo:
        payload = zoo.load_or_train(f"fewshot-{way}", train, preset=preset, seed=seed,
                                    config=described)
    else:
        payload = train(preset, seed)
    result = TrainResult.from_payload(payload)
    result.feature_extractor = payload.get("feature_extractor", "")
    result.n_train = payload.get("n_train")
    result.data_source = payload.get("data_source", source)
    result.seconds = payload.get("seconds")
    return result


# --- recordings shipped with the library ----------------------------------------------------

def record(preset: str | Preset = "class", out_dir: str | Path | None = None, n_samples: int = 16,
           settings: FewShotSettings | None = None, ways=WAYS) -> Path:
    """Train the four ways x ``settings.n_seeds`` seeds and save curves and samples.

    Writes ``fewshot_runs.json`` (settings, histories, final figures, seconds) and
    ``fewshot_samples.npz`` (uint8 [n_samples, 3, S, S] of each run's fixed latents at the
    end, and of the pretrained model) into ``out_dir`` (default recorded/<preset>/).
    """
    preset = get_preset(preset)
    s = settings or settings_for(preset)
    out_dir = Path(out_dir) if out_dir else RECORDED_DIR / preset.name
    data = fewshot_data(size=s.image_size)
    images = images_of(data)
    reference = training_set_reference(images)
    pre = pretrained_model(preset, s)
    pretrain = {"steps": s.pretrain_steps, "seconds": pre.seconds,
                "data_source": pretrain_data(s.image_size).source,
                "final": evaluate(pre.G_eval, reference, s.n_eval)}
    samples = {"pretrained": _grid_u8(pre.sample(n_samples))}
    runs = []
    for way in ways:
        for seed in range(s.n_seeds):
            result = fewshot_run(way, seed, preset, data=data, settings=s, reference=reference)
            key = f"{way}-s{seed}"
            runs.append({
                "key": key, "way": way, "seed": seed, "n_train": result.n_train,
                "history": _thin_losses(result.history),
                "final": {k: v[-1] for k, v in result.history.items() if v and k != "eval_step"},
                "seconds": result.seconds,     # training time (the run may come from the zoo)
            })
            samples[key] = _grid_u8(result.sample(n_samples))
            f = runs[-1]["final"]
            print(f"{key}: fd {f['fd']:.2f}, kid {f['kid'] * 1e3:.2f}e-3 ({runs[-1]['seconds']} s)")
    meta = {"preset": preset.name, "feature_extractor": reference.label,
            "data_source": data.source, "n_train": len(images), "settings": s.as_dict(),
            "pretrain": pretrain, "runs": runs,
            "machine": {"torch_threads": torch.get_num_threads(),
                        "load_average": [round(x, 2) for x in os.getloadavg()]}}
    from course_lib.fileio import atomic_path

    with atomic_path(out_dir / f"{RECORDING_STEM}_runs.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    with atomic_path(out_dir / f"{RECORDING_STEM}_samples.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **samples)
    return out_dir


@dataclass
class FewShotRecording:
    """Recorded few-shot runs: ``runs`` (dicts as written by :func:`record`) and samples."""
    preset: str
    feature_extractor: str
    data_source: str
    settings: dict
    pretrain: dict
    runs: list
    samples: dict

    def find(self, way: str, seed: int = 0) -> dict:
        for run in self.runs:
            if run["way"] == way and run["seed"] == seed:
                return run
        raise KeyError(f"no recorded run with way={way!r}, seed={seed}")

    def images(self, run_or_key) -> torch.Tensor:
        """A run's (or "pretrained") final samples as floats [n, 3, S, S] in [-1, 1]."""
        key = run_or_key if isinstance(run_or_key, str) else run_or_key["key"]
        return torch.from_numpy(self.samples[key]).float() / 127.5 - 1

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.runs})

    def mean_final(self, way: str, key: str) -> float:
        values = [r["final"][key] for r in self.runs if r["way"] == way]
        if not values:
            raise KeyError(f"no recorded runs of {way!r}")
        return float(np.mean(values))

    def table(self) -> list[dict]:
        """One row per way: mean FD and KID over the seeds, and each seed's values."""
        rows = []
        for way in WAYS:
            runs = [r for r in self.runs if r["way"] == way]
            if runs:
                rows.append({"way": way, "label": WAY_LABELS[way], "n_seeds": len(runs),
                             "fd": self.mean_final(way, "fd"), "kid": self.mean_final(way, "kid"),
                             "fd_per_seed": [r["final"]["fd"] for r in runs],
                             "kid_per_seed": [r["final"]["kid"] for r in runs]})
        return rows


def load_fewshot_recording(preset: str = "class", directory: str | Path | None = None) -> FewShotRecording:
    directory = Path(directory) if directory else RECORDED_DIR / preset
    path = directory / f"{RECORDING_STEM}_runs.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded few-shot runs in {directory}: make them with "
                                f"`python -m course_lib.fewshot --preset {preset}`")
    meta = json.loads(path.read_text())
    with np.load(directory / f"{RECORDING_STEM}_samples.npz") as npz:
        samples = {k: npz[k] for k in npz.files}
    return FewShotRecording(meta["preset"], meta["feature_extractor"], meta["data_source"],
                            meta["settings"], meta["pretrain"], meta["runs"], samples)


# --- "your own 100 photos": a demo folder with the usual mess ------------------------------------

def make_demo_folder(path: str | Path, n: int = 24, size: int = 64) -> Path:
    """Write a small folder of photos to try ``load_image_folder`` on: ``n`` embedded LFW
    faces as PNG/JPEG, plus the files real folders contain: one corrupt JPEG (cut off
    after its header), one 16-bit grayscale PNG (an "odd mode" the loader rescales), one
    palette GIF and a ``notes.txt``. Returns the folder."""
    from PIL import Image

    from course_lib.data import embedded

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    faces = embedded.lfw_faces(size)[:n]                    # uint8 [n, 3, S, S]
    for i, face in enumerate(faces):
        im = Image.fromarray(face.transpose(1, 2, 0))
        if i % 2:
            im.save(folder / f"face_{i:03d}.jpg", quality=92)
        else:
            im.save(folder / f"face_{i:03d}.png")
    # a JPEG cut off after 200 bytes: the header parses, the image data is missing
    full = folder / "face_000.png"
    buffer = folder / "broken_upload.jpg"
    Image.open(full).convert("RGB").save(buffer, quality=92)
    buffer.write_bytes(buffer.read_bytes()[:200])
    # 16-bit grayscale (scientific cameras, some scanners): values 0..65535
    gray16 = (faces[-1, 0].astype(np.uint16) * 257)
    Image.fromarray(gray16).save(folder / "scan_16bit.png")
    # a palette image (GIF)
    Image.fromarray(faces[0].transpose(1, 2, 0)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        folder / "palette.gif")
    (folder / "notes.txt").write_text("not an image: the loader skips it\n")
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=record.__doc__.splitlines()[0])
    parser.add_argument("--preset", default="class")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    print(f"recorded few-shot runs written to {record(args.preset, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
