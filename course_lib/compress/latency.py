"""CPU latency of models compared with each other, fairly on a busy machine.

``compare_latency`` runs the models *interleaved* (A, B, C, A, B, C, ...), so that a
change in the machine's load hits all of them alike, and reports medians, which ignore
the occasional slow run. It reports two clocks: wall time (what a user waits) and the
process's CPU time (what the computation cost; less sensitive to waiting for a core
when other programs share the CPU, but with several threads it sums over them). On a
shared machine quote ratios measured in one run, with the load average
(``os.getloadavg()``), rather than absolute milliseconds.
"""
from __future__ import annotations

import os
import statistics
import time

import torch


@torch.inference_mode()
def compare_latency(models: dict, x: torch.Tensor, repeats: int = 20, warmup: int = 3,
                    threads: int | None = None) -> dict:
    """Median latency of each model on the input ``x``, measured interleaved.

    models: ``{name: callable}`` (e.g. fp32 and int8 versions of one generator).
    x: the input batch. repeats: timed calls per model; warmup: untimed calls first.
    threads: ``torch.set_num_threads`` during the measurement (restored afterwards).
    Returns ``{name: {"ms": median wall ms, "cpu_ms": median process CPU ms}}`` plus
    ``"load_average"``: the 1-minute load average before and after.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    try:
        for _ in range(warmup):
            for model in models.values():
                model(x)
        for _ in range(repeats):
            for name, model in models.items():
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                model(x)
                wall[name].append(time.perf_counter() - start_wall)
                cpu[name].append(time.process_time() - start_cpu)
    finally:
        torch.set_num_threads(previous)
    result = {name: {"ms": round(1000 * statistics.median(wall[name]), 3),
                     "cpu_ms": round(1000 * statistics.median(cpu[name]), 3)}
              for name in models}
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result
