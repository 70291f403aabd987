"""Model compression: cost profiling, distillation, a weight-shared supernet and its search,
quantization, pruning and real int8 inference.

- ``profile``: ``count_macs``, ``count_params``, ``measure_latency``, ``measure_latencies``;
- ``distill``: ``Distiller``, ``DistillWeights``, ``distill_losses``;
- ``supernet``: ``SuperMobileResnetGenerator``, ``export_subnet``;
- ``search``: ``exhaustive_search``, ``random_search``, ``evolutionary_search``;
- ``quantize``: simulated quantization (``linear_quantize``, ``kmeans_quantize``,
  ``quantize_model``);
- ``int8``: real int8 CPU inference (``quantize_int8``);
- ``prune``: ``magnitude_prune``, ``magnitude_prune_model``, ``channel_prune``,
  ``prune_then_quantize``;
- ``size``: ``size_report``, ``state_dict_bytes``.
"""
from course_lib.compress.distill import Distiller, DistillWeights, distill_losses
from course_lib.compress.int8 import Int8Generator, int8_engine, quantize_int8
from course_lib.compress.profile import count_macs, count_params, measure_latencies, measure_latency
from course_lib.compress.prune import (channel_prune, magnitude_prune, magnitude_prune_model,
                                       prune_then_quantize)
from course_lib.compress.quantize import (kmeans_quantize, linear_quantize, quantize_model,
                                          quantize_weight)
from course_lib.compress.search import evolutionary_search, exhaustive_search, random_search
from course_lib.compress.size import size_report, state_dict_bytes
from course_lib.compress.supernet import SuperMobileResnetGenerator, export_subnet

__all__ = [
    "DistillWeights", "Distiller", "Int8Generator", "SuperMobileResnetGenerator",
    "channel_prune", "count_macs", "count_params", "distill_losses", "evolutionary_search",
    "exhaustive_search", "export_subnet", "int8_engine", "kmeans_quantize", "linear_quantize",
    "magnitude_prune", "magnitude_prune_model", "measure_latencies", "measure_latency",
    "prune_then_quantize", "quantize_int8", "quantize_model", "quantize_weight", "random_search",
    "size_report", "state_dict_bytes",
]
