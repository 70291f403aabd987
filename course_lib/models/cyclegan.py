"""The CycleGAN ResNet generator (Zhu, Park, Isola, Efros, ICCV 2017) and its loader.

The layer list and the state-dict keys match the authors' ``ResnetGenerator`` exactly,
so their pretrained ``.pth`` files (e.g. ``horse2zebra.pth``) load with a strict check.
At ngf 64 and 9 blocks it has 11,378,179 parameters and costs 56.8 GMACs per
256x256 image (counted as GAN Compression counts, see ``course_lib.compress.profile``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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


def _data_error(message: str) -> ValueError:
    """A ``course_lib.data.DataError`` when that module is available, else a ValueError."""
    try:
        from course_lib.data import DataError
    except ImportError:  # the data layer is optional for this loader
        return ValueError(message)
    return DataError(message)


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

    Raises a ValueError (``course_lib.data.DataError``) saying what is wrong when the
    file is missing, is not a PyTorch checkpoint, or holds different keys or shapes.
    Returns the model in eval mode on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise _data_error(
            f"CycleGAN checkpoint not found: {path}. Fetch the pretrained generator with "
            "`python data_scripts/get_data.py cyclegan-horse2zebra-pretrained` or pass the "
            "path of your own .pth file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a checkpoint"
        raise _data_error(
            f"{path} is not a PyTorch checkpoint that can be loaded safely "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Re-download it or check that it is a generator .pth file.") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise _data_error(f"{path} does not hold a state dict of tensors "
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
        raise _data_error(
            f"{path} does not match a CycleGAN ResnetGenerator(ngf={ngf}, n_blocks={n_blocks}): "
            + "; ".join(problems) + ".")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _short(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} in all)"
