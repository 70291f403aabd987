"""GAN Compression on CycleGAN (notebooks 05-07): the pipeline and its recording.

- ``pipeline``: :func:`compress_cyclegan` (distil -> supernet -> search -> export ->
  fine-tune -> evaluate), also ``python -m course_lib compress-cyclegan``;
- ``record``: the recording the notebooks show, and :func:`compressed_student`, the
  compressed generator later notebooks start from.

Names are imported on first use, so ``python -m course_lib.gancomp.record`` runs the
module without importing it twice.
"""
import importlib

_NAMES = {"REPORT_KEYS": "pipeline", "compress_cyclegan": "pipeline",
          "compressed_student": "record", "notebook_recording": "record",
          "recorded_models": "record"}
__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
