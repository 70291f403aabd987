"""Turning a folder of arbitrary image files into a clean in-memory dataset.

Every file is decoded once, at load time, so a bad file is found (and listed in
``.skipped`` with a reason) before training starts, and iterating never fails. Real
folders are messy: CMYK JPEGs from print workflows, 16-bit PNGs from scientific cameras,
palette GIFs with transparency, phone photos larger than the screen, half-copied files,
``Thumbs.db``, symlinks pointing back at their own folder. Each has a rule here.
"""
from __future__ import annotations

import errno
import numbers
import os
import stat
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from course_lib.data.base import ImageDataset
from course_lib.data.errors import DataError

# A limit of our own instead of changing PIL's global MAX_IMAGE_PIXELS (other code in the
# same process may rely on it). 64 MP is an 8000x8000 photo: ~190 MB decoded.
MAX_PIXELS = 64_000_000
# Bounds on the side of the square images, in pixels. Below 8 nothing of a photograph
# survives, and the course's networks (two or more stride-2 layers) need at least that.
# 1024 is the largest resolution in the GAN papers the course follows (StyleGAN's FFHQ):
# 100 images at 1024x1024 hold 315 MB in memory as uint8, while a typo such as 30000
# would need 2.7 GB for each single image.
MIN_SIZE, MAX_SIZE = 8, 1024
# Skip reasons, as the first words of each reason string (the summary counts them).
EMPTY, NOT_IMAGE, TRUNCATED, CORRUPT, TOO_LARGE = (
    "empty file", "not an image", "truncated", "corrupt", "too large")
LOOP, BROKEN_LINK, UNREADABLE, DUPLICATE, SPECIAL = (
    "symlink loop", "broken symlink", "unreadable", "duplicate", "not a regular file")


class _Skip(Exception):
    """Raised inside the loader with the reason a file cannot be used."""


class ImageFolderDataset(ImageDataset):
    """Images decoded from a folder. Items are (image, label): image float [3, S, S] in
    [-1, 1], label the index of the top-level subfolder in ``.classes`` ("." for files at
    the top). ``.paths`` lists the loaded files, ``.skipped`` (path, reason) pairs."""

    def __init__(self, images, labels, *, root: Path, paths: list[Path],
                 skipped: list[tuple[Path, str]], classes: list[str], source: str):
        super().__init__(images, labels, source=source, is_embedded=False,
                         classes=classes)
        self.root = root
        self.paths = paths
        self.skipped = skipped

    def summary(self) -> str:
        """One line, e.g. 'loaded 97 images from X; skipped 3 (2 corrupt, 1 not an image)'."""
        line = f"loaded {len(self)} images from {self.root}"
        if self.skipped:
            line += f"; skipped {len(self.skipped)} ({_count_reasons(self.skipped)})"
        return line


def _count_reasons(skipped: list[tuple[Path, str]]) -> str:
    counts = Counter(reason.split(":")[0] for _, reason in skipped)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def load_image_folder(path: str | os.PathLike, size: int) -> ImageFolderDataset:
    """Load every usable image under ``path`` (recursively) as a ``size`` x ``size`` RGB
    square: shorter side scaled to ``size``, then center-cropped.

    Files are recognised by content, not extension. Hidden files and folders (.name)
    are ignored. Symlinks are followed, each real file and folder once.

    ``size``: a whole number of pixels from 8 to 1024 (see ``MIN_SIZE``/``MAX_SIZE``).

    Returns an :class:`ImageFolderDataset` (items (image [3, size, size] in [-1, 1],
    label)) with ``.skipped`` and ``.summary()``. Raises :class:`DataError` if the
    folder is missing or has no usable image, saying what it found, or if ``size`` is
    out of bounds.
    """
    root = Path(path).expanduser()
    size = check_size(size)
    if not root.exists():
        where = "" if root.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"image folder not found: {root}{where}. Check the path, or fetch "
                        f"the dataset first")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder: give the folder that holds the "
                        f"images")
    files, skipped = _walk(root)
    arrays, paths, labels, class_names = [], [], [], {}
    for file in files:
        try:
            arrays.append(decode_image(file, size))
        except _Skip as exc:
            skipped.append((file, str(exc)))
            continue
        rel = file.relative_to(root)
        top = rel.parts[0] if len(rel.parts) > 1 else "."
        labels.append(class_names.setdefault(top, len(class_names)))
        paths.append(file)
    if not arrays:
        raise DataError(_nothing_usable(root, files, skipped))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    source = f"image folder {root} ({len(arrays)} images)"
    return ImageFolderDataset(images, torch.tensor(labels), root=root, paths=paths,
                              skipped=skipped, classes=list(class_names), source=source)


