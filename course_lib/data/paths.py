"""Where datasets and weights live on disk.

The data root is one of three separate homes: fetched data here, trained models in the
model zoo (``course_lib.zoo.cache_dir()``, a sibling folder ``.../zoo`` by default), run
outputs in ``$COURSE_RESULTS_DIR`` and each run's ``--out``. Clearing one never touches
another. The default data root has not moved since course_lib 0.2.0 (only the zoo
moved out of its parent), so earlier downloads are found where they are.
"""
from __future__ import annotations

import os
from pathlib import Path

from course_lib.fileio import app_cache_home, user_cache_home

DATA_ENV = "COURSE_DATA"


def data_root() -> Path:
    """The folder holding fetched datasets: ``$COURSE_DATA`` if set, else
    ``$XDG_CACHE_HOME/efficient-gans-workbook/data`` (``~/.cache/...`` by default).

    Not created here: reading the path must not touch the disk.
    """
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return app_cache_home() / "data"


def torch_home() -> Path:
    """``$TORCH_HOME`` else ``$XDG_CACHE_HOME/torch`` else ``~/.cache/torch``: the rule
    ``torch.hub`` follows, so files put here are found by torch hub (and pytorch-fid)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    return user_cache_home() / "torch"
