"""Where a run computes (CPU, CUDA, Apple's MPS) and at which precision.

``--device auto`` picks CUDA, then MPS, then the CPU. Mixed precision is a CUDA-only
speed-up: bf16 autocast where the GPU supports it (no loss scaling needed: bf16 has
fp32's exponent range), else fp16 autocast with a gradient scaler (fp16 gradients would
underflow without it). On the CPU and MPS everything stays fp32.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto", local_rank: int = 0) -> tuple[torch.device, str]:
    """``(device, why)`` for ``name`` in :data:`DEVICES`; under torchrun each process takes
    the GPU of its ``local_rank``. Raises ValueError (one line, what to do) when the asked-for
    device is not there."""
    if name not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda(local_rank), f"auto: CUDA found ({torch.cuda.device_count()} GPU(s))"
        if mps_available():
            return torch.device("mps"), "auto: Apple MPS found, no CUDA"
        return torch.device("cpu"), "auto: no CUDA or MPS on this machine"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: this machine has no usable CUDA GPU (or this PyTorch "
                             "build has no CUDA support); use --device cpu or --device auto")
        return _cuda(local_rank), "asked for"
    if name == "mps":
        if not mps_available():
            raise ValueError("--device mps: Apple's MPS backend is not available here; "
                             "use --device cpu or --device auto")
        return torch.device("mps"), "asked for"
    return torch.device("cpu"), "asked for"


def _cuda(local_rank: int) -> torch.device:
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"process with local rank {local_rank} has no GPU of its own "
                         f"({torch.cuda.device_count()} visible): start at most that many "
                         f"processes per node (torchrun --nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@dataclass(frozen=True)
class Precision:
    """How the forward passes run: ``dtype`` None is plain fp32; ``scaled`` adds a
    gradient scaler (fp16)."""
    name: str
    device_type: str
    dtype: torch.dtype | None

    @property
    def scaled(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self):
        """The context the task's forward passes run in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is a no-op unless this is fp16 (then losses are scaled up before
        backward and the step is skipped when a gradient overflowed)."""
        return torch.amp.GradScaler(self.device_type if self.scaled else "cpu",
                                    enabled=self.scaled)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a CUDA GPU that supports it, fp16 on an older one, fp32 elsewhere."""
    if name not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name != "fp32" and device.type != "cuda":
        raise ValueError(f"--precision {name} is for CUDA GPUs; on {device.type} use "
                         f"--precision fp32 (or auto)")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return Precision(name, device.type, dtype)


@torch.no_grad()
def run_in_chunks(model: nn.Module, inputs: torch.Tensor, batch_size: int = 250,
                  prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``model(inputs)`` a chunk at a time on the model's device, returned as float on the
    CPU (sampling or translating a whole evaluation set without holding its activations).
    ``prepare`` converts each chunk first (e.g. uint8 images to floats)."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(inputs), batch_size):
        chunk = inputs[i:i + batch_size]
        chunk = prepare(chunk) if prepare is not None else chunk
        out.append(model(chunk.to(device)).float().cpu())
    return torch.cat(out)
