"""Feature extractors for Frechet distances, KID and precision/recall.

An extractor maps images ``[N, 3, H, W]`` in [-1, 1] to features ``np.ndarray [N, D]``
and has a ``.name``, the label every plot and table must show: a distance computed on
other features than pytorch-fid's Inception is *not* an FID and is not comparable with
published numbers.

- ``InceptionFeatures``: pytorch-fid's InceptionV3 pool3 (D = 2048), i.e. real FID. Needs
  the weights file in ``$TORCH_HOME/hub/checkpoints/`` (``python data_scripts/get_data.py
  fid-inception``); it never downloads.
- ``RandomConvFeatures``: offline and deterministic; a small conv net with fixed random
  weights (D = 512). Good for ranking models against each other on this machine.
- ``default_extractor()``: Inception when its weights are present, else random-conv.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


class FeatureExtractor:
    """Interface: ``extractor(images) -> np.ndarray [N, D]`` (float64), plus ``.name``.

    ``images``: a float tensor ``[N, 3, H, W]`` in [-1, 1], processed as one batch
    (use ``extract_features`` to go through a large set in batches).
    """

    name: str = "features"
    dim: int = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


def inception_weights_path() -> Path:
    """Where pytorch-fid (through torch hub) looks for its Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def inception_available() -> bool:
    return inception_weights_path().is_file()


class InceptionFeatures(FeatureExtractor):
    """pytorch-fid's InceptionV3 pool3 features (2048-d): the features of real FID."""

    name = "FID (Inception, pytorch-fid)"
    dim = 2048

    def __init__(self, device: str | torch.device = "cpu"):
        path = inception_weights_path()
        if not path.is_file():
            # pytorch-fid would silently try to download them; we never do.
            raise FileNotFoundError(
                f"pytorch-fid's Inception weights are not at {path}. Fetch them with "
                "`python data_scripts/get_data.py fid-inception` (or copy the file there), "
                "or use RandomConvFeatures() for an offline, clearly labelled distance.")
        from pytorch_fid.inception import InceptionV3

        self.device = torch.device(device)
        # normalize_input=False: our images are already in [-1, 1], the range it expects.
        self.model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                 normalize_input=False).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        pool3 = self.model(images.to(self.device, torch.float32))[0]   # [N, 2048, 1, 1]
        return pool3.flatten(1).cpu().double().numpy()


class RandomConvFeatures(FeatureExtractor, nn.Module):
    """Offline features: 4 conv layers with fixed random weights, pooled at every depth.

    Images larger than ``max_size`` (64) are resized down to ``max_size`` x ``max_size``
    (antialiased); smaller ones are used as they are, because upsampling would blur
    away the pixel-level detail where GAN artifacts live. Then come 3x3 convs of widths
    32, 32, 64, 128 with ReLU (the first keeps the resolution, the others halve it). At
    each depth we keep each channel's spatial mean (which colours/patterns occur) and
    standard deviation (how much they vary: blur lowers it, noise raises it):
    2*(32+32+64+128) = 512 features.

    Weights are He-initialised from a fixed seed, so activations keep a similar scale at
    every depth and the same seed gives the same features on every machine. Three
    quarters of the first layer's filters are made zero-mean (they see edges and
    texture, not flat colour); otherwise colour differences, which every random filter
    picks up, would drown out blur and noise in the distance.
    """

    name = "FD, random-conv features (offline, not FID)"
    widths = (32, 32, 64, 128)
    dim = 2 * sum(widths)

    def __init__(self, seed: int = 0, max_size: int = 64, device: str | torch.device = "cpu"):
        nn.Module.__init__(self)
        self.max_size = max_size
        gen = torch.Generator().manual_seed(seed)
        convs, c_in = [], 3
        for i, c_out in enumerate(self.widths):
            conv = nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1)
            fan_in = c_in * 9
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                conv.bias.zero_()
            convs.append(conv)
            c_in = c_out
        with torch.no_grad():
            first = self.widths[0] * 3 // 4
            w = convs[0].weight
            w[:first] -= w[:first].mean(dim=(2, 3), keepdim=True)
        self.convs = nn.ModuleList(convs)
        self.requires_grad_(False)
        self.to(device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        device = self.convs[0].weight.device
        x = images.to(device, torch.float32)
        if max(x.shape[-2:]) > self.max_size:
            x = F.interpolate(x, size=(self.max_size, self.max_size), mode="bilinear",
                              align_corners=False, antialias=True)
        pooled = []
        for conv in self.convs:
            x = F.relu(conv(x))
            pooled += [x.mean(dim=(2, 3)), x.std(dim=(2, 3), unbiased=False)]
        return torch.cat(pooled, dim=1).cpu().double().numpy()


@functools.lru_cache(maxsize=2)
def _cached_inception(device: str) -> InceptionFeatures:
    return InceptionFeatures(device)


def default_extractor(device: str | torch.device = "cpu") -> FeatureExtractor:
    """InceptionFeatures (real FID) when its weights are present, else RandomConvFeatures."""
    if inception_available():
        return _cached_inception(str(device))
    return RandomConvFeatures(device=device)


def extract_features(images: torch.Tensor, extractor: FeatureExtractor | None = None,
                     batch_size: int = 100) -> np.ndarray:
    """Features ``[N, D]`` of images ``[N, C, H, W]`` in [-1, 1], computed in batches.

    Grey images (C = 1) are repeated to 3 channels. Raises ValueError for other shapes
    and for values outside [-1, 1] (e.g. [0, 255] data); [0, 1] data cannot be told
    apart from [-1, 1] data, so convert with ``x * 2 - 1`` yourself.
    """
    extractor = extractor or default_extractor()
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 3, H, W] (or [N, 1, H, W]), "
                         f"got shape {tuple(images.shape)}")
    if images.numel() and (images.min() < -1.01 or images.max() > 1.01):
        raise ValueError(f"expected images in [-1, 1], got values in "
                         f"[{images.min().item():.3g}, {images.max().item():.3g}]")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    chunks = [extractor(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, extractor.dim))


def features_label(name: str) -> str:
    """Which features a metric was computed on, without naming the metric: for a KID, a
    precision or a coverage next to an extractor's ``name`` that says "FD, ..." or "FID ..."
    ("FD, random-conv features (offline, not FID)" -> "features: random-conv (offline)")."""
    lowered = name.lower()
    if "random-conv" in lowered:
        return "features: random-conv (offline, not Inception)"
    if "inception" in lowered:
        return "features: Inception (pytorch-fid)"
    return f"features: {name}"
