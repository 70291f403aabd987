"""The model zoo: train a model once and load it every later time; find fetched weights.

The zoo has its own folder (its *root*): ``$COURSE_CACHE`` if set, else
``$XDG_CACHE_HOME/efficient-gans-workbook/zoo`` (``~/.cache/...`` by default). Fetched
datasets live in a sibling root (``course_lib.data.data_root()``, ``.../data``) and run
outputs in ``$COURSE_RESULTS_DIR`` and each run's ``--out``, so clearing one never
touches another. Each entry is a folder named after its model:

    trained   <name>/<preset>-seed<seed>.pt    the payload (tensors and plain containers)
              <name>/<preset>-seed<seed>.json  its metadata
    fetched   <name>/fetched.json              where a downloaded file is, and its spec;
                                               the file itself stays in the data root

Trained metadata: kind, name, preset, seed, recipe, config, spec and task (copied from
the payload when it has them), data source, the payload's sha256, and the library
version (for information only). Both files are written atomically, metadata last, so a
half-written entry is never taken as complete.

An entry is trained again, with a message naming its file, when it is
- missing, or its payload does not match its sha256 or cannot be read (corrupt);
- unreadable, incomplete or another entry's metadata (a JSON list, missing keys, ...);
- stale: a different ``recipe`` or ``config``. ``recipe`` is a per-model version that the
  code training that model bumps when the training changes. A new library version alone
  keeps every entry: models can take hours to train, and most releases do not change
  how a given model is trained. Entries written before recipes existed (course_lib
  0.2.0 and earlier) count as recipe 1.

The zoo deletes only what it wrote. It recognises an entry by its metadata (name, preset
and seed agreeing with the file names), so :func:`remove` is safe even when
``$COURSE_CACHE`` points at a folder full of other things.

Old layout: course_lib 0.2.0 and earlier kept the zoo in ``.../efficient-gans-workbook``
itself, with the data root inside it. The first time the zoo is used with the default
root, the old entries are moved (a rename, on the same disk) into ``.../zoo``. The data
root does not move: downloads stay where they are.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import course_lib
from course_lib.fileio import (app_cache_home, atomic_torch_save, atomic_write_json,
                               load_checkpoint, writable_folder_problem)
from course_lib.presets import Preset, get_preset

ENV_VAR = "COURSE_CACHE"
FETCHED_STEM = "fetched"
TRAINED_KEYS = ("name", "preset", "seed", "sha256")
FETCHED_KEYS = ("name", "path")


class ZooError(ValueError):
    """The zoo cannot do what was asked; the message says which file and what to do.
    The command line prints it without a traceback (``course_lib.cli`` catches
    ``ValueError``)."""


@dataclass(frozen=True)
class ZooEntry:
    """One recognised entry. ``files``: what the zoo wrote for it, metadata first (what
    :func:`remove` deletes). ``problem``: why it is not usable as is, or None."""
    kind: str                                   # "trained" or "fetched"
    meta: dict
    files: tuple[Path, ...]
    problem: str | None = None


@dataclass(frozen=True)
class Scan:
    """What :func:`scan` found under ``root``. ``skipped``: JSON files where entries go
    that are not (usable) zoo entries, with the reason; they are left alone.
    ``problem``: the root itself cannot be listed (a file, unreadable), else None."""
    root: Path
    entries: list[ZooEntry] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    problem: str | None = None


# --- where -----------------------------------------------------------------------------------

def cache_dir() -> Path:
    """The zoo's root: ``$COURSE_CACHE``, else ``$XDG_CACHE_HOME/efficient-gans-workbook/zoo``.
    Not created here: reading the path must not touch the disk."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return app_cache_home() / "zoo"


def _legacy_root() -> Path:
    """Where course_lib 0.2.0 and earlier kept the zoo by default (its data root is the
    ``data`` folder inside)."""
    return app_cache_home()


def entry_paths(name: str, preset: str, seed: int) -> tuple[Path, Path]:
    """(payload .pt, metadata .json) of the trained entry (name, preset, seed)."""
    _check_name(name)
    stem = cache_dir() / name / f"{preset}-seed{seed}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _check_name(name) -> None:
    """A name becomes a folder: one plain path component, not hidden."""
    if (not isinstance(name, str) or not name or name.startswith(".")
            or "/" in name or "\\" in name or os.sep in name):
        raise ZooError(f"a zoo entry name must be a plain, non-hidden folder name such as "
                       f"'dcgan-cifar'; got {name!r}")


