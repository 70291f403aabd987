"""The loaders notebooks call: real data when it has been fetched, embedded data when not.

Each returns a dataset whose ``.source`` says in words what the images are and whose
``.is_embedded`` says whether they are the fallback, so a notebook can show a banner.
Nothing here downloads: fetching is an explicit step (``data_scripts/get_data.py``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from course_lib.data import embedded
from course_lib.data.base import ImageDataset, UnpairedDataset
from course_lib.data.errors import DataError
from course_lib.data.images import check_size, load_image_folder
from course_lib.data.paths import data_root
from course_lib.data.registry import REGISTRY, entry_path, is_present

SPLITS = ("train", "heldout", "test")
FEW_SHOT_NAMES = ("100-shot-obama", "100-shot-grumpy_cat", "100-shot-panda",
                  "AnimalFace-cat", "AnimalFace-dog")
UNPAIRED_NAMES = ("horse2zebra",)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
# The held-out reserve: per class, this many images or a tenth of the class if fewer.
# Chosen with a fixed seed that does not depend on the caller's seed, so it is the same
# set for every fraction and seed, and no "train" subset ever contains one of them.
HELDOUT_PER_CLASS = 100
HELDOUT_SEED = 31337


# --- CIFAR-10 ------------------------------------------------------------------------------

def _real_cifar(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 [N, 3, 32, 32], int64 [N]) from torchvision's files under root, or None."""
    folder = root / "cifar-10-batches-py"
    if not (folder / ("data_batch_1" if train else "test_batch")).is_file():
        return None
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        raise DataError(f"the CIFAR-10 files in {folder} are damaged or incomplete "
                        f"({exc}). Delete that folder and run `python "
                        f"data_scripts/get_data.py cifar10 --force`") from None
    images = np.ascontiguousarray(np.asarray(ds.data).transpose(0, 3, 1, 2))
    return images, np.asarray(ds.targets, dtype=np.int64)


def heldout_and_pool(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the indices of a train split into (heldout, pool), per class, with a fixed
    seed. Both sorted."""
    rng = np.random.default_rng(HELDOUT_SEED)
    heldout, pool = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(HELDOUT_PER_CLASS, len(idx) // 10)
        heldout.append(idx[:k])
        pool.append(idx[k:])
    return np.sort(np.concatenate(heldout)), np.sort(np.concatenate(pool))


def subset_indices(labels: np.ndarray, candidates: np.ndarray, fraction: float, seed: int,
                   class_ids: list[int]) -> np.ndarray:
    """Per class c in class_ids: round(fraction * |class c in the whole split|) indices
    (at least 1, at most what ``candidates`` holds), drawn with (seed, c). Sorted.

    Same arguments give the same indices; at one seed a smaller fraction is a subset of
    a larger one (a prefix of the same permutation), so runs at 10% and 20% compare."""
    chosen = []
    for c in class_ids:
        pool_c = candidates[labels[candidates] == c]
        total_c = int((labels == c).sum())
        k = min(len(pool_c), max(1, round(fraction * total_c)))
        rng = np.random.default_rng([seed, c])
        chosen.append(rng.permutation(pool_c)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _class_ids(classes, names: list[str]) -> list[int]:
    if classes is None:
        return list(range(len(names)))
    ids = []
    for c in ([classes] if isinstance(classes, (str, int)) else classes):
        if isinstance(c, (int, np.integer)) and 0 <= c < len(names):
            ids.append(int(c))
        elif isinstance(c, str) and c in names:
            ids.append(names.index(c))
        else:
            raise DataError(f"unknown class {c!r}: this data has classes 0..{len(names) - 1} "
                            f"= {', '.join(names)}")
    return sorted(set(ids))


def cifar10(fraction: float = 1.0, classes=None, split: str = "train", seed: int = 0,
            root: str | os.PathLike | None = None) -> ImageDataset:
    """CIFAR-10 if its files are under the data root, else the embedded CIFAR track.

    fraction: share of the *whole* train split to use, per class (0.1 = 5,000 real
              images, as in the DiffAugment paper's "10% data"). Capped by the held-out
              reserve, so 1.0 gives 49,000. For "test", a share of the test split;
              ignored for "heldout".
    classes:  None (all), or class indices/names, e.g. ["cat", "dog"].
    split:    "train"; "heldout": 1,000 real train images (100 per class; a tenth of each
              class for the embedded track) never in any "train" subset, for watching the
              discriminator overfit; "test": the official test split.
    seed:     which subset; the same arguments always give the same images.

    Items are (image float [3, 32, 32] in [-1, 1], label int).
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise DataError(f"fraction must be in (0, 1]; got {fraction!r}")
    root = Path(root) if root is not None else data_root()
    real = _real_cifar(root, train=split != "test")
    if real is not None:
        images, labels = real
        names = CIFAR10_CLASSES
    else:
        part = embedded.cifar_track("test" if split == "test" else "train", root)
        images, labels = part.images, part.labels
        names = embedded.CIFAR_CLASSES
    class_ids = _class_ids(classes, names)

    if split == "test":
        idx = subset_indices(labels, np.arange(len(labels)), fraction, seed, class_ids)
    else:
        heldout, pool = heldout_and_pool(labels)
        if split == "heldout":
            idx = heldout[np.isin(labels[heldout], class_ids)]
        else:
            idx = subset_indices(labels, pool, fraction, seed, class_ids)

    n = len(idx)
    if real is not None:
        source = f"CIFAR-10 (real, {split} split, {n:,} images)"
    else:
        source = (f"embedded: {n:,} 32x32 crops of {len(class_ids)} photographs bundled "
                  f"with scikit-image and scikit-learn (not CIFAR-10; label = photograph)")
    return ImageDataset(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]),
                        source=source, is_embedded=real is None, classes=names,
                        registry_name="cifar10", indices=idx)


