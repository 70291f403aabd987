"""Where datasets and weights live on disk."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "COURSE_DATA"


def _user_cache() -> Path:
    # XDG_CACHE_HOME is the standard way to move every cache off a small home disk.
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def data_root() -> Path:
    """The folder holding fetched datasets: ``$COURSE_DATA`` if set, else
    ``$XDG_CACHE_HOME/efficient-gans-workbook/data`` (``~/.cache/...`` by default).

    Not created here: reading the path must not touch the disk.
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return _user_cache() / "efficient-gans-workbook" / "data"


def torch_home() -> Path:
    """``$TORCH_HOME`` else ``$XDG_CACHE_HOME/torch`` else ``~/.cache/torch``: the rule
    ``torch.hub`` follows, so files put here are found by torch hub (and pytorch-fid)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    return _user_cache() / "torch"