# --- reading metadata ------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain(value):
    """A JSON-able copy (tuples become lists; anything else JSON cannot hold, its str)."""
    return json.loads(json.dumps(value, default=str))


_JSON_KIND = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
              type(None): "null"}


def _read_json(path: Path) -> tuple[object, str | None]:
    """(parsed JSON, None), or (None, why it cannot be read)."""
    if path.is_dir():
        return None, "a folder, not a metadata file"
    try:
        return json.loads(path.read_text()), None
    except UnicodeDecodeError:
        return None, "not text (binary data)"
    except json.JSONDecodeError as exc:
        return None, f"corrupt JSON ({exc})"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"


def _metadata_problem(meta, folder_name: str, stem: str) -> str | None:
    """None if ``meta`` is the zoo's metadata for ``<folder_name>/<stem>.json``."""
    if not isinstance(meta, dict):
        return f"not zoo metadata (a JSON {_JSON_KIND.get(type(meta), 'value')})"
    fetched = stem == FETCHED_STEM
    missing = [k for k in (FETCHED_KEYS if fetched else TRAINED_KEYS) if k not in meta]
    if missing:
        return f"incomplete metadata (no {', '.join(repr(k) for k in missing)})"
    if meta["name"] != folder_name:
        return f"another entry's metadata (written for {meta['name']!r})"
    kind = meta.get("kind", "trained")  # 0.2.0 wrote no kind: only trained entries existed
    if kind != ("fetched" if fetched else "trained"):
        return f"metadata of a {kind!r} entry in the place of a trained one"
    if not fetched and f"{meta['preset']}-seed{meta['seed']}" != stem:
        return (f"another entry's metadata (written for preset {meta['preset']!r}, "
                f"seed {meta['seed']!r})")
    return None


def _recognise(meta_path: Path) -> ZooEntry | str:
    """The entry whose metadata is ``meta_path``, or the reason it is not one."""
    meta, problem = _read_json(meta_path)
    if problem is None:
        problem = _metadata_problem(meta, meta_path.parent.name, meta_path.stem)
    if problem is not None:
        return problem
    if meta_path.stem == FETCHED_STEM:
        target = Path(str(meta["path"]))
        gone = None if target.is_file() else f"the fetched file {target} is gone"
        return ZooEntry("fetched", meta, (meta_path,), gone)
    payload = meta_path.with_suffix(".pt")
    if payload.is_dir():
        return ZooEntry("trained", meta, (meta_path,),
                        f"{payload} is a folder, not a payload: move it out of the way")
    if not (payload.is_file() or payload.is_symlink()):
        return ZooEntry("trained", meta, (meta_path,),
                        "payload missing (trained again when next needed)")
    return ZooEntry("trained", meta, (meta_path, payload))


# --- listing and removing --------------------------------------------------------------------

def scan() -> Scan:
    """Every entry under the zoo's root, and the JSON files there that are not entries.
    Never raises for what it finds on disk: problems are in the result."""
    _migrate_legacy()
    root = cache_dir()
    if not root.exists() and not root.is_symlink():
        return Scan(root)
    if not root.is_dir():
        return Scan(root, problem=f"{root} is a file, not a folder: set {ENV_VAR} to a "
                                  f"folder (or unset it for the default)")
    try:
        folders = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError as exc:
        return Scan(root, problem=f"cannot list {root} ({exc.strerror or exc})")
    found_entries, skipped = [], []
    for folder in folders:
        try:
            metas = sorted(folder.glob("*.json"))
        except OSError as exc:
            skipped.append((folder, f"cannot list it ({exc.strerror or exc})"))
            continue
        for meta_path in metas:
            found = _recognise(meta_path)
            if isinstance(found, ZooEntry):
                found_entries.append(found)
            else:
                skipped.append((meta_path, found))
    return Scan(root, found_entries, skipped)


def entries(kind: str | None = "trained") -> list[dict]:
    """Metadata of every usable-looking entry of ``kind`` ("trained", "fetched" or None
    for both). Unreadable and foreign files are left out (``scan()`` lists them)."""
    return [e.meta for e in scan().entries if kind is None or e.kind == kind]


def remove(entry: ZooEntry) -> list[Path]:
    """Delete the files the zoo wrote for ``entry`` (metadata first, so a half-removed
    entry is never taken as complete), then its folder if that is now empty. Nothing
    else is touched. Returns the files deleted."""
    removed = []
    for path in entry.files:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    _remove_if_empty(entry.files[0].parent)
    return removed


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # fails, harmlessly, unless the folder is empty
    except OSError:
        pass


