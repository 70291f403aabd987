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


def spread_indices(total: int, n: int, seed: int = 4321) -> list[int]:
    """``n`` of ``range(total)`` drawn at random, in increasing order (all if total <= n),
    the same every time. Datasets here are often sorted (e.g. by source photograph), so
    the first n items would all come from a few photographs."""
    if total <= n:
        return list(range(total))
    keep = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    return keep.sort().values.tolist()


def spread_subset(images, n: int, seed: int = 4321) -> torch.Tensor:
    """``n`` images drawn across ``images`` (a tensor [N, 3, H, W] or a dataset whose items
    are images or (image, label) pairs): the monitor's reals, as a tensor."""
    keep = spread_indices(len(images), n, seed)
    if isinstance(images, torch.Tensor):
        return images if len(keep) == len(images) else images[keep]
    items = [images[i] for i in keep]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


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
