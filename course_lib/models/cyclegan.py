"""CycleGAN's networks (Zhu, Park, Isola, Efros, ICCV 2017): the ResNet generator, the
PatchGAN discriminator, their initialisation, and a loader for the authors' weights.

The layer lists and the state-dict keys match the authors' ``ResnetGenerator`` and
``NLayerDiscriminator`` (``models/networks.py``) exactly, so their pretrained ``.pth``
files (e.g. ``horse2zebra.pth``) load with a strict check. At ngf 64 and 9 blocks the
generator has 11,378,179 parameters and costs 56.8 GMACs per 256x256 image (counted as
GAN Compression counts, see ``course_lib.compress.profile``); the 70x70 PatchGAN at ndf
64 has 2,764,737 parameters and scores a 256x256 image as a 30x30 map of patches.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from course_lib.fileio import CheckpointError, read_checkpoint
from course_lib.models.registry import register_model

# Buffers that pre-0.4 PyTorch saved for InstanceNorm layers; today's InstanceNorm2d
# (track_running_stats=False) has none, so they must be dropped before a strict load.
LEGACY_NORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + [pad, conv3, IN, ReLU, pad, conv3, IN](x); ``[N, dim, H, W]`` -> same shape."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim), nn.ReLU(True),   # 0-3
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim),                  # 4-6
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


@register_model
class ResnetGenerator(nn.Module):
    """images ``[N, input_nc, H, W]`` in [-1, 1] -> ``[N, output_nc, H, W]`` in [-1, 1].

    H and W should be multiples of 4 (two stride-2 downsamplings). The numbers on the
    right are the indices in ``self.model``, which name the state-dict keys.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), _norm(ngf), nn.ReLU(True),  # 0-3
            # two downsamplings: ngf -> 2ngf -> 4ngf                                          4-9
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), _norm(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1), _norm(ngf * 4), nn.ReLU(True),
        ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]  # 10 .. 9+n_blocks
        layers += [
            # two upsamplings: 4ngf -> 2ngf -> ngf
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1),
            _norm(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1),
            _norm(ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_model
class NLayerDiscriminator(nn.Module):
    """The PatchGAN: images ``[N, input_nc, H, W]`` -> logits ``[N, 1, h, w]``, one per
    overlapping patch (a positive logit means "real patch").

    ``n_layers`` stride-2 convs, then a stride-1 conv and the 1-channel logit conv, all 4x4
    with padding 1; widths ndf, 2ndf, 4ndf, 8ndf (capped at 8ndf). With ``n_layers=3`` each
    logit sees a 70x70 patch: 256x256 -> 30x30 logits, 64x64 -> 6x6. Instance norm (no
    running statistics) on every conv but the first and the last, hence their biases.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1      # the last of these keeps the resolution
            out = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1), _norm(out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(model: nn.Module, gain: float = 0.02) -> nn.Module:
    """The authors' default init: conv weights ~ N(0, gain), biases 0 (in place; returns
    ``model``). Draws from torch's global generator, so seed it first."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _instance_norm_names(model: nn.Module) -> set[str]:
    return {name for name, m in model.named_modules() if isinstance(m, nn.InstanceNorm2d)}


def _drop_legacy_keys(state: dict, norm_names: set[str]) -> dict:
    """Remove running-stat keys that belong to this model's InstanceNorm layers."""
    kept = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if leaf in LEGACY_NORM_KEYS and module in norm_names:
            continue
        kept[key] = value
    return kept


def load_cyclegan_generator(path, *, ngf: int = 64, n_blocks: int = 9) -> ResnetGenerator:
    """Load a CycleGAN generator state dict (e.g. the authors' ``horse2zebra.pth``).

    Legacy InstanceNorm running-stat keys are dropped (CycleGAN issues #262, #461), a
    ``module.`` prefix (from DataParallel/DDP training) is removed, and the rest must
    match a ``ResnetGenerator(ngf=ngf, n_blocks=n_blocks)`` exactly.

    Raises a ValueError (:class:`course_lib.fileio.CheckpointError`) saying what is wrong
    when the file is missing, is not a PyTorch checkpoint, or holds different keys or
    shapes. Returns the model in eval mode on the CPU. (A checkpoint written by this
    library's training engine carries its architecture: use
    :func:`course_lib.engine.load_model` for those.)
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"CycleGAN checkpoint not found: {path}. Fetch the pretrained generator with "
            "`python data_scripts/get_data.py cyclegan-horse2zebra-pretrained` or pass the "
            "path of your own .pth file.")
    state = read_checkpoint(path, "re-download it or check that it is a generator .pth file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors "
                          f"(found {type(state).__name__}).")
    state = {k.removeprefix("module."): v for k, v in state.items()}

    model = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    state = _drop_legacy_keys(state, _instance_norm_names(model))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state)
                         if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"missing keys {_short(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_short(unexpected)}")
        if wrong_shape:
            problems.append("wrong shapes " + _short(
                [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong_shape]))
        raise CheckpointError(
            f"{path} does not match a CycleGAN ResnetGenerator(ngf={ngf}, n_blocks={n_blocks}): "
            + "; ".join(problems) + ".")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _short(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} in all)"
