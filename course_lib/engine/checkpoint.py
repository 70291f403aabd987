"""Self-describing checkpoints: every file names the models it holds and how to build them.

A run's **spec** says what the run is (JSON values only)::

    {"format": 1, "task": "dcgan", "preset": "class", "sample_role": "G_ema",
     "models": {"G": {"class": "DCGANGenerator", "module": "course_lib.models.dcgan",
                      "kwargs": {"z_dim": 128, "ngf": 32, "image_size": 32, ...}},
                "D": {...}, "G_ema": {...}},
     "config": {...the task's settings: losses, learning rates, seed, steps...}}

A **checkpoint** (``checkpoint.pt`` in a run's ``--out``) is the spec plus the state to
resume from: ``step``, ``world_size``, ``models`` (a state dict per role), ``optimizers``,
``scaler``, ``rng`` (each rank's random streams), ``task_state``, ``history``,
``data_source``. A **payload** (what the model zoo stores) is the spec, ``models``,
``history`` and ``data_source``, plus whatever figures the trainer adds. Both load with
``weights_only=True``; :func:`load_model` rebuilds any model from either file alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from course_lib.fileio import CheckpointError, read_checkpoint
from course_lib.models.registry import build_model

FORMAT = 1
CHECKPOINT_KEYS = ("spec", "step", "world_size", "models", "optimizers", "rng", "history")
# Settings that say how long a run is and how often it reports, not what it computes:
# a checkpoint resumes when only these differ (e.g. more --steps extend a finished run).
RUN_LENGTH_KEYS = ("steps", "eval_every", "checkpoint_every")
RESUME_ADVICE = ("use another --out folder, or start over with --no-resume "
                 "(resume=False in Python), which replaces it")
LOAD_ADVICE = ("pass a checkpoint.pt written by train-gan or train-cyclegan, or a model-zoo "
               ".pt file")


def make_spec(task: str, models: dict[str, dict], config: dict, *, preset: str | None = None,
              sample_role: str | None = None) -> dict:
    """A run's spec (see the module docstring). ``models``: role -> model spec
    (:func:`course_lib.models.model_spec`); ``config``: the task's JSON-able settings."""
    spec = {"format": FORMAT, "task": task, "preset": preset, "models": models,
            "config": config, "sample_role": sample_role or next(iter(models))}
    return json.loads(json.dumps(spec))   # plain values only: tuples become lists


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def differences(there: dict, here: dict, limit: int = 4) -> str:
    """``"ngf 8 there, 16 here; lr_g ..."``: what differs between two (nested) dicts."""
    a, b = _flat(there), _flat(here)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "(unset)") != b.get(k, "(unset)"))
    shown = [f"{k} {a.get(k, '(unset)')} there, {b.get(k, '(unset)')} here" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(shown) + more


def check_compatible(path: Path, ckpt: dict, spec: dict, advice: str = RESUME_ADVICE) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``ckpt`` continues the run ``spec``
    describes (same task, architecture and settings, except :data:`RUN_LENGTH_KEYS`)."""
    theirs = ckpt["spec"]
    if theirs.get("task") != spec["task"]:
        raise CheckpointError(f"{path} is a checkpoint of a {theirs.get('task')} run, and this "
                              f"is a {spec['task']} run: {advice}")
    if theirs.get("models") != spec["models"]:
        raise CheckpointError(f"{path} holds another architecture "
                              f"({differences(theirs.get('models', {}), spec['models'])}): {advice}")

    def settings(s):
        return {k: v for k, v in (s.get("config") or {}).items() if k not in RUN_LENGTH_KEYS}

    if settings(theirs) != settings(spec):
        raise CheckpointError(f"{path} was made with a different configuration "
                              f"({differences(settings(theirs), settings(spec))}): {advice}")


def _malformed(obj: dict) -> str | None:
    """What is wrong with the spec and weights of a file that has both, or None: each
    model spec a dict, each model's state a dict (or None)."""
    models, states = obj["spec"].get("models"), obj["models"]
    if not isinstance(models, dict) or not all(isinstance(m, dict) for m in models.values()):
        return "its architecture spec is malformed (the models are not a table of specs)"
    if not all(state is None or isinstance(state, dict) for state in states.values()):
        return "its weights are malformed (a model's state is not a table of tensors)"
    return None


def read_run_checkpoint(path: str | os.PathLike, spec: dict, advice: str = RESUME_ADVICE) -> dict:
    """The checkpoint at ``path``, checked to be complete and to continue ``spec``'s run;
    every problem is one :class:`CheckpointError` line naming the file."""
    path = Path(path)
    ckpt = read_checkpoint(path, advice)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("spec"), dict):
        raise CheckpointError(f"{path} is not a checkpoint of this library's training engine "
                              f"(it carries no architecture spec; an older course_lib or "
                              f"another program wrote it): {advice}")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is incomplete: it lacks {', '.join(missing)}: {advice}")
    problem = _malformed(ckpt) if isinstance(ckpt["models"], dict) else "its weights are malformed"
    if problem:
        raise CheckpointError(f"{path}: {problem}: {advice}")
    check_compatible(path, ckpt, spec, advice)
    return ckpt


