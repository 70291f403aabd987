"""One training loop for every model of the course; what differs per model is a task.

The loop (:func:`fit`) owns everything that is not model-specific:

- device placement (``device="auto"`` picks CUDA, then MPS, then the CPU) and mixed
  precision (bf16 autocast, or fp16 with a gradient scaler, on CUDA only);
- seeding: the same seed gives the same run; under torchrun each rank gets its own random
  streams (rank 0's are a single process's), and DDP keeps the weights identical;
- EMA copies of models, atomic resumable checkpoints (only rank 0 writes), a tqdm bar;
- logging: a task's per-step scalars stay on the device and are fetched every
  ``log_every`` steps in one transfer (no ``.item()`` host sync per step), averaged over
  ranks;
- periodic evaluation (``task.evaluate`` plus a callback for live plots).

A **task** is a small object that knows one model family. To add a model to the course
(a distilled student, a weight-shared supernet, an anycost generator), write a
:class:`Task`; the loop does not change. A task:

1. describes its models: ``model_specs()`` -> ``{role: model spec}`` (class + kwargs), so
   every checkpoint carries the architecture and :func:`course_lib.engine.load_model`
   rebuilds any role from the file alone; ``ema_roles`` names EMA copies the loop keeps;
2. prepares what it needs before training: ``setup(models, ctx)`` (load a teacher or
   pretrained weights, freeze layers, check its data against the world size); a role it
   freezes entirely (a teacher) stays in eval mode and outside DDP;
3. makes its optimisers: ``optimizers(models)`` (and optionally ``lr_factor(step)``);
4. draws a batch with the loop's per-rank generators: ``batch(ctx)``;
5. takes one training step: ``train_step(batch, models, optimizers, ctx)``, running its
   forward passes under ``ctx.autocast()``, updating with ``ctx.update(loss, optimizer)``,
   freezing a network it does not train in this phase with ``ctx.frozen(model)``, and
   returning its scalars as 0-d tensors (``{"loss_d": ..., "loss_g": ...}``);
6. evaluates and samples: ``evaluate(models, step)``, ``sample(models, ...)``.

Distillation, for example, is a task whose specs hold a frozen teacher G and a student
G with its D, whose ``train_step`` computes the pixel, feature and GAN losses; a supernet
task's ``train_step`` samples a sub-network configuration from ``ctx.rng["arch"]``
before its forward passes. Neither touches this file.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import course_lib
from course_lib.engine.checkpoint import make_spec, read_run_checkpoint
from course_lib.engine.device import Precision, resolve_device, resolve_precision
from course_lib.engine.distributed import Distributed, current, unwrap
from course_lib.engine.ema import ema_decay, update_ema
from course_lib.fileio import atomic_torch_save
from course_lib.models.registry import build_model

CHECKPOINT_NAME = "checkpoint.pt"


class Task:
    """What one model family does in training; see the module docstring for the contract.

    Subclasses set ``name`` (recorded in every checkpoint), ``rng_streams`` (the random
    streams the loop seeds per rank and checkpoints) and ``ema_roles`` (``{ema role:
    (source role, decay)}``), and implement the methods below. ``config()`` returns the
    task's settings as JSON values; together with ``model_specs()`` it is the run's spec,
    and a checkpoint resumes only into the same spec.
    """

    name: ClassVar[str] = "task"
    rng_streams: ClassVar[tuple[str, ...]] = ("data",)
    seed: int = 0
    ema_roles: dict = {}
    sample_role: str | None = None

    def config(self) -> dict:
        raise NotImplementedError

    def model_specs(self) -> dict[str, dict]:
        raise NotImplementedError

    def setup(self, models: dict[str, nn.Module], ctx: "StepContext") -> None:
        """Before training (and before a resume overwrites the weights): load pretrained
        weights, freeze layers, check the data. Default: nothing."""

    def optimizers(self, models: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def lr_factor(self, step: int) -> float | None:
        """Multiply every optimiser's initial learning rate by this at ``step`` (None: no
        schedule). A function of the step alone, so resuming needs no scheduler state."""
        return None

    def batch(self, ctx: "StepContext"):
        """This rank's next batch (CPU tensors; the loop moves them to the device)."""
        raise NotImplementedError

    def train_step(self, batch, models: dict[str, nn.Module],
                   optimizers: dict[str, torch.optim.Optimizer],
                   ctx: "StepContext") -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def evaluate(self, models: dict[str, nn.Module], step: int) -> dict[str, float]:
        """Figures at an evaluation (rank 0 only; models unwrapped). Default: none."""
        return {}

    def state_dict(self) -> dict:
        """Task state to checkpoint beyond models and optimisers (e.g. an image pool)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @property
    def data_source(self) -> str:
        return ""


def _stream_seed(seed: int, rank: int, index: int) -> int:
    """Rank 0 draws a single process's streams (seed * 1000 + index, as the course always
    has); rank r > 0 draws streams derived from (seed, r, index)."""
    if rank == 0:
        return seed * 1000 + index
    return int(np.random.SeedSequence([seed, rank, index]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class StepContext:
    """What a task's ``batch`` and ``train_step`` get from the loop."""
    device: torch.device
    precision: Precision
    dist: Distributed
    rng: dict[str, torch.Generator]
    scaler: torch.amp.GradScaler
    step: int = 0

    @property
    def world_size(self) -> int:
        return self.dist.world_size

    def autocast(self):
        """Run forward passes and losses in this (mixed-precision) context."""
        return self.precision.autocast()

    def update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser update from ``loss``: zero_grad, backward (loss-scaled under
        fp16; under DDP the wrapped models' gradients are averaged over ranks), step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def check_split(self, n_items: int, batch_size: int, what: str = "training images") -> None:
        """Refuse (one line) a run whose data or global batch cannot be shared by every rank:
        each rank needs items of its own and an equal share of the batch."""
        world = self.world_size
        if world > n_items:
            raise ValueError(f"{world} processes but only {n_items} {what}: every process needs "
                             f"images of its own; start at most {n_items} (--nproc_per_node)")
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} does not split evenly over {world} "
                             f"processes; use a multiple of {world} (--batch-size)")

    @contextlib.contextmanager
    def frozen(self, *models: nn.Module):
        """Yield the unwrapped model(s) with ``requires_grad`` off, restored afterwards.

        E.g. D during the G step: no gradient is computed for D's weights, and under DDP
        the call bypasses D's wrapper, so no gradient all-reduce is started for it.
        """
        raw = [unwrap(m) for m in models]
        saved = [[p.requires_grad for p in m.parameters()] for m in raw]
        for m in raw:
            m.requires_grad_(False)
        try:
            yield raw[0] if len(raw) == 1 else raw
        finally:
            for m, flags in zip(raw, saved):
                for p, flag in zip(m.parameters(), flags):
                    p.requires_grad_(flag)


