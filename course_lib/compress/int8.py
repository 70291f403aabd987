"""Real int8 inference on the CPU for conv generators (DCGAN, CycleGAN, their students).

``quantize_int8(model, calibration)`` returns an ``Int8Generator``: the model with int8
weights and int8 activations, run by PyTorch's quantized CPU kernels (fbgemm through the
"x86" engine). It is smaller (1 byte per weight instead of 4) and faster, and its output
differs a little from the float model's. Nothing here is simulated unless it says so:
``Int8Generator.real`` is False, and ``.backend`` says why, when this PyTorch build has no
x86/fbgemm engine; then the model is ``quantize_model(model, 8, 8)`` (fake-quantized floats)
instead, which has int8's error but neither its speed nor its size.

How (FX graph mode, ``torch.ao.quantization.quantize_fx``):

1. ``int8_friendly(model, example_input)``, a float copy that computes the same function
   (tested to 1e-5) with layers the int8 kernels run well:
   - BatchNorm folded into the conv before it (eval statistics);
   - every ``ConvTranspose2d`` rewritten as ``SubPixelConvTranspose2d``: one ordinary
     ``Conv2d`` computing all s*s output phases, a depth-to-space shuffle and a crop
     (fbgemm's int8 transposed conv was *slower* than fp32 here, its int8 conv is fast),
     or, on a 1x1 input (a DCGAN's first layer), as a ``LatentProjection`` (a Linear);
   - a ReLU that follows moved inside, so that FX fuses it into the int8 conv.
2. ``prepare_fx`` with PyTorch's default x86 qconfig mapping (per-channel symmetric int8
   weights; ``HistogramObserver`` uint8 activations with ``reduce_range``, for CPUs without
   VNNI), except: ``reshape`` in float (else a DCGAN's ``z.reshape`` shares the unobserved
   input's observer and its first layer stays float), ``tanh`` in float (int8 tanh was 5x
   slower), grouped (depthwise) convs in float (fbgemm's int8 depthwise conv was 30x slower
   than float in a mobile-ResNet student), per-tensor weights for a ``LatentProjection``
   and for any ``ConvTranspose2d`` left (grouped or dilated): fbgemm rejects per-channel
   weights there.
3. A few calibration batches through the observed model, then ``convert_fx``. Residual
   additions become ``quantized::add`` by themselves (eager mode needs every block
   rewritten with ``FloatFunctional``). Last, reflection/replication pads, which FX leaves
   in float between a dequantize and a quantize, become ``pad_channels_last`` on the int8
   tensor (``_pad_in_int8``).

Routes compared (``benchmarks/bench_int8_backends.py``; torch 2.14.1, an AMD EPYC with AVX2
and no VNNI, 1 thread, on 2 cores shared with other work, load average 5-9, so relative
figures only; speed-up = fp32 time / int8 time, medians of interleaved runs; ranges over
two runs). With every layer in int8, the int8 convs are 90% of the ResnetGenerator's
time: about 2x faster than fp32 is what fbgemm's int8 convs give on this CPU.

=============================  ==============  ===============  ===========================
route                          DCGAN G ngf 32  ResnetGenerator  notes
                               batch 64        ngf 32, 256x256
=============================  ==============  ===============  ===========================
torch.ao eager mode            0.58-0.65x      1.51-1.63x       needs per-model rewrites
                                                                (stubs, FloatFunctional)
FX graph mode as it comes      0.63x           1.65-1.68x       int8 ConvTranspose2d slow,
                                                                pads run in float
FX + int8_friendly (ours)      2.05-2.33x      1.77-1.92x       all layers int8
PT2E, torchao 0.18.0,          0.96x / 1.44x   1.08x / 1.24x    ConvTranspose2d left in
X86InductorQuantizer +                                          float; 4-8 min compiling;
torch.compile                                                   not in torch 2.14 itself
``onednn`` engine (FX)         16 s a batch    -                no VNNI: reference kernels
=============================  ==============  ===============  ===========================

(PT2E: speed-up over the fp32 model compiled the same way / over eager fp32, from a
first run of the same comparison; its DCGAN output equalled fp32 to 2e-9: nothing in it
was quantized.) ``benchmarks/bench_int8.py``
measures the headline ratios, sizes and output changes of ``quantize_int8`` itself.

``torch.ao.quantization`` warns that it is deprecated (in favour of ``torchao``); we
silence exactly its notices where we call it (``quiet_torch_ao``): the course pins torch
2.14.1, where it works, and the notice says nothing a student can act on.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from course_lib.compress.tracing import forward_with_hooks

# Warnings from torch.ao that say nothing the user can act on (see the module docstring).
_TORCH_AO_NOISE = (
    r"torch\.ao\.quantization is deprecated",
    r"Please use quant_min and quant_max to specify the range for observers",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor",
)


@contextlib.contextmanager
def quiet_torch_ao():
    """Silence torch.ao's deprecation notices (and only those) inside the block."""
    with warnings.catch_warnings():
        for message in _TORCH_AO_NOISE:
            warnings.filterwarnings("ignore", message=message)
        yield


