"""Real images that ship inside pip packages, shaped for each track of the course.

When the real datasets are absent (no network in class, CI), the notebooks still need
*real* photographs, never noise passed off as data. scikit-image's wheel bundles a dozen
photographs (``skimage.data``: the ones below load without any download) and a 200-image
LFW subset whose first 100 are faces; scikit-learn's wheel bundles two more photographs.

- CIFAR track: many 32x32 crops of 10 colour photographs, label = photograph.
- few-shot track: the 100 LFW faces (25x25 grayscale), upscaled.
- CycleGAN track: domain A = natural-colour crops of five photographs; domain B = crops
  of five *other* photographs (one is the other view of A's stereo motorcycle) rendered
  as four-colour "screen-print posters". A learner sees two clear styles, and the
  translation A->B (recolour, posterize) and B->A (re-colourize) is non-trivial, like
  horse->zebra.

Crops are drawn from a fixed seed, so everyone gets the same images. The built arrays are
cached as .npz files under the data root (written atomically) and rebuilt if damaged.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from course_lib.data.paths import data_root

# Bump when the recipe changes, so old caches are rebuilt rather than reused.
RECIPE_VERSION = 1


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _motorcycle(side: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        return skimage.data.stereo_motorcycle()[side]
    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        # Read the JPEG from the installed package: importing sklearn.datasets costs ~1 s.
        spec = importlib.util.find_spec("sklearn")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "datasets" / "images" / filename
            if path.is_file():
                with Image.open(path) as im:
                    return np.asarray(im.convert("RGB"))
        from sklearn.datasets import load_sample_image
        return load_sample_image(filename)
    return load


# (class name, what it is, loader). All RGB photographs bundled in the wheels.
PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("astronaut Eileen Collins (NASA), skimage", _skimage("astronaut")),
    "cat": ("Chelsea the cat, skimage", _skimage("chelsea")),
    "coffee": ("a cup of coffee, skimage", _skimage("coffee")),
    "rocket": ("a rocket launch (NASA), skimage", _skimage("rocket")),
    "galaxies": ("Hubble eXtreme Deep Field, skimage", _skimage("hubble_deep_field")),
    "tissue": ("immunohistochemistry stain, skimage", _skimage("immunohistochemistry")),
    "retina": ("a human retina, skimage", _skimage("retina")),
    "motorcycle": ("a motorcycle (Middlebury stereo, left), skimage", _motorcycle(0)),
    "temple": ("a temple in China, scikit-learn", _sklearn("china.jpg")),
    "flower": ("a flower, scikit-learn", _sklearn("flower.jpg")),
    "motorcycle-right": ("the same motorcycle from the right camera, skimage",
                         _motorcycle(1)),
}
CIFAR_CLASSES = ["astronaut", "cat", "coffee", "rocket", "galaxies", "tissue", "retina",
                 "motorcycle", "temple", "flower"]
# Both domains hold everyday objects, like horses and zebras both on grass.
UNPAIRED_A = ["astronaut", "cat", "coffee", "motorcycle", "temple"]
UNPAIRED_B = ["rocket", "flower", "motorcycle-right", "tissue", "retina"]

CIFAR_TRAIN_PER_PHOTO = 200
CIFAR_TEST_PER_PHOTO = 50
UNPAIRED_TRAIN_PER_DOMAIN = 400
UNPAIRED_TEST_PER_DOMAIN = 60

# Four-colour poster palette for domain B, dark to light: navy, blue, orange, cream.
POSTER_PALETTE = np.array([[18, 26, 66], [40, 96, 168], [236, 132, 38], [255, 230, 150]],
                          dtype=np.uint8)


# Photographs are first scaled so their shorter side is this many pixels: crops of it
# still have 3x more pixels than a 64x64 output, and building gets ~5x faster.
WORKING_SIDE = 384


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """One bundled photograph as uint8 [H, W, 3], shorter side WORKING_SIDE pixels."""
    img = Image.fromarray(np.ascontiguousarray(np.asarray(PHOTOS[name][1]())[..., :3]))
    scale = WORKING_SIDE / min(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)),
                         Image.Resampling.LANCZOS)
    return np.asarray(img)


def random_crops(img: np.ndarray, n: int, size: int, rng: np.random.Generator,
                 min_frac: float, max_frac: float) -> np.ndarray:
    """``n`` square crops of ``img`` (side a random fraction of its shorter side, random
    position), each resized to ``size`` x ``size``. Returns uint8 [n, size, size, 3].

    Nearly flat crops (the black border of the retina, empty sky) are redrawn: they carry
    no picture, and a real dataset would not contain them."""
    pil = Image.fromarray(img)
    h, w = img.shape[:2]
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        for _ in range(20):
            side = int(rng.uniform(min_frac, max_frac) * min(h, w))
            left = int(rng.integers(0, w - side + 1))
            top = int(rng.integers(0, h - side + 1))
            crop = np.asarray(pil.resize((size, size), Image.Resampling.BOX,
                                         box=(left, top, left + side, top + side)))
            if crop.std() > 12:
                break
        out[k] = crop
    return out


def poster_style(images: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> the same shape in four poster colours, chosen by brightness
    quartile *within each image* (so dark and bright photographs both use all four)."""
    lum = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    flat = lum.reshape(lum.shape[0], -1)
    cuts = np.quantile(flat, [0.25, 0.5, 0.75], axis=1).T  # [N, 3]
    levels = (flat[:, :, None] > cuts[:, None, :]).sum(-1).reshape(lum.shape)
    return POSTER_PALETTE[levels]


