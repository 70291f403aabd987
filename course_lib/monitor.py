"""Watching the discriminator overfit, measured the way D sees the data.

With little data D memorises its training set: its accuracy on the training reals rises
while on held-out reals (images it never saw) it falls. The gap between the two is the
symptom. StyleGAN2-ADA (Karras et al., 2020) tracks it with two heuristics:

- r_t = E[sign(D(x_train))] over the real batches D trained on, accumulated over the last
  N steps. With acc_train the fraction of those reals called real (logit > 0),
  this module reports r_t = 2 * acc_train - 1, so a logit of exactly 0 (not called real)
  counts as -1, where E[sign] would count it 0 (with float logits it is rare). ADA raises
  its augmentation strength when r_t is above 0.6;
- r_v = (E[D(x_train)] - E[D(x_heldout)]) / (E[D(x_train)] - E[D(G(z))]), on raw logits:
  0 when held-out reals score like training reals, 1 when they score like fakes.

How this module measures, and why. The course's D has BatchNorm. In eval mode BatchNorm
normalises with running statistics averaged over the real *and* fake batches of training,
so an eval-mode D is not the classifier being trained: on a 10%-data class run it called
45% of its training reals real (r_t = -0.11, "ADA would not step in") while in training it
called all of them real (r_t = +1.0). So:

- ``acc_train`` and ``r_t`` are read off the logits D produced on its own training
  batches (augmented, if the strategy augments reals), accumulated since the previous
  evaluation (:class:`SignTally`); nothing is re-measured;
- held-out reals, a snapshot of training reals and fakes go through D in training mode,
  in batches of the training batch size, so BatchNorm uses each batch's statistics as in
  training, and with the strategy's augmentation; D's running statistics (and any other
  buffer) are restored afterwards (:func:`batch_statistics`), so measuring never changes
  the model.

The monitor's reals are drawn at random across each set (:func:`spread_subset`): the
sets here are sorted by source photograph, and their first 256 images would come from
two of the ten.

Convention: a logit > 0 means "D says real".
"""
from __future__ import annotations

import contextlib
from typing import Callable

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


def r_v(train_logits: torch.Tensor, heldout_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """ADA's held-out heuristic (raw logits, 1-D): (E[train] - E[heldout]) / (E[train] - E[fake]).

    About 0 while D scores held-out reals like training reals, about 1 once it scores them
    like fakes (above 1: lower still). NaN if D scores training reals and fakes alike.
    """
    t, h, f = (x.flatten().float().mean().item() for x in (train_logits, heldout_logits, fake_logits))
    return (t - h) / (t - f) if t != f else float("nan")


class SignTally:
    """Counts of D's logits on the real batches it trains on, since the last :meth:`read`.

    ``add`` keeps the counts on the logits' device (no host sync per step); ``read``
    returns ``(acc_train, n)`` (NaN if nothing was added) and starts a new window.
    """

    def __init__(self):
        self.positive = 0.0
        self.total = 0

    def add(self, real_logits: torch.Tensor) -> None:
        real_logits = real_logits.detach().flatten()
        self.positive = self.positive + (real_logits > 0).sum()
        self.total += real_logits.numel()

    def read(self) -> tuple[float, int]:
        n = self.total
        acc = float(self.positive) / n if n else float("nan")
        self.positive, self.total = 0.0, 0
        return acc, n

    def state_dict(self) -> dict:
        return {"positive": float(self.positive), "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.positive, self.total = float(state.get("positive", 0.0)), int(state.get("total", 0))


@contextlib.contextmanager
def batch_statistics(D: nn.Module):
    """D in training mode (BatchNorm normalises with each batch's own statistics, as in a
    training step), its buffers (BatchNorm running statistics, spectral norm's power-
    iteration vectors) restored and its mode reset when the block ends."""
    saved = {name: b.detach().clone() for name, b in D.named_buffers()}
    was_training = D.training
    D.train()
    try:
        yield D
    finally:
        with torch.no_grad():
            for name, b in D.named_buffers():
                b.copy_(saved[name])
        D.train(was_training)


@torch.no_grad()
def logits(D: nn.Module, images: torch.Tensor, batch_size: int = 64,
           transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """D's logits for ``images`` [N, 3, H, W] as D sees them in training -> [N].

    Batches of ``batch_size`` (use the training batch size: BatchNorm normalises each batch
    with its own statistics) through ``transform`` (the augmentation, if the strategy
    applies one) and D in training mode; D's running statistics are left unchanged.
    """
    out = []
    with batch_statistics(D):
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            out.append(D(transform(x) if transform is not None else x).flatten())
    return torch.cat(out)


def evaluate_discriminator(D: nn.Module, train_reals: torch.Tensor, heldout_reals: torch.Tensor | None,
                           fakes: torch.Tensor, *, batch_size: int = 64,
                           train_tally: tuple[float, int] | None = None,
                           real_transform: Callable | None = None,
                           fake_transform: Callable | None = None) -> dict:
    """The monitor's figures for a discriminator, measured as D sees the data in training.

    train_reals, heldout_reals, fakes: [N, 3, H, W]; their logits come from :func:`logits`
    (training-mode BatchNorm, batches of ``batch_size``, running statistics untouched),
    reals through ``real_transform`` and fakes through ``fake_transform`` (the strategy's
    augmentation in the D step). train_tally: ``(acc_train, n)`` accumulated over the
    training batches (:meth:`SignTally.read`); when given (and n > 0) it is ``acc_train``,
    else the snapshot of ``train_reals`` is, and ``acc_train_tallied`` says which: 1.0 for
    the training batches' tally, 0.0 for the snapshot (e.g. a learner's own training step,
    whose logits the trainer never sees).

    Returns plain floats: ``acc_train``, ``acc_heldout``, ``acc_fake``, ``gap`` =
    acc_train - acc_heldout, ``r_t`` = 2 * acc_train - 1, ``acc_train_snapshot`` (the
    training reals measured like the held-out ones) and ``r_v`` (NaN without held-out reals).
    """
    train = logits(D, train_reals, batch_size, real_transform)
    held = logits(D, heldout_reals, batch_size, real_transform) if heldout_reals is not None else None
    fake = logits(D, fakes, batch_size, fake_transform)
    stats = monitor_from_logits(train, held, fake)
    snapshot = stats["acc_train"]
    tallied = train_tally is not None and train_tally[1] > 0
    if tallied:
        stats["acc_train"] = float(train_tally[0])
    stats["acc_train_tallied"] = 1.0 if tallied else 0.0
    stats["gap"] = stats["acc_train"] - stats["acc_heldout"]
    stats["r_t"] = 2 * stats["acc_train"] - 1
    stats["acc_train_snapshot"] = snapshot
    stats["r_v"] = r_v(train, held, fake) if held is not None and held.numel() else float("nan")
    return stats