def _migrate_legacy() -> None:
    """Move trained entries from the 0.2.0 default root into the zoo's own folder.

    Only with the default root (an explicit ``$COURSE_CACHE`` is the user's choice), only
    recognised entries, by rename (same parent folder, so same disk: instant and
    atomic), payload first and metadata last. The data root inside the old folder is
    never looked into.
    """
    if os.environ.get(ENV_VAR):
        return
    old, new = _legacy_root(), cache_dir()
    try:
        folders = [p for p in old.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in (new.name, "data")]
    except OSError:
        return  # no old folder: nothing to move
    moved = 0
    for folder in folders:
        for meta_path in sorted(folder.glob("*.json")):
            found = _recognise(meta_path)
            if not isinstance(found, ZooEntry) or found.kind != "trained":
                continue
            target = new / folder.name
            if (target / meta_path.name).exists():
                continue  # already trained in the new place: leave the old copy alone
            try:
                target.mkdir(parents=True, exist_ok=True)
                for path in reversed(found.files):  # payload first, metadata last
                    os.replace(path, target / path.name)
                moved += 1
            except OSError:
                continue  # another process moved it, or the disk refused: try next time
        _remove_if_empty(folder)
    if moved:
        print(f"zoo: moved {moved} cached model(s) from {old} into {new}, the zoo's own "
              f"folder. The datasets in {old / 'data'} stay where they are.",
              file=sys.stderr)


# --- trained entries -------------------------------------------------------------------------

def _why_unusable(payload_path: Path, meta_path: Path, *, recipe: int,
                  config: dict) -> str | None:
    """None if the entry can be used, else a short reason it cannot."""
    if not meta_path.exists() or not payload_path.exists():
        return "missing"
    meta, problem = _read_json(meta_path)
    if problem is None:
        problem = _metadata_problem(meta, meta_path.parent.name, meta_path.stem)
    if problem is not None:
        return problem
    try:
        if meta["sha256"] != _sha256(payload_path):
            return "corrupt (the payload does not match its checksum)"
    except OSError as exc:
        return f"unreadable ({payload_path}: {exc.strerror or exc})"
    made_with = meta.get("recipe", 1)  # entries from before recipes: recipe 1
    if made_with != recipe:
        return f"stale (trained with recipe {made_with}, the code now trains recipe {recipe})"
    if meta.get("config") != config:
        return "stale (made with a different configuration)"
    return None


def _check_can_save(name: str, payload_path: Path, meta_path: Path) -> None:
    """Raise :class:`ZooError` now, not after minutes of training, if the entry could
    not be saved. Makes the entry's folder."""
    problem = writable_folder_problem(payload_path.parent)
    if problem:
        raise ZooError(f"cannot keep {name} in the model zoo: {problem}. Set {ENV_VAR} to a "
                       f"writable folder (it is now {cache_dir()}), or fix the permissions")
    for path in (payload_path, meta_path):
        if path.is_dir():
            raise ZooError(f"{path} is a folder where the zoo keeps a file: move it out of "
                           f"the way (the zoo deletes only what it wrote), then run again")


