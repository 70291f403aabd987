"""Model compression: cost profiling (MACs, params), quantization and pruning."""
from course_lib.compress.profile import count_macs, count_params
from course_lib.compress.prune import magnitude_prune
from course_lib.compress.quantize import linear_quantize

__all__ = ["count_macs", "count_params", "linear_quantize", "magnitude_prune"]
