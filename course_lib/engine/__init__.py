"""The training engine: one loop for every model of the course, small tasks for the rest.

- ``loop``         :func:`fit`, the :class:`Task` interface, :class:`StepContext`, :class:`Run`
- ``device``       ``--device auto|cpu|cuda|mps`` and mixed precision (CUDA only)
- ``distributed``  torchrun / DistributedDataParallel: ranks, per-rank data, rank 0 writes
- ``checkpoint``   self-describing checkpoints; :func:`load_model` rebuilds from a file alone
- ``outdir``       ``--out`` checked before training, and locked while a run uses it
- ``ema``          the exponential moving average of a model's weights
- ``cli``          the arguments and the run wrapper shared by ``train-gan`` and ``train-cyclegan``

The tasks live in :mod:`course_lib.tasks`; model classes register in
:mod:`course_lib.models.registry`.
"""
from course_lib.engine.checkpoint import load_model, load_models, make_spec, read_spec
from course_lib.engine.device import resolve_device, resolve_precision, run_in_chunks
from course_lib.engine.distributed import Distributed, init_from_env
from course_lib.engine.ema import ema_decay, update_ema
from course_lib.engine.loop import Run, StepContext, Task, fit
from course_lib.engine.outdir import RunLock, check_out_dir
from course_lib.models.registry import build_model, model_spec, register_model

__all__ = [
    "fit", "Task", "StepContext", "Run",
    "load_model", "load_models", "read_spec", "make_spec",
    "register_model", "model_spec", "build_model",
    "resolve_device", "resolve_precision", "run_in_chunks", "Distributed", "init_from_env",
    "ema_decay", "update_ema", "check_out_dir", "RunLock",
]
