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
import time
from pathlib import Path

import numpy as np
import torch

from course_lib import recording, zoo
from course_lib.fileio import atomic_torch_save, read_checkpoint
from course_lib.metrics import Reference, feature_stats, frechet_distance, kid
from course_lib.metrics.prdc import density_coverage, precision_recall
from course_lib.models.dcgan import SIZES
from course_lib.presets import FewShotSettings, Preset, get_preset
from course_lib.recording import RECORDED_DIR, Recording, record_runs, to_fp16, to_fp32
from course_lib.train import (TrainConfig, TrainResult, fixed_latents, generate, images_of,
                              train_gan)

WAYS = ("baseline", "diffaugment", "finetune", "finetune_diffaugment")
WAY_LABELS = {
    "baseline": "from scratch",
    "diffaugment": "from scratch + DiffAugment",
    "finetune": "fine-tune",
    "finetune_diffaugment": "fine-tune + DiffAugment",
}
DEFAULT_SET = "100-shot-obama"
# Bump when these runs' training or evaluation changes, so their zoo entries are remade.
# 2: precision, recall, density and coverage at every evaluation; D's monitor as it trains.
# 3: the pretrained model is tracked (FD every tenth of its run), trained to convergence,
#    and its weights go through fp16 (it is shipped).
RECIPE = 3
PRETRAINED_FILE = "fewshot_pretrained.pt"

__all__ = ["WAYS", "WAY_LABELS", "DEFAULT_SET", "FewShotSettings", "settings_for", "fewshot_data",
           "pretrain_data", "images_of", "fingerprint", "training_set_reference", "evaluate",
           "fewshot_eval_fn", "pretrain_config", "pretrained_model", "fewshot_config",
           "fewshot_run", "record", "load_fewshot_recording", "make_demo_folder", "RECORDED_DIR"]


def settings_for(preset: str | Preset | None = None, **changes) -> FewShotSettings:
    """The few-shot settings of a preset (``preset.fewshot``, see
    :class:`course_lib.presets.FewShotSettings`); ``changes`` override single fields."""
    s = dataclasses.replace(get_preset(preset).fewshot, **changes)
    if s.image_size not in SIZES:
        raise ValueError(f"the course's DCGAN supports {SIZES} pixels, not image_size="
                         f"{s.image_size}: choose one of those")
    return s


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


def fingerprint(images: torch.Tensor) -> str:
    """A short hash of the image values: a zoo entry trained on other images is another entry."""
    q = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).contiguous().numpy()
    return hashlib.sha256(q.tobytes() + str(q.shape).encode()).hexdigest()[:16]


# --- the reference the samples are compared with ------------------------------------------------

def training_set_reference(images: torch.Tensor, extractor=None) -> Reference:
    """The training images as a :class:`course_lib.metrics.Reference` that keeps its
    features (FD and KID against the training set, as the low-shot papers measure)."""
    return Reference.of(images, extractor, keep_features=True)


def evaluate(G, reference: Reference, n_samples: int, seed: int = 777) -> dict:
    """FD and KID of ``n_samples`` fixed-latent samples of G against the reference, and
    quality against diversity in the same features: ``precision`` and ``recall``
    (Kynkäänniemi et al., 2019, k = 3), ``density`` and ``coverage`` (Naeem et al., 2020,
    k = 5). A generator that collapses onto a few training images can keep a low FD but
    loses recall and coverage."""
    was_training = G.training
    fakes = generate(G.eval(), fixed_latents(n_samples, G.z_dim, seed))
    G.train(was_training)
    feats = reference.features(fakes)
    k = kid(reference.feats, feats, n_subsets=50, seed=0)
    precision, recall = precision_recall(reference.feats, feats, k=3)
    density, coverage = density_coverage(reference.feats, feats, k=5)
    return {"fd": float(frechet_distance(*feature_stats(feats), reference.mu, reference.sigma)),
            "kid": k.mean, "kid_std": k.std, "precision": precision, "recall": recall,
            "density": density, "coverage": coverage}


def fewshot_eval_fn(reference: Reference, n_samples: int):
    """An ``eval_fn`` for :func:`course_lib.train.train_gan` adding fd, kid, kid_std,
    precision, recall, density and coverage."""
    return lambda G: evaluate(G, reference, n_samples)


# --- the pretrained model ------------------------------------------------------------------