def int8_engine() -> str | None:
    """The quantized CPU engine used for int8 ("x86" or "fbgemm"), or None if absent."""
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm"):
        if engine in engines:
            return engine
    return None


# ---------------------------------------------------------------- exact float rewrites


def _phase_taps(k: int, s: int, p: int) -> tuple[int, int]:
    """(K, P) for one spatial dim of a transposed conv with kernel k, stride s, padding p.

    Output ``o = s*m + a`` of a transposed conv sums ``x[i] * w[t]`` over ``o = s*i - p + t``.
    With ``r = (a + p) mod s`` the taps used are ``t = s*j + r`` (``j = 0, 1, ...``), on the
    inputs ``i = m + (a + p)//s - j``: at most ``K = ceil(k / s)`` consecutive inputs. So
    one ordinary conv with a K-wide kernel computes every phase (one output channel per
    phase), and its output, pixel-shuffled, is the transposed conv's output shifted by
    ``p + s*(P - K + 1)``, where P is the conv's padding.
    """
    K = math.ceil(k / s)
    P = max(0, math.ceil(K - 1 - p / s))
    return K, P


class SubPixelConvTranspose2d(nn.Module):
    """A ``ConvTranspose2d`` (square stride, groups 1, dilation 1) as one Conv2d + a shuffle.

    ``[N, C_in, H, W] -> [N, C_out, H_out, W_out]``, the same numbers as the transposed
    conv it is built from (up to float rounding), with the same MACs as its useful work:

    - ``conv``: ``s*s*C_out`` output channels; channel ``(rh*s + rw)*C_out + c`` holds the
      taps ``t = s*j + r`` of output phase (rh, rw) (see ``_phase_taps``);
    - depth to space (what ``pixel_shuffle`` does, with the channels in that order) and a
      crop of ``offset`` pixels at the top left.

    The shuffle is written as permute/view/narrow on the channels-last layout that the int8
    conv produces, where each output pixel's channels are one contiguous block: 0.2 ms for
    a 64x128x17x17 int8 tensor here, against 7 ms for ``pixel_shuffle`` (a strided copy
    that also leaves the next conv a layout conversion to do).
    ``relu=True`` applies a ReLU right after the conv (it commutes with the shuffle and the
    crop), so that a ReLU following the transposed conv is fused into the int8 conv.
    """

    def __init__(self, convt: nn.ConvTranspose2d, relu: bool = False):
        super().__init__()
        if not (isinstance(convt, nn.ConvTranspose2d) and convt.groups == 1
                and convt.dilation == (1, 1) and convt.stride[0] == convt.stride[1]):
            raise ValueError("SubPixelConvTranspose2d needs a ConvTranspose2d with groups=1, "
                             f"dilation 1 and a square stride, got {convt}")
        (kh, kw), s = convt.kernel_size, convt.stride[0]
        (ph, pw), (oph, opw) = convt.padding, convt.output_padding
        (Kh, Pmin_h), (Kw, Pmin_w) = _phase_taps(kh, s, ph), _phase_taps(kw, s, pw)
        # enough padding that the shuffled output covers the whole transposed-conv output
        Ph = max(Pmin_h, math.ceil((kh + oph - ph - s) / s))
        Pw = max(Pmin_w, math.ceil((kw + opw - pw - s) / s))
        c_in, c_out = convt.in_channels, convt.out_channels
        w = convt.weight.detach()                                   # [C_in, C_out, kh, kw]
        weight = w.new_zeros(s, s, c_out, c_in, Kh, Kw)
        for rh in range(s):
            for e1 in range(Kh):
                t1 = s * (Kh - 1 - e1) + rh                         # kernel row of this tap
                for rw in range(s):
                    for e2 in range(Kw):
                        t2 = s * (Kw - 1 - e2) + rw
                        if t1 < kh and t2 < kw:
                            weight[rh, rw, :, :, e1, e2] = w[:, :, t1, t2].t()
        self.conv = nn.Conv2d(c_in, c_out * s * s, (Kh, Kw), padding=(Ph, Pw),
                              bias=convt.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(weight.reshape(c_out * s * s, c_in, Kh, Kw))
            if convt.bias is not None:   # every output pixel gets the bias once
                self.conv.bias.copy_(convt.bias.detach().repeat(s * s))
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.stride = s
        self.out_channels = c_out
        self.offset = (ph + s * (Ph - Kh + 1), pw + s * (Pw - Kw + 1))
        # H_out = (H - 1)*s + extra, as for the transposed conv
        self.extra = (kh - 2 * ph + oph, kw - 2 * pw + opw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        s, c = self.stride, self.out_channels
        y = self.relu(self.conv(x))                       # [N, s*s*C, U, V]
        if s == 1 and self.offset == (0, 0):              # a plain conv: nothing to shuffle
            return y
        u, v = y.shape[2], y.shape[3]
        # channels-last [N, U, V, s, s, C] -> [N, U, s, V, s, C] = [N, U*s, V*s, C]
        y = y.permute(0, 2, 3, 1).contiguous().view(n, u, v, s, s, c)
        y = y.permute(0, 1, 3, 2, 4, 5).contiguous().view(n, u * s, v * s, c)
        y = torch.narrow(y, 1, self.offset[0], (h - 1) * s + self.extra[0])
        y = torch.narrow(y, 2, self.offset[1], (w - 1) * s + self.extra[1])
        return y.contiguous().permute(0, 3, 1, 2)         # [N, C, H_out, W_out]


class LatentProjection(nn.Module):
    """A ``ConvTranspose2d`` (padding 0, groups 1) applied to a 1x1 input, as a Linear.

    ``[N, C_in, 1, 1] -> [N, C_out, kh, kw]``: on a single input pixel every tap of the
    kernel lands on its own output pixel, so the layer is ``x @ W.reshape(C_in, -1)``
    (a DCGAN's first layer, latent -> 4x4). As a conv the int8 kernel would pad the 1x1
    input to 7x7 and multiply mostly zeros; as a Linear it does only the useful work.
    Only valid for 1x1 inputs: ``int8_friendly`` uses it where the example input showed one.
    """

    def __init__(self, convt: nn.ConvTranspose2d, relu: bool = False):
        super().__init__()
        if not (isinstance(convt, nn.ConvTranspose2d) and convt.groups == 1
                and convt.padding == (0, 0) and convt.output_padding == (0, 0)):
            raise ValueError(f"LatentProjection needs padding 0 and groups 1, got {convt}")
        c_in, c_out = convt.in_channels, convt.out_channels
        kh, kw = convt.kernel_size
        self.linear = nn.Linear(c_in, c_out * kh * kw, bias=convt.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(convt.weight.detach().reshape(c_in, -1).t())
            if convt.bias is not None:
                self.linear.bias.copy_(convt.bias.detach().repeat_interleave(kh * kw))
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.shape = (c_out, kh, kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.linear(torch.flatten(x, 1)))
        return y.view(x.shape[0], *self.shape)


def _input_sizes(model: nn.Module, example_input: torch.Tensor) -> dict:
    """{module: (H, W) of its input} for every ConvTranspose2d, from one forward pass."""
    sizes = {}

    def record(module, inputs):
        sizes[module] = tuple(inputs[0].shape[-2:])

    forward_with_hooks(model, example_input,
                       [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)],
                       pre_hook=record)
    return sizes


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with each BatchNorm2d folded into the conv before it.

    Only a Conv2d/ConvTranspose2d directly followed by a BatchNorm2d in an ``nn.Sequential``
    is folded (the BatchNorm becomes ``nn.Identity``); the output is unchanged up to
    float rounding. Other BatchNorms are left as they are.
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(
                    conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module._modules[second] = nn.Identity()
    return model


def int8_friendly(model: nn.Module, example_input: torch.Tensor | None = None) -> nn.Module:
    """A float copy of ``model`` computing the same outputs with int8-friendly layers.

    BatchNorm folded (``fold_batchnorm``), ConvTranspose2d -> ``SubPixelConvTranspose2d``
    (where it applies; a ``LatentProjection`` where ``example_input`` shows it runs on 1x1
    inputs), a ReLU right after it moved inside (``relu=True``) so that FX fuses it into
    the int8 layer. ``model`` is untouched.
    """
    model = fold_batchnorm(model)
    sizes = _input_sizes(model, example_input) if example_input is not None else {}
    for module in list(model.modules()):
        names = list(module._modules)
        for i, name in enumerate(names):
            child = module._modules[name]
            if not isinstance(child, nn.ConvTranspose2d):
                continue
            # In a Sequential, a ReLU that follows (past a folded BatchNorm) moves inside.
            relu_name = None
            if isinstance(module, nn.Sequential):
                after = [n for n in names[i + 1:] if not isinstance(module._modules[n], nn.Identity)]
                if after and type(module._modules[after[0]]) is nn.ReLU:
                    relu_name = after[0]
            rewrites = [SubPixelConvTranspose2d]
            if sizes.get(child) == (1, 1):
                rewrites.insert(0, LatentProjection)
            for rewrite in rewrites:
                try:
                    module._modules[name] = rewrite(child, relu=relu_name is not None)
                except ValueError:   # does not apply (e.g. grouped: stays a transposed conv)
                    continue
                if relu_name is not None:
                    module._modules[relu_name] = nn.Identity()
                break
    return model


# ---------------------------------------------------------------- int8 conversion


class Int8Generator(nn.Module):
    """A generator converted to int8 (or, where no engine exists, simulated; see ``real``).

    ``forward`` takes and returns float tensors, like the model it came from.
    ``backend``: a one-line description to print next to any figure measured on it.
    """

    def __init__(self, net: nn.Module, real: bool, backend: str):
        super().__init__()
        self.net = net
        self.real = real
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with quiet_torch_ao():
            return self.net(x)


def _qconfig_mapping(engine: str, model: nn.Module):
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

    mapping = get_default_qconfig_mapping(engine)
    per_tensor = QConfig(
        activation=HistogramObserver.with_args(reduce_range=True),
        weight=MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    # fbgemm rejects per-channel weights for a transposed conv: use one scale per tensor
    mapping.set_object_type(nn.ConvTranspose2d, per_tensor)
    # A LatentProjection has one row per (channel, position): per-row scales and zero points
    # (16 bytes each) would cost 8% of a DCGAN's int8 file; one scale suffices.
    for name, module in model.named_modules():
        if isinstance(module, LatentProjection):
            mapping.set_module_name(f"{name}.linear", per_tensor)
    # A reshape right after the input (DCGAN's z -> [N, z, 1, 1]) would otherwise share an
    # observer with the unobserved input, and the first layer would stay in float.
    mapping.set_object_type("reshape", None)
    # int8 tanh was 5x slower than float tanh here; a final tanh runs in float.
    for tanh in (nn.Tanh, torch.tanh, F.tanh):
        mapping.set_object_type(tanh, None)
    # fbgemm's int8 grouped (depthwise) conv took 150 ms a call in GAN Compression's student
    # at 256x256, against 5 ms in float: the whole int8 student ran 5x *slower* than fp32.
    # Depthwise convs stay in float (a dequantize/quantize around each); the pointwise
    # convs, which hold the student's MACs, run in int8.
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            mapping.set_module_name(name, None)
    return mapping


@functools.lru_cache(maxsize=64)
def _pad_index(n: int, before: int, after: int, reflect: bool) -> torch.Tensor:
    """Source positions of a padded axis: reflection (``2 1 | 0 1 2 .. n-1 | n-2``) or
    replication (``0 0 | 0 1 .. n-1 | n-1``)."""
    positions = torch.arange(-before, n + after)
    if reflect:
        positions = positions.abs()
        positions = torch.where(positions > n - 1, 2 * (n - 1) - positions, positions)
    return positions.clamp(0, n - 1)


def pad_channels_last(x: torch.Tensor, padding: tuple[int, int, int, int],
                      reflect: bool = True) -> torch.Tensor:
    """Reflection (or replication) padding of ``[N, C, H, W]`` by row and column gathers.

    padding: (left, right, top, bottom), as ``nn.ReflectionPad2d``. Works on int8 tensors:
    on the channels-last layout that int8 convs produce, each gathered row is a contiguous
    block, so this took 0.1 ms where the int8 ``reflection_pad2d`` took 1 ms (it converts
    to channels-first, and the next conv converts back) for a 1x128x64x64 tensor here.
    Returns a channels-last tensor equal to the padded input.
    """
    left, right, top, bottom = padding
    y = x.permute(0, 2, 3, 1)                                      # [N, H, W, C]
    y = torch.index_select(y, 1, _pad_index(x.shape[2], top, bottom, reflect))
    y = torch.index_select(y, 2, _pad_index(x.shape[3], left, right, reflect))
    return y.permute(0, 3, 1, 2)


_PADS = {nn.ReflectionPad2d: True, nn.ReplicationPad2d: False}   # type -> reflect


def _pad_in_int8(net: torch.fx.GraphModule) -> int:
    """Pad the int8 tensor itself (``pad_channels_last``); returns how many pads changed.

    ``convert_fx`` leaves reflection/replication pads in float (``dequantize -> pad ->
    quantize``), two round trips per residual block. Padding only copies values, so it
    can run on the int8 tensor and keep its scale and zero point.
    """
    modules = dict(net.named_modules())
    rewired = 0
    for node in list(net.graph.nodes):
        pad = modules.get(node.target) if node.op == "call_module" else None
        if type(pad) not in _PADS:
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_method"
                and source.target == "dequantize"):
            continue
        users = list(node.users)
        if not users or any(u.op != "call_function" or u.target is not torch.quantize_per_tensor
                            for u in users):
            continue
        with net.graph.inserting_after(node):
            padded = net.graph.call_function(
                pad_channels_last, (source.args[0], tuple(pad.padding), _PADS[type(pad)]))
        for user in users:
            user.replace_all_uses_with(padded)
        rewired += 1
    net.graph.eliminate_dead_code()
    net.recompile()
    return rewired


def _as_batches(calibration) -> list[torch.Tensor]:
    if torch.is_tensor(calibration):
        calibration = [calibration]
    batches = [torch.as_tensor(b, dtype=torch.float32).cpu() for b in calibration]
    if not batches:
        raise ValueError("calibration is empty: pass a few input batches (e.g. 4 batches of "
                         "latents for a DCGAN generator, or of images for a CycleGAN one)")
    return batches


@torch.no_grad()
def quantize_int8(model: nn.Module, calibration, engine: str | None = None) -> Int8Generator:
    """Convert a float conv generator to real int8 (CPU); the original is not changed.

    model: a float ``nn.Module`` (DCGAN, CycleGAN ResnetGenerator, a student...); a copy of
    it is converted, on the CPU, where the int8 kernels run.
    calibration: a tensor or a list of input tensors (a few batches, e.g. 4 of 16) that the
    activation ranges are measured on; use inputs like the ones the model will see.
    engine: "x86" or "fbgemm"; default: ``int8_engine()``.

    Returns an ``Int8Generator`` in eval mode with ``real=True``; where this PyTorch has no
    x86/fbgemm engine (or no ``torch.ao.quantization``), prints one line saying so and
    returns ``quantize_model(model, 8, 8, "per_channel", calibration)`` with ``real=False``.
    """
    batches = _as_batches(calibration)
    if engine is not None and engine not in ("x86", "fbgemm"):
        raise ValueError(f"engine must be 'x86' or 'fbgemm' (the int8 CPU engines these "
                         f"generators were tested with), got {engine!r}")
    if engine is not None and engine not in torch.backends.quantized.supported_engines:
        raise ValueError(f"this PyTorch has no {engine!r} engine; it has "
                         f"{torch.backends.quantized.supported_engines}: leave engine=None")
    engine = engine or int8_engine()
    missing = None
    if engine is None:
        missing = "no x86/fbgemm quantized engine in this PyTorch build"
    else:
        try:
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        except ImportError:
            missing = "torch.ao.quantization is not available in this PyTorch"
    if missing:
        from course_lib.compress.quantize import quantize_model

        print(f"int8: {missing}; falling back to SIMULATED int8 (fake-quantized floats, "
              "no speed-up, no size reduction).")
        return Int8Generator(quantize_model(model, 8, 8, "per_channel", batches), real=False,
                             backend=f"simulated int8 ({missing})")

    # The engine is global state that the int8 kernels also read when they run.
    torch.backends.quantized.engine = engine
    with quiet_torch_ao():
        # int8_friendly works on a copy; a model on a GPU is copied to the CPU first
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        friendly = int8_friendly(model if on_cpu else copy.deepcopy(model).cpu(), batches[0])
        observed = prepare_fx(friendly, _qconfig_mapping(engine, friendly), (batches[0],))
        for batch in batches:
            observed(batch)
        net = convert_fx(observed)
    _pad_in_int8(net)
    return Int8Generator(net.eval(), real=True,
                         backend=f"int8, PyTorch FX graph mode, {engine} engine")
