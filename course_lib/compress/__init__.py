"""Model compression: cost profiling (MACs, params), quantization, pruning, real int8.

- ``profile``: ``count_macs``, ``count_params``;
- ``quantize``: simulated quantization (``linear_quantize``, ``kmeans_quantize``,
  ``quantize_model``);
- ``int8``: real int8 CPU inference (``quantize_int8``);
- ``prune``: ``magnitude_prune``, ``magnitude_prune_model``, ``channel_prune``,
  ``prune_then_quantize``;
- ``size``: ``size_report``, ``state_dict_bytes``.
"""
from course_lib.compress.int8 import Int8Generator, int8_engine, quantize_int8
from course_lib.compress.profile import count_macs, count_params
from course_lib.compress.prune import (channel_prune, magnitude_prune, magnitude_prune_model,
                                       prune_then_quantize)
from course_lib.compress.quantize import (kmeans_quantize, linear_quantize, quantize_model,
                                          quantize_weight)
from course_lib.compress.size import size_report, state_dict_bytes

__all__ = ["count_macs", "count_params", "linear_quantize", "kmeans_quantize",
           "quantize_weight", "quantize_model", "quantize_int8", "int8_engine",
           "Int8Generator", "magnitude_prune", "magnitude_prune_model", "channel_prune",
           "prune_then_quantize", "size_report", "state_dict_bytes"]
