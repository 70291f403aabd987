"""Which int8 route gives real speed on this CPU? The evidence behind course_lib.compress.int8.

Times, interleaved (median wall and CPU time, fixed threads), for the DCGAN generator
(ngf 32, 32x32, batch 64) and the CycleGAN ResnetGenerator (ngf 32, 1x3x256x256):

- ``fp32``: the float model;
- ``eager``: torch.ao eager mode: QuantStub/DeQuantStub around the model, Conv+BN fused,
  per-tensor weights for ConvTranspose2d (fbgemm rejects per-channel there), and for the
  ResnetGenerator every residual block rewritten by hand to add through ``FloatFunctional``
  (the rewrite this script does is the model-specific work eager mode needs);
- ``fx_plain``: FX graph mode with the x86 qconfig mapping as is (per-tensor ConvTranspose2d);
- ``fx_ours``: ``course_lib.compress.quantize_int8`` (FX + exact int8-friendly rewrites);
- ``pt2e``: only with ``--pt2e`` and the ``torchao`` package installed (it is not a course
  dependency): ``torch.export`` + ``X86InductorQuantizer`` + ``torch.compile``; compiling
  takes minutes, and ``pt2e_fp32_compiled`` is the float model compiled the same way.

    python benchmarks/bench_int8_backends.py [--threads 1] [--repeats 10] [--pt2e]

Writes ``build/benchmarks/int8_backends.json``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform

import torch
from torch import nn

from course_lib.compress import quantize_int8
from course_lib.compress.int8 import quiet_torch_ao
from course_lib.compress.latency import compare_latency
from course_lib.fileio import atomic_write_json
from course_lib.models import DCGANGenerator, ResnetGenerator
from course_lib.models.cyclegan import ResnetBlock


class _EagerBlock(nn.Module):
    """A ResnetBlock whose addition runs on quantized tensors (eager mode needs this)."""

    def __init__(self, block: ResnetBlock):
        super().__init__()
        self.conv_block = block.conv_block
        self.add = torch.ao.nn.quantized.FloatFunctional()

    def forward(self, x):
        return self.add.add(x, self.conv_block(x))


class _Stubbed(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.model = model
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model(self.quant(x)))


def eager_int8(model, calibration):
    from torch.ao.quantization import (QConfig, convert, fuse_modules, get_default_qconfig,
                                       prepare)
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

    model = copy.deepcopy(model).eval()
    if isinstance(model, DCGANGenerator):
        # eager mode sees the reshape inside forward as float: feed [N, z, 1, 1] directly
        groups = [[str(i), str(i + 1)] for i in (0, 3, 6)]
        fuse_modules(model.net, groups, inplace=True)
        body = model.net
    else:
        for i, layer in enumerate(model.model):
            if isinstance(layer, ResnetBlock):
                model.model[i] = _EagerBlock(layer)
        body = model.model
    wrapped = _Stubbed(body)
    wrapped.qconfig = get_default_qconfig("x86")
    per_tensor = QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                         weight=MinMaxObserver.with_args(dtype=torch.qint8,
                                                         qscheme=torch.per_tensor_symmetric))
    for m in wrapped.modules():
        if isinstance(m, nn.ConvTranspose2d):
            m.qconfig = per_tensor
    prepare(wrapped, inplace=True)
    for x in calibration:
        wrapped(_eager_input(model, x))
    convert(wrapped, inplace=True)
    if isinstance(model, DCGANGenerator):
        return lambda z: wrapped(_eager_input(model, z))
    return wrapped


def _eager_input(model, x):
    return x.reshape(x.shape[0], -1, 1, 1) if isinstance(model, DCGANGenerator) else x


def fx_plain_int8(model, calibration):
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    mapping = get_default_qconfig_mapping("x86")
    mapping.set_object_type(nn.ConvTranspose2d, QConfig(
        activation=HistogramObserver.with_args(reduce_range=True),
        weight=MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)))
    observed = prepare_fx(copy.deepcopy(model).eval(), mapping, (calibration[0],))
    for x in calibration:
        observed(x)
    return convert_fx(observed)


def pt2e_int8(model, calibration):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    exported = torch.export.export(copy.deepcopy(model).eval(), (calibration[0],)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    observed = prepare_pt2e(exported, quantizer)
    for x in calibration:
        observed(x)
    return torch.compile(convert_pt2e(observed))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pt2e", action="store_true")
    parser.add_argument("--out", default="build/benchmarks/int8_backends.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "x86"
    rows = []
    cases = [("DCGAN G ngf 32, batch 64", lambda: DCGANGenerator(128, 32, 32),
              lambda: torch.randn(64, 128)),
             ("ResnetGenerator ngf 32, 1x3x256x256", lambda: ResnetGenerator(ngf=32),
              lambda: torch.rand(1, 3, 256, 256) * 2 - 1)]
    for name, make_model, make_input in cases:
        torch.manual_seed(0)
        model = make_model()
        model.train()
        with torch.no_grad():
            model(torch.cat([make_input() for _ in range(2)]))   # BatchNorm statistics
        model.eval()
        calibration = [make_input() for _ in range(4)]
        x = make_input()
        with quiet_torch_ao():
            models = {"fp32": model, "eager": eager_int8(model, calibration),
                      "fx_plain": fx_plain_int8(model, calibration),
                      "fx_ours": quantize_int8(model, calibration)}
            if args.pt2e:
                models["pt2e"] = pt2e_int8(model, calibration)
                models["pt2e_fp32_compiled"] = torch.compile(copy.deepcopy(model))
            with torch.no_grad():
                ref = model(x)
                change = {k: round(float((m(x) - ref).abs().mean()), 5) for k, m in models.items()}
            times = compare_latency(models, x, args.repeats, warmup=2, threads=args.threads)
        row = {"case": name, "load_average": times.pop("load_average")}
        for key, t in times.items():
            row[key] = {**t, "speedup": round(times["fp32"]["ms"] / t["ms"], 3),
                        "speedup_cpu": round(times["fp32"]["cpu_ms"] / t["cpu_ms"], 3),
                        "output_change": change[key]}
        rows.append(row)
        print(name, {k: (v["speedup"], v["speedup_cpu"]) for k, v in row.items()
                     if isinstance(v, dict)}, "load", row["load_average"], flush=True)
    result = {"benchmark": "int8 backends vs fp32", "threads": args.threads,
              "repeats": args.repeats, "cases": rows, "torch": torch.__version__,
              "machine": platform.machine(), "cpu_count": os.cpu_count()}
    atomic_write_json(result, args.out)
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