def load_or_train(
    name: str,
    train_fn: Callable[[Preset, int], dict],
    *,
    preset: str | Preset | None = None,
    seed: int = 0,
    config: dict | None = None,
    recipe: int = 1,
    rebuild: bool = False,
    verbose: bool = True,
) -> dict:
    """Return the cached payload for (name, preset, seed), training it first if needed.

    ``train_fn(preset, seed)`` must return a dict of tensors and plain values. From it,
    ``"data_source"``, ``"task"`` and ``"spec"`` (the architecture: model class names
    and constructor arguments) are copied into the metadata. ``config`` is any JSON-able
    description of the run (steps, sizes, ...): change it and the entry is rebuilt.
    ``recipe`` (an int >= 1) is this model's training version: bump it when the training
    code changes in a way that makes old entries wrong.

    Raises :class:`ZooError` before training if the entry could not be saved (the zoo's
    root is a file or not writable, a folder is in the way). If saving fails anyway
    (the disk fills up), the trained payload is still returned, with a warning.
    """
    _check_name(name)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ZooError(f"seed must be a whole number >= 0; got {seed!r}")
    if isinstance(recipe, bool) or not isinstance(recipe, numbers.Integral) or recipe < 1:
        raise ZooError(f"recipe must be a whole number >= 1; got {recipe!r}")
    seed, recipe = int(seed), int(recipe)
    preset = get_preset(preset)
    config = _plain(config or {})
    _migrate_legacy()
    payload_path, meta_path = entry_paths(name, preset.name, seed)
    label = f"{name} [{preset.name}, seed {seed}]"
    reason = "rebuild requested" if rebuild else _why_unusable(
        payload_path, meta_path, recipe=recipe, config=config)
    if reason is None:
        try:
            return load_checkpoint(payload_path)
        except Exception as exc:  # unreadable despite a matching checksum
            # Only the type: torch's text may suggest weights_only=False, which we never do.
            reason = f"unreadable ({type(exc).__name__})"
    # A usable entry loads from a read-only zoo too; training needs somewhere to save.
    _check_can_save(name, payload_path, meta_path)
    if verbose and reason == "missing":
        print(f"zoo: training {label} (cached for next time in {payload_path.parent}).")
    elif verbose:
        print(f"zoo: {label} is {reason}: {meta_path}; training it again.")
    try:
        payload = train_fn(preset, seed)
    except BaseException:
        _remove_if_empty(payload_path.parent)  # made by _check_can_save
        raise
    if not isinstance(payload, dict):
        raise TypeError(f"train_fn for {name!r} must return a dict, got {type(payload).__name__}")
    meta = {
        "kind": "trained",
        "name": name,
        "preset": preset.name,
        "seed": seed,
        "recipe": recipe,
        "config": config,
        "spec": _plain(payload.get("spec")),
        "task": _plain(payload.get("task")),
        "data_source": _plain(payload.get("data_source")),
        "library_version": course_lib.__version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        atomic_torch_save(payload, payload_path)
        meta["sha256"] = _sha256(payload_path)
        atomic_write_json(meta, meta_path)
    except OSError as exc:
        print(f"zoo: trained {label} but could not save it in {payload_path.parent} "
              f"({exc.strerror or exc}); using it without caching.", file=sys.stderr)
    return payload


# --- fetched entries -------------------------------------------------------------------------

def register_fetched(name: str, path: str | os.PathLike, *, spec: dict | None = None,
                     task: str | None = None, source: str | None = None,
                     sha256: str | None = None) -> dict:
    """Record in the zoo that the model ``name`` was fetched to ``path`` (a file, which
    stays where it is), with its architecture ``spec``, ``task`` (default: the spec's
    "task"), ``source`` (where it came from) and ``sha256`` if known. Returns the
    metadata. Registering again replaces the record. Raises :class:`ZooError` if the
    file is missing or the record cannot be written."""
    _check_name(name)
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ZooError(f"cannot register {name} in the zoo: {path} is not a file")
    _migrate_legacy()
    meta_path = cache_dir() / name / f"{FETCHED_STEM}.json"
    problem = writable_folder_problem(meta_path.parent)
    if problem or meta_path.is_dir():
        raise ZooError(f"cannot record {name} in the model zoo: "
                       f"{problem or f'{meta_path} is a folder'}. Set {ENV_VAR} to a "
                       f"writable folder (it is now {cache_dir()})")
    spec = _plain(spec)
    meta = {
        "kind": "fetched",
        "name": name,
        "path": str(path),
        "size": path.stat().st_size,
        "sha256": sha256,
        "spec": spec,
        "task": task if task is not None else (spec or {}).get("task"),
        "source": source,
        "library_version": course_lib.__version__,
        "registered": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_json(meta, meta_path)
    return meta


def fetched_entry(name: str) -> dict | None:
    """The metadata of fetched model ``name`` (``"path"``, ``"spec"``, ``"task"``,
    ``"source"``, ...), or None if it was never registered, its record is unreadable,
    or its file is gone or has changed size since."""
    _check_name(name)
    _migrate_legacy()
    meta_path = cache_dir() / name / f"{FETCHED_STEM}.json"
    found = _recognise(meta_path) if meta_path.is_file() else None
    if not isinstance(found, ZooEntry) or found.problem:
        return None
    try:
        size = Path(found.meta["path"]).stat().st_size
    except OSError:
        return None
    if found.meta.get("size") is not None and size != found.meta["size"]:
        return None  # replaced or damaged since it was fetched: fetch it again
    return found.meta


def fetched_path(name: str) -> Path | None:
    """Where the fetched model ``name`` is, or None (see :func:`fetched_entry`)."""
    meta = fetched_entry(name)
    return None if meta is None else Path(meta["path"])