def pretrain_config(s: FewShotSettings, seed: int = 0) -> TrainConfig:
    return TrainConfig(steps=s.pretrain_steps, batch_size=s.batch_size, image_size=s.image_size,
                       ngf=s.width, ndf=s.width, lr_g=s.lr_g, lr_d=s.lr_d, loss=s.loss,
                       augment="none", ema=s.ema, seed=seed,
                       eval_every=max(1, s.pretrain_steps // 10))


def _pretrain_described(s: FewShotSettings, data_source: str) -> dict:
    """What the pretrained model is: its zoo configuration and the shipped file's label."""
    return {**pretrain_config(s).as_dict(), "data": data_source, "recipe": RECIPE}


def shipped_pretrained_path(preset: str) -> Path:
    """Where a recording ships its pretrained model: ``recorded/<preset>/fewshot_pretrained.pt``."""
    return RECORDED_DIR / preset / PRETRAINED_FILE


def pretrained_model(preset: str | Preset | None = None, settings: FewShotSettings | None = None,
                     progress: bool = True) -> TrainResult:
    """The G/D pair the fine-tuning runs start from: trained on :func:`pretrain_data` for
    ``settings.pretrain_steps`` steps, with its FD (and precision, recall, density,
    coverage) against that set in ``history`` every tenth of the run, so that a notebook
    can show it has converged.

    It comes from the file the recording ships (``recorded/<preset>/fewshot_pretrained.pt``,
    fp16) when that file describes this very model, else from the zoo, else it is trained.
    Its weights go through fp16 whichever way it comes, so fine-tuning starts from the same
    weights on every machine.
    """
    preset = get_preset(preset)
    s = settings or settings_for(preset)
    config = pretrain_config(s)
    data = pretrain_data(s.image_size)
    described = _pretrain_described(s, data.source)
    shipped = shipped_pretrained_path(preset.name)
    if shipped.exists():
        payload = read_checkpoint(shipped, advice="reinstall the course, or remake the recording "
                                                  "with `python -m course_lib.fewshot`")
        if payload.get("described") == described:
            return TrainResult.from_payload(to_fp32(payload))

    def train(p: Preset, seed: int) -> dict:
        images = images_of(data)
        reference = training_set_reference(images)
        started = time.perf_counter()
        result = train_gan(images, config, eval_fn=fewshot_eval_fn(reference, s.n_eval),
                           progress=progress, preset=p.name)
        payload = result.to_payload()
        payload.update(feature_extractor=reference.label, n_train=len(images),
                       data_source=data.source, seconds=round(time.perf_counter() - started, 1))
        return payload

    payload = zoo.load_or_train(f"dcgan-pretrain-cifar-{s.image_size}px", train, preset=preset,
                                seed=0, config=described, recipe=RECIPE)
    return TrainResult.from_payload(to_fp32(to_fp16(payload)))


def ship_pretrained(model: TrainResult, settings: FewShotSettings, path: str | Path) -> Path:
    """Write ``model`` (from :func:`pretrained_model`) in fp16 where
    :func:`pretrained_model` looks for it."""
    payload = {**model.to_payload(), "described": _pretrain_described(settings, model.data_source),
               "feature_extractor": model.feature_extractor, "n_train": model.n_train,
               "seconds": model.seconds}
    return atomic_torch_save(to_fp16(payload), path)


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
                reference: Reference | None = None, use_zoo: bool = True,
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
                           progress=progress, preset=p.name)
        payload = result.to_payload()
        payload.update(feature_extractor=ref.label, n_train=len(images), data_source=source,
                       seconds=round(time.perf_counter() - started, 1))
        return payload

    described = {**config.as_dict(), "way": way, "data": fingerprint(images),
                 "freeze_d_layers": s.freeze_d_layers if finetune else 0,
                 "pretrain": pretrain_config(s).as_dict() if finetune else None}
    if use_zoo:
        payload = zoo.load_or_train(f"fewshot-{way}", train, preset=preset, seed=seed,
                                    config=described, recipe=RECIPE)
    else:
        payload = train(preset, seed)
    return TrainResult.from_payload(payload)


# --- recordings shipped with the library ----------------------------------------------------

def record(preset: str | Preset = "class", out_dir: str | Path | None = None, n_samples: int = 16,
           settings: FewShotSettings | None = None, ways=WAYS) -> Path:
    """Train the four ways x ``settings.n_seeds`` seeds and save curves and samples.

    Writes ``fewshot_runs.json`` (settings, histories, final figures, seconds) and
    ``fewshot_samples.npz`` (uint8 [n_samples, 3, S, S] of each run's fixed latents at the
    end, and of the pretrained model) into ``out_dir`` (default recorded/<preset>/), through
    :func:`course_lib.recording.record_runs`.
    """
    preset = get_preset(preset)
    s = settings or settings_for(preset)
    data = fewshot_data(size=s.image_size)
    images = images_of(data)
    reference = training_set_reference(images)
    pre = pretrained_model(preset, s)
    out = recording.recording_dir(preset.name, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ship_pretrained(pre, s, out / PRETRAINED_FILE)
    pretrain = {"steps": s.pretrain_steps, "seconds": pre.seconds, "n_train": pre.n_train,
                "data_source": pre.data_source,
                "own_set": {k: pre.history[k] for k in ("eval_step", "fd", "recall", "coverage")
                            if k in pre.history},
                "final": evaluate(pre.G_eval, reference, s.n_eval)}
    plan = [{"way": way, "seed": seed} for way in ways for seed in range(s.n_seeds)]

    def train(way, seed):
        return fewshot_run(way, seed, preset, data=data, settings=s, reference=reference)

    def describe(run, f):
        return f"{run['key']}: fd {f['fd']:.2f}, kid {f['kid'] * 1e3:.2f}e-3 ({run['seconds']} s)"

    record_runs("fewshot", plan, train, preset=preset.name, feature_extractor=reference.label,
                data_source=data.source, out_dir=out_dir, n_samples=n_samples,
                meta={"n_train": len(images), "settings": s.as_dict(), "pretrain": pretrain},
                extra_samples={"pretrained": pre.sample(n_samples)}, describe=describe)
    return Path(out_dir) if out_dir else RECORDED_DIR / preset.name


def load_fewshot_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    """The few-shot recording (``course_lib/recorded/<preset>/fewshot_runs.json``)."""
    return recording.load_recording("fewshot", preset, directory)


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
