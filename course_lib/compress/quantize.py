"""Post-training quantization, simulated: quantize, then de-quantize back to floats.

A b-bit linear quantizer stores integers ``q`` and maps them back to ``(q - z) * scale``:

=============  ===========================  ==================  ==========================
mode           integers q                   zero point z        scale
=============  ===========================  ==================  ==========================
symmetric      ``-q_max .. q_max``,         0                   ``max|w| / q_max``
(b >= 2)       ``q_max = 2**(b-1) - 1``
binary (b=1)   ``-1, +1`` (``sign(w)``,     0                   ``mean|w|`` (the L2-best
symmetric      0 counts as +)                                   scale, as in XNOR-Net)
asymmetric     ``0 .. 2**b - 1``            ``round(-lo/scale)``  ``(hi - lo) / (2**b - 1)``
=============  ===========================  ==================  ==========================

``lo, hi`` are the tensor's (or channel's) minimum and maximum, widened to include 0 so
that zero is always exactly representable (a pruned weight stays zero). Rounding is to
the nearest integer (``torch.round``: halves to even), then clamped to the integer range.
So a tensor takes at most ``2**bits`` distinct values (``2**bits - 1`` when symmetric,
which spends one code to keep the range symmetric), and every value inside the range is
at most half a step (``scale / 2``) from its quantized value.

Beyond ``linear_quantize``: ``kmeans_quantize`` (a learned codebook of ``2**bits``
values, Han et al.'s Deep Compression), ``ActivationQuantizer`` (ranges calibrated on a
few batches) and ``quantize_model`` (a whole generator, weights and activations).
Real int8 kernels are in ``course_lib.compress.int8``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

METHODS = ("per_tensor", "per_channel", "kmeans")
# Layers whose weights are quantized, with the dim of their output channels.
_WEIGHT_LAYERS = {nn.Conv1d: 0, nn.Conv2d: 0, nn.Conv3d: 0, nn.Linear: 0,
                  nn.ConvTranspose1d: 1, nn.ConvTranspose2d: 1, nn.ConvTranspose3d: 1}


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 1 to 16, got {bits!r}")
    return bits


def _ranges(w: torch.Tensor, per_channel: bool, channel_dim: int):
    """(lo, hi) over the whole tensor, or per slice along channel_dim (broadcastable)."""
    w = w.detach()
    if per_channel and w.dim() > 1:
        moved = w.movedim(channel_dim, 0).flatten(1)
        shape = [1] * w.dim()
        shape[channel_dim] = -1
        return moved.amin(dim=1).view(shape), moved.amax(dim=1).view(shape)
    return w.min(), w.max()


def quantization_params(lo, hi, bits: int, symmetric: bool = True):
    """``(scale, zero_point, q_min, q_max)`` of a b-bit quantizer for the range [lo, hi].

    lo, hi: tensors (any broadcastable shape) or floats, lo <= hi. The range is widened to
    include 0. A range of width 0 gets scale 1 so that it quantizes to exact zeros.
    Symmetric 1 bit is refused: its scale depends on the values (``linear_quantize``).
    """
    bits = _check_bits(bits)
    if bits == 1 and symmetric:
        raise ValueError("a symmetric 1-bit quantizer has no range-based scale: use "
                         "linear_quantize(w, 1), which returns sign(w) * mean|w|")
    lo = torch.clamp(torch.as_tensor(lo, dtype=torch.float32), max=0.0)
    hi = torch.clamp(torch.as_tensor(hi, dtype=torch.float32), min=0.0)
    if symmetric:
        q_max = 2 ** (bits - 1) - 1
        q_min = -q_max
        scale = torch.maximum(-lo, hi) / q_max
        zero_point = torch.zeros_like(scale)
    else:
        q_min, q_max = 0, 2 ** bits - 1
        scale = (hi - lo) / q_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.clamp(torch.round(-lo / scale), q_min, q_max)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, zero_point, q_min, q_max


def fake_quantize(x: torch.Tensor, scale, zero_point, q_min: int, q_max: int) -> torch.Tensor:
    """``(clamp(round(x / scale) + z, q_min, q_max) - z) * scale``: the de-quantized x."""
    q = torch.clamp(torch.round(x / scale) + zero_point, q_min, q_max)
    return ((q - zero_point) * scale).to(x.dtype)


def linear_quantize(w: torch.Tensor, bits: int, per_channel: bool = False, *,
                    symmetric: bool = True, channel_dim: int = 0,
                    clip: float | None = None) -> torch.Tensor:
    """Quantize ``w`` to ``bits`` bits and map back to floats (same shape and dtype).

    w: any float tensor. bits: 1..16 (1 is binary: ``sign(w) * mean|w|``, with sign(0) = +1).
    per_channel: one scale per slice along ``channel_dim`` (0 for Conv2d/Linear weights,
    ``[out, in, kh, kw]``; use 1 for a ConvTranspose2d weight, ``[in, out, kh, kw]``).
    symmetric: integers ``-q_max..q_max`` and zero point 0; else ``0..2**bits - 1`` with a
    zero point (see the module docstring). clip: a number > 0 to quantize on the range
    ``[-clip, clip]`` instead of the tensor's own (symmetric, per tensor, bits >= 2): the
    step is ``clip / q_max`` and values beyond are clamped to ``+-clip``, the clipping of
    Mordido et al. (a smaller range, finer steps, the outliers cut).
    Returns a new tensor; ``w`` is not modified.
    """
    bits = _check_bits(bits)
    if not w.is_floating_point():
        raise ValueError(f"linear_quantize needs a float tensor, got {w.dtype}")
    if clip is not None:
        if not symmetric or per_channel or bits < 2 or not float(clip) > 0:
            raise ValueError(f"clip must be a number > 0, with symmetric per-tensor "
                             f"quantization to 2 or more bits; got clip={clip!r}, bits={bits}, "
                             f"symmetric={symmetric}, per_channel={per_channel}")
        return fake_quantize(w, *quantization_params(-float(clip), float(clip), bits))
    if bits == 1 and symmetric:
        if per_channel and w.dim() > 1:
            dims = [d for d in range(w.dim()) if d != channel_dim % w.dim()]
            scale = w.detach().abs().mean(dim=dims, keepdim=True)
        else:
            scale = w.detach().abs().mean()
        return torch.where(w >= 0, scale, -scale).to(w.dtype)
    scale, zero_point, q_min, q_max = quantization_params(*_ranges(w, per_channel, channel_dim),
                                                          bits, symmetric)
    return fake_quantize(w, scale, zero_point, q_min, q_max)


def _kmeans_1d(values: torch.Tensor, k: int, iters: int) -> torch.Tensor:
    """Centroids ``[k']`` (k' <= k, sorted) of 1-D values by Lloyd's algorithm.

    Starts from k evenly spaced values between min and max (linear initialisation, which
    Deep Compression found best: it keeps the rare large weights). Assignment uses the
    midpoints between sorted centroids, so memory stays O(N).
    """
    lo, hi = values.min(), values.max()
    centroids = torch.linspace(float(lo), float(hi), k, dtype=values.dtype)
    if hi == lo:
        return centroids[:1]
    for _ in range(iters):
        idx = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros_like(centroids).index_add_(0, idx, values)
        counts = torch.zeros_like(centroids).index_add_(0, idx, torch.ones_like(values))
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new, _ = torch.sort(new)
        if torch.equal(new, centroids):
            break
        centroids = new
    return centroids


def kmeans_quantize(w: torch.Tensor, bits: int, per_channel: bool = False, *,
                    channel_dim: int = 0, iters: int = 30) -> torch.Tensor:
    """Replace each value of ``w`` by the nearest of ``2**bits`` k-means centroids.

    w: any float tensor; bits: 1..16. The codebook (``2**bits`` floats) is fitted to the
    tensor's values, or to each slice along ``channel_dim`` when ``per_channel``.
    Deterministic. Returns a new tensor of ``w``'s shape and dtype with at most
    ``2**bits`` distinct values (per tensor or per channel).
    """
    bits = _check_bits(bits)
    if not w.is_floating_point():
        raise ValueError(f"kmeans_quantize needs a float tensor, got {w.dtype}")
    flat = w.detach().to(torch.float64)
    if per_channel and w.dim() > 1:
        moved = flat.movedim(channel_dim, 0)
        out = torch.stack([_assign(row, _kmeans_1d(row.flatten(), 2 ** bits, iters))
                           for row in moved]).movedim(0, channel_dim)
    else:
        out = _assign(flat, _kmeans_1d(flat.flatten(), 2 ** bits, iters))
    return out.to(w.dtype)


def _assign(values: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    idx = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
    return centroids[idx]


class ActivationQuantizer:
    """Fake-quantize a layer's input to ``bits`` bits, with a range calibrated on data.

    Used as a forward pre-hook: while ``calibrating`` it records the smallest and largest
    value it sees (over all calibration batches); afterwards it rounds its input to the
    asymmetric b-bit grid on that range (values outside are clamped, as int8 kernels do).
    """

    def __init__(self, bits: int):
        self.bits = _check_bits(bits)
        self.lo = float("inf")
        self.hi = float("-inf")
        self.calibrating = True

    def __call__(self, module, inputs):
        x = inputs[0]
        if self.calibrating:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
            return None
        if self.lo > self.hi:
            raise RuntimeError("ActivationQuantizer was never calibrated: run a few batches "
                               "through the model while calibrating is True")
        params = quantization_params(self.lo, self.hi, self.bits, symmetric=False)
        return (fake_quantize(x, *params),) + tuple(inputs[1:])


def quantize_weight(w: torch.Tensor, bits: int, method: str, channel_dim: int = 0) -> torch.Tensor:
    """One weight tensor by ``method``: "per_tensor" / "per_channel" (symmetric linear) or
    "kmeans" (a per-tensor codebook)."""
    if method == "per_tensor":
        return linear_quantize(w, bits)
    if method == "per_channel":
        return linear_quantize(w, bits, per_channel=True, channel_dim=channel_dim)
    if method == "kmeans":
        return kmeans_quantize(w, bits)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


@torch.no_grad()
def quantize_model(generator: nn.Module, weight_bits: int | None = 8, act_bits: int | None = None,
                   method: str = "per_channel", calibration=None) -> nn.Module:
    """A simulated-quantized copy of ``generator``; the original is not changed.

    weight_bits: 1..16 for the weights of every Conv/ConvTranspose/Linear layer (biases
    stay float, as in int8 kernels, which keep them in 32 bits); None or 32: float weights.
    act_bits: 1..16 to also quantize each such layer's *input* (what an integer kernel
    reads), on ranges calibrated by running ``calibration`` (a tensor or list of input
    batches) through the model; None or 32: float activations.
    method: "per_tensor", "per_channel" or "kmeans" (see ``quantize_weight``).
    Returns the copy in eval mode; its forward takes the same inputs as ``generator``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model = copy.deepcopy(generator).eval()
    layers = [(m, _WEIGHT_LAYERS[type(m)]) for m in model.modules() if type(m) in _WEIGHT_LAYERS]
    if weight_bits is not None and weight_bits != 32:
        for layer, channel_dim in layers:
            layer.weight.copy_(quantize_weight(layer.weight, weight_bits, method, channel_dim))
    if act_bits is None or act_bits == 32:
        return model
    if calibration is None:
        raise ValueError("act_bits needs calibration: pass a few input batches "
                         "(e.g. calibration=[G.sample_z(64) for _ in range(4)])")
    batches = [calibration] if torch.is_tensor(calibration) else list(calibration)
    hooks = [ActivationQuantizer(act_bits) for _ in layers]
    for (layer, _), hook in zip(layers, hooks):
        layer.register_forward_pre_hook(hook)
    for batch in batches:
        model(batch)
    for hook in hooks:
        hook.calibrating = False
    return model
