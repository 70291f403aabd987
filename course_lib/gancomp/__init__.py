"""GAN Compression on CycleGAN (notebooks 05-07): the pipeline and its recording.

- ``pipeline``: :func:`compress_cyclegan` (distil -> supernet -> search -> export ->
  evaluate), also ``python -m course_lib compress-cyclegan``;
- ``record``: the recording the notebooks show, and :func:`compressed_student`, the
  compressed generator later notebooks start from.
"""
from course_lib.gancomp.pipeline import REPORT_KEYS, compress_cyclegan
from course_lib.gancomp.record import compressed_student, notebook_recording, recorded_models

__all__ = ["REPORT_KEYS", "compress_cyclegan", "compressed_student", "notebook_recording",
           "recorded_models"]
