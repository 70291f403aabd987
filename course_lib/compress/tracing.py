"""Watching one forward pass: run a model once with temporary hooks on some layers.

Compression code often needs a fact that only a forward pass shows (which layer runs
last, what size of input a layer gets); the hooks are removed afterwards, even on error.
"""
from __future__ import annotations

import torch
from torch import nn


def forward_with_hooks(model: nn.Module, example_input: torch.Tensor, modules,
                       *, pre_hook=None, hook=None) -> None:
    """``model(example_input)`` once, without gradients, with hooks on ``modules``.

    pre_hook: ``fn(module, inputs)`` called before each of ``modules`` runs (it must
    return None, or it would replace the inputs); hook: ``fn(module, inputs, output)``
    after. Both are removed when this returns.
    """
    handles = []
    for module in modules:
        if pre_hook is not None:
            handles.append(module.register_forward_pre_hook(pre_hook))
        if hook is not None:
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
