"""Writing files so that nothing the user made is lost: write aside, then rename."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; move it onto ``dest`` only on success.

    A crash or an exception half-way leaves ``dest`` as it was (or absent).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_torch_save(obj, dest: str | os.PathLike) -> Path:
    import torch  # here, so that writing text (the grader's results) does not load torch

    with atomic_path(dest) as tmp:
        torch.save(obj, tmp)
    return Path(dest)


def atomic_write_text(text: str, dest: str | os.PathLike) -> Path:
    with atomic_path(dest) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(dest)


def atomic_write_json(obj, dest: str | os.PathLike) -> Path:
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", dest)


def load_checkpoint(path: str | os.PathLike):
    """``torch.load`` with ``weights_only=True``: a checkpoint can hold tensors and plain
    containers, never code. Errors are torch's own; :func:`read_checkpoint` explains them."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, as one line: which file, what is wrong with
    it, and what to do. (A ValueError: the command line prints it without a traceback.)"""


def read_checkpoint(path: str | os.PathLike, advice: str = "delete or replace it"):
    """:func:`load_checkpoint`, with every way the file can be bad turned into one
    :class:`CheckpointError` line that names ``path`` and ends with ``advice``.

    A file that needs code to unpickle is refused, not loaded: this library never loads
    checkpoints with ``weights_only=False``, and never suggests it.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file: {advice}")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: {advice}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror}): {advice}") from None
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes; a copy or a write was cut short): "
                              f"{advice}")
    try:
        return load_checkpoint(path)
    except pickle.UnpicklingError as exc:
        # torch names the class a pickle wants to import ("Unsupported global: GLOBAL
        # posix.system"); other unpickling failures are a file that is no pickle at all.
        if "global" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds Python objects that only code could rebuild, so it is not "
                f"loaded (a file that runs code on loading could do anything); it was not "
                f"written by this library: {advice}") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (damaged, or another kind "
                              f"of file): {advice}") from None
    except Exception as exc:  # noqa: BLE001 - torch's loader fails on junk with anything (KeyError, IndexError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if ("central directory" in first or "zip archive" in first or isinstance(exc, EOFError)
                or _cut_short_zip(path)):
            what = "is truncated or damaged (an incomplete copy or download?)"
        elif isinstance(exc, (RuntimeError, OSError, ValueError)):
            what = f"is not a PyTorch checkpoint that loads ({first[:120]})"
        else:  # the unpickler tripping over junk: its KeyError or IndexError says nothing
            what = "is not a PyTorch checkpoint (damaged, or another kind of file)"
        raise CheckpointError(f"{path} {what}: {advice}") from None


def _cut_short_zip(path: Path) -> bool:
    """True if ``path`` starts like a zip file (torch's format) but is not a whole one: a
    copy or download cut short. (Cut at some lengths, torch fails with a seek error that
    says nothing of the kind.)"""
    try:
        with open(path, "rb") as f:
            starts_like_zip = f.read(4) == b"PK\x03\x04"
        return starts_like_zip and not zipfile.is_zipfile(path)
    except OSError:
        return False


def user_cache_home() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache``: the standard place for per-user caches, and
    the standard way to move them all off a small home disk."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def app_cache_home() -> Path:
    """The workbook's folder in the user cache, ``<user cache>/efficient-gans-workbook``:
    the parent of the default data root (``data``) and model zoo (``zoo``), siblings so
    that clearing one never touches the other."""
    return user_cache_home() / "efficient-gans-workbook"


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True if ``path`` is ``folder`` or lies under it (both resolved, symlinks followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def folder_blocker(folder: str | os.PathLike) -> str | None:
    """None if ``folder`` is a folder or could be made one; otherwise what is in the way,
    e.g. "/x/a is a file, not a folder" (``folder`` itself or a parent). Touches nothing."""
    folder = Path(folder)
    for p in (folder, *folder.parents):  # the first thing that exists on the way up
        if p.is_symlink() and not p.exists():
            return f"{p} is a broken symbolic link"
        if p.exists():
            return None if p.is_dir() else f"{p} is a file, not a folder"
    return None


def writable_folder_problem(folder: str | os.PathLike) -> str | None:
    """None if files can be created in ``folder`` (made, with its parents, if missing);
    otherwise a short phrase saying why not, e.g. "/x/a is a file, not a folder".

    Tried by creating and deleting a hidden file, so it holds for every reason a write can
    fail (permissions, a read-only disk, a file where a folder should be), not just the
    ones a permission check would see. Call it before long work whose result must be saved.
    """
    blocker = folder_blocker(folder)
    if blocker:
        return blocker
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{folder} is not writable ({exc.strerror or exc})"
    return None


def remove_tree(path: str | os.PathLike) -> None:
    """``rm -rf path``, also through folders made read-only inside it; nothing if it is gone.

    Permissions are restored only on folders inside ``path``, never through a symbolic
    link: a link in the tree to a file elsewhere is removed, its target left as it was.
    """
    if not os.path.lexists(path):
        return

    def make_writable_and_retry(function, target, _exc):
        try:
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
            function(target)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)