def check_size(size) -> int:
    """``size`` as an int if it is a whole number of pixels in [MIN_SIZE, MAX_SIZE], else
    :class:`DataError` saying so (a bool is refused: True would mean 1x1 images)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise DataError(f"image size must be a whole number of pixels from {MIN_SIZE} to "
                        f"{MAX_SIZE}; got {size!r} ({type(size).__name__})")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"image size must be from {MIN_SIZE} to {MAX_SIZE} pixels; got "
                        f"{size}. Use e.g. 32, 64 or 256")
    return int(size)


def _nothing_usable(root: Path, files: list[Path], skipped: list[tuple[Path, str]]) -> str:
    if not files and not skipped:
        return (f"no images in {root}: the folder is empty (hidden files ignored). Put "
                f".jpg or .png files in it")
    shown = "; ".join(f"{_rel(p, root)} ({reason})" for p, reason in skipped[:8])
    more = f"; and {len(skipped) - 8} more" if len(skipped) > 8 else ""
    return (f"no images in {root}: found {len(skipped)} files, none readable: "
            f"{shown}{more}. Add .jpg or .png images, or point to another folder")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- walking -----------------------------------------------------------------------------

def _walk(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """All regular files under ``root`` (sorted), following symlinks, each real file and
    folder visited once. Returns (files, skipped)."""
    files, skipped = [], []
    seen_dirs = {_identity(os.stat(root))}
    seen_files: dict[tuple[int, int], Path] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((folder, f"{UNREADABLE}: cannot list folder ({exc.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):  # .DS_Store, .ipynb_checkpoints, ._AppleDouble
                continue
            p = Path(entry.path)
            try:
                st = os.stat(p)  # follows symlinks
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    skipped.append((p, f"{LOOP}: the link points (through links) to itself"))
                elif exc.errno == errno.ENOENT:
                    skipped.append((p, f"{BROKEN_LINK}: points to a missing "
                                       f"{os.readlink(p) if p.is_symlink() else 'file'}"))
                else:
                    skipped.append((p, f"{UNREADABLE}: {exc.strerror}"))
                continue
            key = _identity(st)
            if stat.S_ISDIR(st.st_mode):
                if key in seen_dirs:
                    skipped.append((p, f"{LOOP}: leads back to a folder already visited"))
                    continue
                seen_dirs.add(key)
                stack.append(p)
            elif stat.S_ISREG(st.st_mode):
                if key in seen_files:
                    skipped.append((p, f"{DUPLICATE}: same file as "
                                       f"{_rel(seen_files[key], root)}"))
                    continue
                seen_files[key] = p
                files.append(p)
            else:  # a FIFO or device would block or never end when read
                skipped.append((p, f"{SPECIAL}: a FIFO, socket or device"))
    return sorted(files), skipped


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


# --- decoding ----------------------------------------------------------------------------

def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode one file to uint8 [size, size, 3] RGB, or raise _Skip with a reason."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise _Skip(f"{EMPTY}: 0 bytes")
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice its limit: make that an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise _Skip(f"{TOO_LARGE}: {w}x{h} pixels, more than the "
                                f"{MAX_PIXELS:,} allowed")
                # JPEG can decode at 1/2, 1/4, 1/8 scale for free: never below `size`.
                im.draft(None, (size, size))
                im.load()
                rgb = to_rgb(im)
        return _square(rgb, size)
    except _Skip:
        raise
    except UnidentifiedImageError:
        raise _Skip(f"{NOT_IMAGE}: not a format PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Skip(f"{TOO_LARGE}: {exc}") from None
    except PermissionError:
        raise _Skip(f"{UNREADABLE}: permission denied") from None
    except OSError as exc:
        if "truncat" in str(exc).lower():
            raise _Skip(f"{TRUNCATED}: {exc}") from None
        raise _Skip(f"{CORRUPT}: {exc}") from None
    except Exception as exc:  # PIL's decoders also raise SyntaxError, ValueError, ...
        raise _Skip(f"{CORRUPT}: {type(exc).__name__}: {exc}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: 16/32-bit and float scaled to 0..255, transparency
    composited on white (what a viewer shows), CMYK/palette/gray converted."""
    try:
        im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
    except Exception:  # a damaged EXIF block is not worth losing the image over
        pass
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(im)
    if "A" in im.mode or "a" in im.mode or im.mode == "P" or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    a = np.asarray(im, dtype=np.float64)
    top = float(a.max()) if a.size else 0.0
    if im.mode == "F":
        scale = 1.0 if top <= 1.0 else max(top, 255.0)
    elif im.mode.startswith("I;16") or top > 255:
        scale = 65535.0 if top <= 65535 else top  # 16-bit data, or wider: use its range
    else:
        scale = 255.0
    gray = np.clip(np.round(a / scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _square(im: Image.Image, size: int) -> np.ndarray:
    """Center square crop, then resize to size x size. Cropping first keeps a 1x10000
    image from being scaled to a giant intermediate."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.resize((size, size), Image.Resampling.LANCZOS if side > size
                   else Image.Resampling.BICUBIC,
                   box=(left, top, left + side, top + side))
    return np.asarray(im, dtype=np.uint8)