@dataclass
class Run:
    """A finished (or stopped) run: unwrapped models on the training device, in eval mode."""
    task: Task
    models: dict[str, nn.Module]
    history: dict
    step: int
    spec: dict
    device: torch.device
    world_size: int = 1
    data_source: str = ""
    resumed_from: int = 0

    def state_dicts(self) -> dict:
        return {role: m.state_dict() for role, m in self.models.items()}

    def payload(self) -> dict:
        """What the model zoo stores: spec, weights, history, data source."""
        return {"spec": self.spec, "models": self.state_dicts(), "history": self.history,
                "data_source": self.data_source}


def _move(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_move(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


@dataclass
class _Log:
    """Per-step scalars kept on the device until the next flush."""
    keys: list = field(default_factory=list)
    pending: list = field(default_factory=list)
    steps: list = field(default_factory=list)

    def add(self, step: int, scalars: dict[str, torch.Tensor]) -> None:
        if not self.keys:
            self.keys = list(scalars)
        self.pending.append(torch.stack([scalars[k].detach().float().reshape(()) for k in self.keys]))
        self.steps.append(step)

    def flush(self, history: dict, dist: Distributed) -> dict:
        """Move the pending scalars into ``history`` (one host sync); returns the last ones."""
        if not self.pending:
            return {}
        values = dist.mean(torch.stack(self.pending)).cpu().tolist()
        history.setdefault("step", []).extend(self.steps)
        for i, key in enumerate(self.keys):
            history.setdefault(key, []).extend(row[i] for row in values)
        last = dict(zip(self.keys, values[-1]))
        self.pending, self.steps = [], []
        return last


def fit(task: Task, *, steps: int, out_dir: str | Path | None = None, resume: bool = True,
        device: str | torch.device = "auto", precision: str = "auto", eval_every: int = 0,
        checkpoint_every: int = 0, log_every: int = 10, progress: bool = True,
        stop_after: int | None = None, preset: str | None = None,
        callback: Callable[[int, dict, Run], None] | None = None,
        dist: Distributed | None = None, describe: str = "") -> Run:
    """Train ``task`` for ``steps`` steps (in all, counting a resumed checkpoint's).

    out_dir: where ``checkpoint.pt`` is written (rank 0, atomically) every
        ``checkpoint_every`` steps and at the end; with ``resume`` a checkpoint there of
        the same spec is continued (a finished one is extended if ``steps`` is larger).
    eval_every: steps between evaluations (0: only at the end); ``callback(step,
        history, run)`` runs after each (rank 0).
    stop_after: stop after this many steps of this call (to demonstrate resuming).
    dist: the process group (default: the one torchrun and the CLI set up, if any).
    Returns a :class:`Run`; its history holds ``step`` and the task's per-step scalars,
    ``eval_step`` and the evaluation figures.
    """
    dist = dist or current()
    if isinstance(device, torch.device):
        dev, why = device, "given"
    else:
        dev, why = resolve_device(device, dist.local_rank)
    prec = resolve_precision(precision, dev)
    say = print if (progress and dist.is_main) else (lambda *a, **k: None)
    if device == "auto" or dist.enabled:
        say(f"device: {dev} ({why}); precision {prec.name}"
            + (f"; {dist.world_size} processes ({dist.backend})" if dist.enabled else ""))

    specs = task.model_specs()
    spec = make_spec(task.name, specs, task.config(), preset=preset,
                     sample_role=task.sample_role)
    trained = [r for r in specs if r not in task.ema_roles]
    torch.manual_seed(task.seed)  # initial weights: the same on every rank
    models: dict[str, nn.Module] = {r: build_model(specs[r]) for r in trained}
    gens = {name: torch.Generator().manual_seed(_stream_seed(task.seed, dist.rank, i))
            for i, name in enumerate(task.rng_streams)}
    ctx = StepContext(dev, prec, dist, gens, prec.grad_scaler())
    task.setup(models, ctx)
    # A role the task froze entirely in setup (a distillation teacher) is not trained: it
    # stays in eval mode and outside DDP.
    trained = [r for r in trained if any(p.requires_grad for p in models[r].parameters())]
    for r, m in models.items():
        m.to(dev)
        if r not in trained:
            m.eval()
    for ema_role, (source, _) in task.ema_roles.items():
        models[ema_role] = copy.deepcopy(models[source]).eval()
        models[ema_role].requires_grad_(False)
    optimizers = task.optimizers(models)
    for opt in optimizers.values():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    history: dict[str, list] = {"step": [], "eval_step": []}
    start = 0

    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir else None
    if ckpt_path and resume and ckpt_path.exists():
        ckpt = read_run_checkpoint(ckpt_path, spec)
        start = int(ckpt["step"])
        if start > steps:
            raise ValueError(f"{ckpt_path} is already at step {start}, past the {steps} steps "
                             f"asked for: ask for more steps to extend it, or use another --out")
        for role, state in ckpt["models"].items():
            if role in models and state is not None:
                models[role].load_state_dict(state)
        for name, state in ckpt["optimizers"].items():
            optimizers[name].load_state_dict(state)
        if ckpt.get("scaler"):
            ctx.scaler.load_state_dict(ckpt["scaler"])
        ranks = ckpt["rng"]
        if dist.rank < len(ranks):
            for name, state in ranks[dist.rank].items():
                gens[name].set_state(state)
        else:  # resumed with more processes than it was saved with: fresh streams, by step
            for i, name in enumerate(task.rng_streams):
                gens[name].manual_seed(_stream_seed(task.seed, dist.rank, i) + start)
        task.load_state_dict(ckpt.get("task_state") or {})
        history = ckpt["history"]
        finished = ckpt["spec"]["config"].get("steps")
        world = (f" (saved by {ckpt['world_size']} process(es), now {dist.world_size})"
                 if ckpt["world_size"] != dist.world_size else "")
        if start == finished and steps > start:
            say(f"resuming {ckpt_path}: that run had finished its {start} steps; extending it "
                f"to {steps} steps{world}")
        elif start < steps:
            say(f"resuming {ckpt_path} at step {start} of {steps}{world}")

    wrapped = {r: (dist.wrap(m, dev) if r in trained else m) for r, m in models.items()}
    raw = {r: unwrap(m) for r, m in wrapped.items()}
    run = Run(task, raw, history, start, spec, dev, dist.world_size, task.data_source, start)

    def sync_buffers():
        # DDP broadcasts rank 0's buffers before each forward, so after the last forward
        # each rank's BatchNorm statistics differ a little; end every save on rank 0's.
        if dist.enabled:
            for m in raw.values():
                for b in m.buffers():
                    torch.distributed.broadcast(b, src=0)

    def save(step: int):
        sync_buffers()
        rng = dist.gather({name: g.get_state() for name, g in gens.items()})
        if ckpt_path is None or not dist.is_main:
            return
        state = {
            "spec": dict(spec, config=dict(spec["config"], steps=steps)), "step": step,
            "world_size": dist.world_size, "models": run.state_dicts(),
            "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
            "scaler": ctx.scaler.state_dict() if ctx.scaler.is_enabled() else None,
            "rng": rng, "task_state": task.state_dict(), "history": history,
            "data_source": task.data_source, "library_version": course_lib.__version__,
        }
        try:
            atomic_torch_save(state, ckpt_path)   # written aside, then renamed: never half a file
        except OSError as exc:
            raise ValueError(f"could not write {ckpt_path} ({exc.strerror or exc}); the checkpoint "
                             f"there before is unchanged: free some space or choose another "
                             f"--out") from None

    def evaluate(step: int):
        if dist.is_main:
            history["eval_step"].append(step)
            figures = task.evaluate(raw, step)
            for key, value in figures.items():
                history.setdefault(key, []).append(float(value))
            if callback is not None:
                callback(step, history, run)
        for r in trained:
            wrapped[r].train()

    end = steps if stop_after is None else min(steps, start + stop_after)
    log = _Log()
    for r in trained:
        wrapped[r].train()
    bar = tqdm(range(start, end), initial=start, total=steps, leave=False,
               disable=not (progress and dist.is_main), desc=describe or task.name)
    for step in bar:
        ctx.step = step
        factor = task.lr_factor(step)
        if factor is not None:
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] * factor
        batch = _move(task.batch(ctx), dev)
        scalars = task.train_step(batch, wrapped, optimizers, ctx)
        ctx.scaler.update()
        for ema_role, (source, decay) in task.ema_roles.items():
            update_ema(raw[ema_role], raw[source], ema_decay(decay, step))
        done = step + 1
        log.add(done, scalars)
        at_eval = bool(eval_every) and done % eval_every == 0 and done != steps
        at_ckpt = bool(checkpoint_every) and done % checkpoint_every == 0
        if done % max(1, log_every) == 0 or at_eval or at_ckpt or done == end:
            last = log.flush(history, dist)
            bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()}, refresh=False)
        if at_eval:
            evaluate(done)
        if at_ckpt:
            save(done)
        run.step = done
    bar.close()
    if end == steps and (not history["eval_step"] or history["eval_step"][-1] != end):
        evaluate(end)
    save(end)
    run.step = end
    for m in raw.values():
        m.eval()
    return run
