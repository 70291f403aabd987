"""The model zoo: train a model once, load it every later time.

An entry is keyed by (name, preset, seed) and lives under ``$COURSE_CACHE`` (default
``~/.cache/efficient-gans-workbook``) as two files::

    <name>/<preset>-seed<seed>.pt     the payload (tensors and plain containers)
    <name>/<preset>-seed<seed>.json   metadata: preset, data source, seed, library
                                      version, config and the payload's sha256

Both are written atomically, metadata last, so a half-written entry is never taken as
complete. An entry whose checksum does not match (corrupt) or whose library version or
config differs (stale) is rebuilt, with a message saying why.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import course_lib
from course_lib.fileio import atomic_torch_save, atomic_write_json, load_checkpoint
from course_lib.presets import Preset, get_preset

ENV_VAR = "COURSE_CACHE"


def cache_dir() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "efficient-gans-workbook"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_paths(name: str, preset: str, seed: int) -> tuple[Path, Path]:
    stem = cache_dir() / name / f"{preset}-seed{seed}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _why_unusable(payload_path: Path, meta_path: Path, config: dict, recipe: int = 1) -> str | None:
    """None if the entry can be used, else a short reason it cannot."""
    if not payload_path.exists() or not meta_path.exists():
        return "missing"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "corrupt metadata"
    if meta.get("sha256") != _sha256(payload_path):
        return "corrupt (checksum mismatch)"
    if meta.get("library_version") != course_lib.__version__:
        return f"stale (made by course_lib {meta.get('library_version')}, this is {course_lib.__version__})"
    if meta.get("config") != config:
        return "stale (made with a different configuration)"
    if meta.get("recipe", 1) != recipe:
        return f"stale (recipe {meta.get('recipe', 1)}, this is recipe {recipe})"
    return None


def load_or_train(
    name: str,
    train_fn: Callable[[Preset, int], dict],
    *,
    preset: str | Preset | None = None,
    seed: int = 0,
    config: dict | None = None,
    rebuild: bool = False,
    verbose: bool = True,
    recipe: int = 1,
) -> dict:
    """Return the cached payload for (name, preset, seed), training it first if needed.

    ``train_fn(preset, seed)`` must return a dict of tensors and plain values; a
    ``"data_source"`` key, if present, is copied into the metadata. ``config`` is any
    JSON-able description of the run (architecture, steps, ...): change it and the
    entry is rebuilt. ``recipe``: the model's recipe version (bump it when its training
    changes). A payload's ``"spec"`` (its architecture) is copied into the metadata.
    """
    preset = get_preset(preset)
    config = json.loads(json.dumps(config or {}))  # normalise tuples etc.
    payload_path, meta_path = entry_paths(name, preset.name, seed)
    reason = "rebuild requested" if rebuild else _why_unusable(payload_path, meta_path, config, recipe)
    if reason is None:
        try:
            return load_checkpoint(payload_path)
        except Exception as exc:  # unreadable despite a matching checksum
            reason = f"unreadable ({type(exc).__name__})"
    if verbose and reason != "missing":
        print(f"zoo: {name} [{preset.name}, seed {seed}] is {reason}; training it again.")
    elif verbose:
        print(f"zoo: training {name} [{preset.name}, seed {seed}] (cached for next time).")
    payload = train_fn(preset, seed)
    if not isinstance(payload, dict):
        raise TypeError(f"train_fn for {name!r} must return a dict, got {type(payload).__name__}")
    atomic_torch_save(payload, payload_path)
    atomic_write_json(
        {
            "name": name,
            "preset": preset.name,
            "seed": seed,
            "data_source": payload.get("data_source"),
            "library_version": course_lib.__version__,
            "config": config,
            "recipe": recipe,
            "spec": payload.get("spec"),
            "sha256": _sha256(payload_path),
        },
        meta_path,
    )
    return payload


def entries() -> list[dict]:
    """Metadata of every entry in the cache (for ``python -m course_lib zoo``)."""
    root = cache_dir()
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*.json"))] if root.exists() else []
