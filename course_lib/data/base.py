"""The two dataset classes every loader returns: images held in memory, labelled with
where they came from."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def from_uint8(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] in 0..255 -> float in [-1, 1] (the range G's tanh produces)."""
    return images_uint8.float().div(127.5).sub(1.0)


class ImageDataset(Dataset):
    """Images kept as uint8 [N, 3, H, W] (4x smaller than float) and converted per item.

    Items are (image, label): image float32 [3, size, size] in [-1, 1], label an int
    indexing ``.classes``. ``.source`` is a human string saying what the images are;
    ``.is_embedded`` is True for the fallback data bundled in pip packages;
    ``.registry_name`` is the registry entry that would give the real set (or None).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, source: str,
                 is_embedded: bool, classes: list[str] | None = None,
                 registry_name: str | None = None, size: int | None = None,
                 indices: np.ndarray | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.source = source
        self.is_embedded = is_embedded
        self.classes = list(classes) if classes is not None else ["."]
        self.registry_name = registry_name
        self.size = size or images.shape[-1]
        # Positions in the full split these images were taken from (subsets), if any.
        self.indices = indices

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = from_uint8(self.images[i])
        if x.shape[-1] != self.size:
            x = _resize(x[None], self.size)[0]
        return x, int(self.labels[i])

    def tensors(self) -> torch.Tensor:
        """Every image at once: float [N, 3, size, size] in [-1, 1]."""
        x = from_uint8(self.images)
        return x if x.shape[-1] == self.size else _resize(x, self.size)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, 3x{self.size}x{self.size}, "
                f"source={self.source!r})")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 3, size, size], antialiased, clamped back into [-1, 1]."""
    y = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                      align_corners=False)
    return y.clamp_(-1.0, 1.0)


class UnpairedDataset(Dataset):
    """Two unaligned image domains for CycleGAN. Item i is (a, b): a = A[i mod |A|], and
    b an index into B drawn from (seed, i), so pairs are arbitrary but reproducible.
    Both float [3, S, S] in [-1, 1]. Length max(|A|, |B|), as in CycleGAN."""

    def __init__(self, domain_a: ImageDataset, domain_b: ImageDataset, *, source: str,
                 is_embedded: bool, seed: int = 0, registry_name: str | None = None):
        self.domain_a, self.domain_b = domain_a, domain_b
        self.source = source
        self.is_embedded = is_embedded
        self.seed = seed
        self.registry_name = registry_name

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def b_index(self, i: int) -> int:
        """Which B image goes with item i: independent of A, fixed by (seed, i)."""
        return int(np.random.default_rng([self.seed, i]).integers(len(self.domain_b)))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        a, _ = self.domain_a[i % len(self.domain_a)]
        b, _ = self.domain_b[self.b_index(i)]
        return a, b

    def __repr__(self) -> str:
        return (f"UnpairedDataset(A: {len(self.domain_a)}, B: {len(self.domain_b)}, "
                f"source={self.source!r})")