# --- caching -----------------------------------------------------------------------------

def _cache_file(stem: str, root: Path | None) -> Path:
    return (Path(root) if root is not None else data_root()) / "embedded" / \
        f"{stem}-v{RECIPE_VERSION}.npz"


def _save_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically; a read-only data root only costs the rebuild next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


def _cached(stem: str, root: Path | None, build: Callable[[], dict[str, np.ndarray]],
            check: Callable[[dict[str, np.ndarray]], bool]) -> dict[str, np.ndarray]:
    path = _cache_file(stem, root)
    arrays = _load_any(path)
    if arrays is not None and check(arrays):
        return arrays
    arrays = build()
    _save_cached(path, arrays)
    return arrays


def _load_any(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of a cached .npz, or None if it is missing or damaged (rebuild)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


# --- the three tracks --------------------------------------------------------------------

@dataclass(frozen=True)
class EmbeddedSplit:
    """uint8 images [N, 3, H, W] and int64 labels [N]."""
    images: np.ndarray
    labels: np.ndarray


def _build_cifar_track() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20201208)  # fixed: everyone gets the same crops
    arrays = {}
    for split, per_photo in (("train", CIFAR_TRAIN_PER_PHOTO), ("test", CIFAR_TEST_PER_PHOTO)):
        crops, labels = [], []
        for label, name in enumerate(CIFAR_CLASSES):
            crops.append(random_crops(photo(name), per_photo, 32, rng, 0.12, 0.5))
            labels.append(np.full(per_photo, label, dtype=np.int64))
        arrays[f"{split}_images"] = np.concatenate(crops).transpose(0, 3, 1, 2).copy()
        arrays[f"{split}_labels"] = np.concatenate(labels)
    return arrays


def cifar_track(split: str = "train", root: str | os.PathLike | None = None) -> EmbeddedSplit:
    """The embedded stand-in for CIFAR-10: 2,000 train / 500 test 32x32 RGB crops of the
    10 photographs in :data:`PHOTOS` (200 / 50 each), label = photograph."""
    n = {"train": CIFAR_TRAIN_PER_PHOTO, "test": CIFAR_TEST_PER_PHOTO}
    expected = {s: k * len(CIFAR_CLASSES) for s, k in n.items()}

    def ok(a: dict[str, np.ndarray]) -> bool:
        return all(a.get(f"{s}_images") is not None
                   and a[f"{s}_images"].shape == (expected[s], 3, 32, 32)
                   and a[f"{s}_images"].dtype == np.uint8
                   and a.get(f"{s}_labels") is not None
                   and a[f"{s}_labels"].shape == (expected[s],) for s in n)

    arrays = _cached("cifar_track", None if root is None else Path(root),
                     _build_cifar_track, ok)
    return EmbeddedSplit(arrays[f"{split}_images"], arrays[f"{split}_labels"])


def lfw_faces(size: int) -> np.ndarray:
    """The 100 faces of scikit-image's LFW subset (its first 100 images; the other 100
    are non-face patches), 25x25 grayscale upscaled to uint8 [100, 3, size, size]."""
    import skimage.data

    faces = np.asarray(skimage.data.lfw_subset())[:100]
    if faces.dtype != np.uint8:  # shipped as floats in [0, 1]
        faces = np.clip(np.round(faces * 255.0), 0, 255).astype(np.uint8)
    out = np.empty((len(faces), 3, size, size), dtype=np.uint8)
    for k, face in enumerate(faces):
        big = Image.fromarray(face).resize((size, size), Image.Resampling.BICUBIC)
        out[k] = np.asarray(big)[None]
    return out


def _build_unpaired(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20170330)
    arrays = {}
    for split, per_domain in (("train", UNPAIRED_TRAIN_PER_DOMAIN),
                              ("test", UNPAIRED_TEST_PER_DOMAIN)):
        for domain, names in (("A", UNPAIRED_A), ("B", UNPAIRED_B)):
            per_photo = -(-per_domain // len(names))
            crops = np.concatenate([random_crops(photo(n), per_photo, size, rng, 0.2, 0.6)
                                    for n in names])[:per_domain]
            if domain == "B":
                crops = poster_style(crops)
            arrays[f"{split}{domain}"] = crops.transpose(0, 3, 1, 2).copy()
    return arrays


def unpaired_domains(split: str = "train", size: int = 64,
                     root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The embedded stand-in for horse2zebra: (A, B), each uint8 [N, 3, size, size].
    400 train / 60 test per domain. A: natural-colour crops; B: poster-style crops of
    other photographs (see the module docstring)."""
    n = {"train": UNPAIRED_TRAIN_PER_DOMAIN, "test": UNPAIRED_TEST_PER_DOMAIN}

    def ok(a: dict[str, np.ndarray]) -> bool:
        return all(a.get(f"{s}{d}") is not None
                   and a[f"{s}{d}"].shape == (k, 3, size, size)
                   and a[f"{s}{d}"].dtype == np.uint8 for s, k in n.items() for d in "AB")

    arrays = _cached(f"unpaired-{size}", None if root is None else Path(root),
                     lambda: _build_unpaired(size), ok)
    return arrays[f"{split}A"], arrays[f"{split}B"]


def describe_photos(names: list[str]) -> str:
    return "; ".join(f"{n} ({PHOTOS[n][0]})" for n in names)