# --- few-shot --------------------------------------------------------------------------------

def few_shot(name: str = "100-shot-obama", size: int = 64,
             root: str | os.PathLike | None = None) -> ImageDataset:
    """A few-shot set at ``size`` x ``size``: the real one if fetched, else 100 embedded
    faces (scikit-image's LFW subset, 25x25 grayscale upscaled, so blurry and gray).
    Items are (image float [3, size, size] in [-1, 1], 0)."""
    if name not in FEW_SHOT_NAMES:
        raise DataError(f"unknown few-shot set {name!r}; choose one of "
                        f"{', '.join(FEW_SHOT_NAMES)}, or load your own folder with "
                        f"load_image_folder(path, size)")
    size = check_size(size)
    if is_present(name, root):
        ds = load_image_folder(entry_path(name, root), size)
        ds.source = f"{name} (real, {len(ds)} images)"
        ds.registry_name = name
        return ds
    faces = torch.from_numpy(embedded.lfw_faces(size))
    source = (f"embedded: {len(faces)} LFW faces from scikit-image's lfw_subset (25x25 "
              f"grayscale, upscaled to {size}x{size}), standing in for {name}")
    return ImageDataset(faces, torch.zeros(len(faces), dtype=torch.long), source=source,
                        is_embedded=True, classes=["face"], registry_name=name)


# --- unpaired (CycleGAN) --------------------------------------------------------------------

def unpaired(name: str = "horse2zebra", split: str = "train", size: int = 64,
             root: str | os.PathLike | None = None, seed: int = 0) -> UnpairedDataset:
    """Two unaligned domains for CycleGAN; items (a, b), each float [3, size, size] in
    [-1, 1]. Real horse2zebra (trainA/trainB or testA/testB) if fetched, else the
    embedded pair: natural-colour photo crops (A) and poster-style crops of other
    photographs (B)."""
    if name not in UNPAIRED_NAMES:
        raise DataError(f"unknown unpaired set {name!r}; choose one of "
                        f"{', '.join(UNPAIRED_NAMES)}")
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test'; got {split!r}")
    size = check_size(size)
    if is_present(name, root):
        folder = entry_path(name, root)
        a = load_image_folder(folder / f"{split}A", size)
        b = load_image_folder(folder / f"{split}B", size)
        a.source, b.source = f"{name} {split}A (real)", f"{name} {split}B (real)"
        source = f"{name} (real, {split}: {len(a)} A / {len(b)} B images)"
        return UnpairedDataset(a, b, source=source, is_embedded=False, seed=seed,
                               registry_name=name)
    a_np, b_np = embedded.unpaired_domains(split, size, root)
    a = ImageDataset(torch.from_numpy(a_np), torch.zeros(len(a_np)), is_embedded=True,
                     source=f"embedded A: natural-colour crops of "
                            f"{', '.join(embedded.UNPAIRED_A)}")
    b = ImageDataset(torch.from_numpy(b_np), torch.zeros(len(b_np)), is_embedded=True,
                     source=f"embedded B: four-colour poster-style crops of "
                            f"{', '.join(embedded.UNPAIRED_B)}")
    source = (f"embedded: {len(a)} natural-colour photo crops (A) and {len(b)} "
              f"poster-style crops of other photographs (B), {size}x{size}, from "
              f"scikit-image and scikit-learn (not {name})")
    return UnpairedDataset(a, b, source=source, is_embedded=True, seed=seed,
                           registry_name=name)


# --- one entry point for "--data" ------------------------------------------------------------

def get_dataset(name_or_path: str | os.PathLike, size: int = 32, fraction: float = 1.0,
                seed: int = 0) -> ImageDataset:
    """What ``train-gan --data cifar10|NAME|PATH`` uses.

    "cifar10" -> :func:`cifar10` (resized if ``size`` != 32); a few-shot registry name
    -> :func:`few_shot`; an existing folder -> :func:`load_image_folder`. ``fraction``
    < 1 keeps a deterministic share of the images (by ``seed``).
    """
    key = str(name_or_path)
    size = check_size(size)
    if key == "cifar10":
        ds = cifar10(fraction=fraction, seed=seed)
        ds.size = size
        return ds
    if key in FEW_SHOT_NAMES:
        return _keep_fraction(few_shot(key, size=size), fraction, seed)
    path = Path(key).expanduser()
    if path.is_dir():
        return _keep_fraction(load_image_folder(path, size), fraction, seed)
    if path.exists():
        raise DataError(f"{path} is a file, not a folder: give the folder that holds the "
                        f"images, or a dataset name (cifar10, {', '.join(FEW_SHOT_NAMES)})")
    others = ", ".join(n for n in REGISTRY if n not in ("cifar10",) + FEW_SHOT_NAMES)
    raise DataError(f"unknown dataset {key!r}: not a name and not a folder "
                    f"({path.resolve()} does not exist). Use cifar10 or one of "
                    f"{', '.join(FEW_SHOT_NAMES)}, or the path to a folder of images. "
                    f"({others} are not image sets for train-gan.)")


def _keep_fraction(ds: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    if not (0 < fraction <= 1):
        raise DataError(f"fraction must be in (0, 1]; got {fraction!r}")
    if fraction == 1:
        return ds
    k = max(1, round(fraction * len(ds)))
    keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:k])
    ds.images, ds.labels = ds.images[keep], ds.labels[keep]
    ds.indices = keep
    if hasattr(ds, "paths"):
        ds.paths = [ds.paths[i] for i in keep]
    ds.source = f"{ds.source}, {k} kept (fraction {fraction:g}, seed {seed})"
    return ds
