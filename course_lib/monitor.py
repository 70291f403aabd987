"""Watching the discriminator overfit.

With little data D memorises its training set: its accuracy on the training reals rises
while on held-out reals (images it never saw) it falls. The gap between the two is the
symptom; StyleGAN2-ADA's r_t = E[sign(D(x_train))] tracks the same thing without a
held-out set (ADA adapts its augmentation to keep r_t near 0.6).

Convention: a logit > 0 means "D says real".
"""
from __future__ import annotations

import torch
from torch import nn


def monitor_from_logits(train_logits: torch.Tensor, heldout_logits: torch.Tensor | None,
                        fake_logits: torch.Tensor) -> dict:
    """D's accuracies and r_t from its logits (1-D tensors, one logit per image).

    Returns ``acc_train`` (fraction of training reals with logit > 0), ``acc_heldout``
    (the same on held-out reals; NaN without them), ``acc_fake`` (fraction of fakes with
    logit < 0), ``gap`` = acc_train - acc_heldout and ``r_t`` = mean(sign(train logits)).
    All are plain floats.
    """
    train_logits, fake_logits = train_logits.flatten().float(), fake_logits.flatten().float()
    acc_train = (train_logits > 0).float().mean().item()
    acc_fake = (fake_logits < 0).float().mean().item()
    if heldout_logits is None or heldout_logits.numel() == 0:
        acc_heldout = float("nan")
    else:
        acc_heldout = (heldout_logits.flatten() > 0).float().mean().item()
    return {
        "acc_train": acc_train,
        "acc_heldout": acc_heldout,
        "acc_fake": acc_fake,
        "gap": acc_train - acc_heldout,
        "r_t": torch.sign(train_logits).mean().item(),
    }


@torch.no_grad()
def logits(D: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """D's logits for ``images`` [N, 3, H, W], in batches, in eval mode -> [N]."""
    D.eval()
    return torch.cat([D(images[i:i + batch_size]).flatten() for i in range(0, len(images), batch_size)])


def evaluate_discriminator(D: nn.Module, train_reals: torch.Tensor, heldout_reals: torch.Tensor | None,
                           fakes: torch.Tensor) -> dict:
    """:func:`monitor_from_logits` for a discriminator and three image sets.

    Leaves D in eval mode; the caller switches it back if it keeps training.
    """
    held = logits(D, heldout_reals) if heldout_reals is not None else None
    return monitor_from_logits(logits(D, train_reals), held, logits(D, fakes))