def _read_spec_file(path: Path) -> dict:
    obj = read_checkpoint(path, LOAD_ADVICE)
    if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict) \
            or not isinstance(obj.get("models"), dict):
        raise CheckpointError(f"{path} carries no architecture spec (not written by this "
                              f"library's training engine; for the authors' CycleGAN weights "
                              f"use course_lib.models.load_cyclegan_generator): {LOAD_ADVICE}")
    problem = _malformed(obj)
    if problem:
        raise CheckpointError(f"{path}: {problem}: {LOAD_ADVICE}")
    return obj


def load_models(path: str | os.PathLike, roles=None) -> dict[str, nn.Module]:
    """Every model (or those of ``roles``) of a checkpoint or zoo payload, rebuilt from its
    spec alone, weights loaded strictly, in eval mode on the CPU: ``{role: model}``."""
    path = Path(path)
    return _rebuild(path, _read_spec_file(path), roles)


def _rebuild(path: Path, obj: dict, roles) -> dict[str, nn.Module]:
    spec, states = obj["spec"], obj["models"]
    wanted = list(roles) if roles is not None else [r for r in spec["models"] if r in states]
    out = {}
    for role in wanted:
        if role not in spec["models"] or states.get(role) is None:
            raise CheckpointError(f"{path} holds no model {role!r}; it holds "
                                  f"{', '.join(r for r in spec['models'] if states.get(r) is not None)}")
        try:
            model = build_model(spec["models"][role])
            model.load_state_dict(states[role], strict=True)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise CheckpointError(f"{path}: its {role} does not rebuild from its own spec "
                                  f"({first}): {LOAD_ADVICE}") from None
        out[role] = model.eval()
    return out


def load_model(path: str | os.PathLike, role: str | None = None) -> nn.Module:
    """One model of a checkpoint or zoo payload, rebuilt from the file alone.

    ``role`` e.g. "G", "D", "G_ema" (DCGAN) or "G_A", "G_B", "D_A", "D_B" (CycleGAN);
    default: the file's ``sample_role`` (the model to sample or translate with: the EMA
    generator when there is one, CycleGAN's A->B generator). Eval mode, on the CPU.
    """
    path = Path(path)
    obj = _read_spec_file(path)
    role = role or obj["spec"].get("sample_role") or next(iter(obj["spec"]["models"]))
    return _rebuild(path, obj, [role])[role]


def read_spec(path: str | os.PathLike) -> dict:
    """The spec of a checkpoint or zoo payload (task, preset, models, config)."""
    return _read_spec_file(Path(path))["spec"]
