"""Running one training under ``torchrun`` with DistributedDataParallel (DDP).

The same command runs alone or as N processes::

    python -m course_lib train-gan ...                          # one process
    torchrun --nproc_per_node=8 -m course_lib train-gan ...     # 8 processes, one per GPU

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each process's environment;
:func:`init_from_env` reads them (as nanoGPT's ``train.py`` does) and joins the process
group: ``nccl`` between GPUs, ``gloo`` on the CPU. Then, in the training loop:

- every process builds the same models from the same seed, and DDP broadcasts rank 0's
  weights once more and averages the gradients of every backward pass, so the weights
  stay identical on every rank;
- each rank draws its *own* data: the loop gives rank r random streams (batch indices,
  latents, augmentations) seeded from (seed, r); rank 0's are exactly a single-process
  run's. The configured batch size is the *global* batch, split evenly over the ranks,
  so 1 and N processes optimise the same objective;
- only rank 0 (``is_main``) writes: logs, progress bar, checkpoints, samples, results.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """Who this process is in the run. A single process is rank 0 of 1."""
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None      # None: not distributed

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes (nanoGPT's ``master_process``)."""
        return self.rank == 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` inside DDP when distributed (gradients averaged over ranks), else as is."""
        if not self.enabled or not any(p.requires_grad for p in model.parameters()):
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of ``tensor`` over the ranks (itself when alone)."""
        if not self.enabled:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
        return out / self.world_size

    def gather(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (small picklable objects)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def from_main(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, error: str | None) -> None:
        """Stop every rank with rank 0's one-line ``error`` (None: go on). Used after checks
        only rank 0 makes (the output folder, its lock), so no rank trains alone."""
        error = self.from_main(error)
        if error:
            raise ValueError(error if self.is_main else f"(rank {self.rank}) {error}")


SINGLE = Distributed()


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device_type: str = "cpu") -> Distributed:
    """Join the process group torchrun set up, or return :data:`SINGLE` when not under
    torchrun. ``device_type`` "cuda" uses nccl, anything else gloo."""
    if not under_torchrun():
        return SINGLE
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if world == 1:
        return Distributed(rank, local, 1, None)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return Distributed(rank, local, world, backend)


def current() -> Distributed:
    """The process group this process already belongs to (the CLI joined it), else single."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Distributed(torch.distributed.get_rank(),
                           int(os.environ.get("LOCAL_RANK", torch.distributed.get_rank())),
                           torch.distributed.get_world_size(), torch.distributed.get_backend())
    return SINGLE


def shutdown(dist: Distributed) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    return model.module if isinstance(model, (DistributedDataParallel, DataParallel)) else model
