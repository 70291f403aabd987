"""An exponential moving average (EMA) of a model's weights: a smoother model to sample.

``ema <- decay * ema + (1 - decay) * model`` after every optimiser step, for parameters;
buffers (BatchNorm statistics) are copied, since averaging them means nothing.
"""
from __future__ import annotations

import torch
from torch import nn


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay to use after ``step`` updates: ramps up as (1 + step) / (10 + step).

    Without the ramp a 0.999 average still holds 37% of the random initial weights after
    1,000 steps (0.999**1000); with it the average only ever spans the recent past.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers are copied."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema_model.buffers(), model.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs) -> nn.Module:
    """Recompute the BatchNorm running statistics of ``model`` for its own weights.

    ``update_ema`` copies the BatchNorm statistics from the trained model, but they were
    measured on *that* model's activations: the averaged weights produce activations of
    another mean and spread, so in eval mode their normalisation is off and the samples
    suffer. Running the EMA model in train mode over a few batches (``inputs``: an iterable
    of input batches, e.g. latents ``[B, z_dim]``) with a cumulative average
    (``momentum=None``) gives it statistics of its own. Returns ``model`` in eval mode;
    each BatchNorm's momentum is restored.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [m.momentum for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for batch in inputs:
            model(batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return model.eval()
