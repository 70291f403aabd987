"""Post-training pruning: zeros in the weights (unstructured) or whole channels removed.

- ``magnitude_prune(w, sparsity)``: zero the smallest |w| of one tensor.
- ``magnitude_prune_model(model, sparsity, scope)``: the same for every conv/linear weight
  of a model, each layer to the same sparsity (``scope="layer"``) or with one threshold
  over all of them (``scope="global"``, so layers with many small weights lose more).
  The zeros make the model *compressible* (sparse storage), not faster: dense kernels
  multiply by zero just as fast (``torch.nn.utils.prune`` only masks, for the same reason).
- ``channel_prune(model, ratio, example_input)``: structured pruning that *removes* the
  output channels with the smallest L1 norm, and the matching input channels of the layers
  that read them, so the model is physically smaller and really faster.
- ``prune_then_quantize(...)``: both kinds of compression, pruned weights staying zero.

``channel_prune`` uses Torch-Pruning (``torch-pruning==1.6.1``, Fang et al., CVPR 2023),
whose dependency graph handles both course generators on torch 2.14.1: DCGAN's
ConvTranspose2d + BatchNorm chain, and the CycleGAN ResnetGenerator's residual trunk,
whose channels are shared by every block (``x + f(x)`` couples them), so the trunk is
pruned as one group, the same channels removed from all blocks, the downsampling output
and the upsampling input. Channels are ranked by the L1 norm of everything that belongs to
them (the conv filter producing the channel, a BatchNorm's scale, the next layers'
weights reading it). Layers whose outputs are the image itself (the last conv) are never
pruned, nor the input of the first one (the latent or the image channels).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from course_lib.compress.quantize import METHODS, quantize_model
from course_lib.compress.tracing import forward_with_hooks

# Layers whose weights magnitude pruning zeroes.
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
            nn.ConvTranspose3d, nn.Linear)


def _check_sparsity(sparsity: float) -> float:
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    return float(sparsity)


def magnitude_prune(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``round(sparsity * w.numel())`` entries of ``w`` with the smallest |w|.

    w: any tensor; sparsity in [0, 1]. Exactly that many entries become zero (ties are
    broken by position, first ones first), so the result's sparsity is predictable.
    Returns a new tensor of ``w``'s shape; ``w`` is not modified.
    """
    _check_sparsity(sparsity)
    n_zero = round(sparsity * w.numel())
    order = torch.argsort(w.detach().abs().flatten(), stable=True)
    mask = torch.ones(w.numel(), dtype=w.dtype, device=w.device)
    mask[order[:n_zero]] = 0
    return w * mask.view_as(w)


@torch.no_grad()
def magnitude_prune_model(model: nn.Module, sparsity: float, scope: str = "layer") -> nn.Module:
    """A copy of ``model`` whose conv/linear weights are magnitude-pruned (biases kept).

    scope "layer": every weight tensor gets ``sparsity`` (``magnitude_prune`` on each);
    "global": the ``round(sparsity * total)`` smallest |w| over all those tensors together.
    Returns the copy in eval mode; ``model`` is not changed.
    """
    _check_sparsity(sparsity)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    pruned = copy.deepcopy(model).eval()
    weights = [m.weight for m in pruned.modules() if isinstance(m, PRUNABLE)]
    if scope == "layer":
        for w in weights:
            w.copy_(magnitude_prune(w, sparsity))
        return pruned
    flat = magnitude_prune(torch.cat([w.detach().flatten() for w in weights]), sparsity)
    start = 0
    for w in weights:
        w.copy_(flat[start:start + w.numel()].view_as(w))
        start += w.numel()
    return pruned


def _output_layers(model: nn.Module, example_input: torch.Tensor) -> list[nn.Module]:
    """The conv/linear layer that runs last in a forward pass (its output is the image)."""
    order: list[nn.Module] = []
    forward_with_hooks(model, example_input,
                       [m for m in model.modules() if isinstance(m, PRUNABLE)],
                       hook=lambda module, inputs, output: order.append(module))
    return order[-1:]


def _fit_norm_widths(model: nn.Module, example_input: torch.Tensor) -> None:
    """Set ``num_features`` of parameter-free norms (InstanceNorm, affine=False) to the
    width they now see; Torch-Pruning has no weights there to prune, so it leaves the old
    number, and PyTorch would warn about the mismatch at every call."""
    norms = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

    def fit(module, inputs):
        module.num_features = inputs[0].shape[1]

    forward_with_hooks(model, example_input,
                       [m for m in model.modules() if isinstance(m, norms) and not m.affine],
                       pre_hook=fit)


def channel_prune(model: nn.Module, ratio: float, example_input: torch.Tensor,
                  ignored_layers: list[nn.Module] | None = None) -> nn.Module:
    """A physically smaller copy of ``model``: ``ratio`` of each layer's channels removed.

    model: a conv generator (float, CPU); ratio in [0, 1): the fraction of output channels
    removed from every prunable group (e.g. 0.5 halves every width, the residual trunk
    included, for about 1/4 of the MACs). example_input: one input batch, used to trace
    the layers' dependencies. ignored_layers: layers (of ``model``) never pruned, besides
    the last one. Channels with the smallest L1 norm go. The copy is in eval mode; the
    original is not changed. Its outputs differ from the original's (no fine-tuning).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    try:
        import torch_pruning as tp
    except ImportError as e:
        raise ImportError("channel_prune needs Torch-Pruning: pip install torch-pruning==1.6.1 "
                          "(it is in requirements.txt)") from e
    keep_ids = {id(m) for m in (ignored_layers or [])}
    pruned = copy.deepcopy(model).eval()
    ignored = _output_layers(pruned, example_input)
    ignored += [m for m, orig in zip(pruned.modules(), model.modules()) if id(orig) in keep_ids]
    if ratio > 0:
        pruner = tp.pruner.BasePruner(pruned, example_input,
                                      importance=tp.importance.MagnitudeImportance(p=1),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
        _fit_norm_widths(pruned, example_input)
    return pruned.eval()


@torch.no_grad()
def prune_then_quantize(model: nn.Module, sparsity: float, weight_bits: int | None,
                        method: str = "per_channel", prune: str = "magnitude",
                        act_bits: int | None = None, calibration=None,
                        example_input: torch.Tensor | None = None) -> nn.Module:
    """Prune, then quantize the survivors: a simulated compressed copy of ``model``.

    prune: "magnitude" (``magnitude_prune_model`` per layer, zeros) or "channel"
    (``channel_prune`` with ratio ``sparsity``; needs ``example_input``). Then
    ``quantize_model(weight_bits, act_bits, method, calibration)``. Weights pruned to zero
    stay exactly zero (a k-means codebook would otherwise move them to a centroid), so the
    sparsity survives quantization.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if prune == "magnitude":
        pruned = magnitude_prune_model(model, sparsity)
    elif prune == "channel":
        if example_input is None:
            raise ValueError("prune='channel' needs example_input (one input batch)")
        pruned = channel_prune(model, sparsity, example_input)
    else:
        raise ValueError(f"prune must be 'magnitude' or 'channel', got {prune!r}")
    masks = [m.weight != 0 for m in pruned.modules() if isinstance(m, PRUNABLE)]
    quantized = quantize_model(pruned, weight_bits, act_bits, method, calibration)
    for layer, mask in zip((m for m in quantized.modules() if isinstance(m, PRUNABLE)), masks):
        layer.weight.mul_(mask)
    return quantized
