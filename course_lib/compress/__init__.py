"""Model compression: cost profiling (MACs, params, latency), distillation, a weight-shared
supernet and its search, quantization and pruning."""
from course_lib.compress.distill import Distiller, DistillWeights, distill_losses
from course_lib.compress.profile import count_macs, count_params, measure_latencies, measure_latency
from course_lib.compress.prune import magnitude_prune
from course_lib.compress.quantize import linear_quantize
from course_lib.compress.search import evolutionary_search, exhaustive_search, random_search
from course_lib.compress.supernet import SuperMobileResnetGenerator, export_subnet

__all__ = [
    "DistillWeights",
    "Distiller",
    "SuperMobileResnetGenerator",
    "count_macs",
    "count_params",
    "distill_losses",
    "evolutionary_search",
    "exhaustive_search",
    "export_subnet",
    "linear_quantize",
    "magnitude_prune",
    "measure_latencies",
    "measure_latency",
    "random_search",
]
