"""GAN losses computed from discriminator logits, and CycleGAN's cycle-consistency loss.

``real_logits`` and ``fake_logits`` are D's raw outputs, shape ``[N]`` (any shape works:
every loss is a mean over all entries); a positive logit means "real". Each D loss is
the sum of a term on the reals and a term on the fakes; lower is better for the player.

=============== ========================================== ==========================
kind            D loss                                     G loss
=============== ========================================== ==========================
nonsaturating   softplus(-D(x)) + softplus(D(G(z)))        softplus(-D(G(z)))
hinge           relu(1 - D(x)) + relu(1 + D(G(z)))         -D(G(z))
lsgan           (D(x) - 1)^2 + D(G(z))^2                   (D(G(z)) - 1)^2
=============== ========================================== ==========================

``softplus(-l) = -log(sigmoid(l))``, so the non-saturating pair is the binary
cross-entropy of Goodfellow et al. written without overflow; G maximises log D(G(z))
instead of minimising log(1 - D(G(z))), which saturates when D wins early on.
LSGAN (Mao et al.) uses the 0/1 targets (b = 1 for reals, a = 0 for fakes, c = 1 for G).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("nonsaturating", "hinge", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {', '.join(KINDS)}")


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
           kind: str = "nonsaturating") -> torch.Tensor:
    """The discriminator's loss (a scalar) from its logits on reals and on fakes."""
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return ((real_logits - 1) ** 2).mean() + (fake_logits ** 2).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's loss (a scalar) from D's logits on its fakes."""
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    return ((fake_logits - 1) ** 2).mean()


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """CycleGAN's cycle-consistency loss: the mean absolute difference (L1) between an image
    and its round trip, e.g. ``F(G(a))`` against ``a``; both ``[N, C, H, W]`` in [-1, 1].

    L1 as in the paper: its gradient does not fade as the error shrinks, and it blurs
    less than L2. CycleGAN weights it by 10 in each direction.
    """
    if reconstructed.shape != original.shape:
        raise ValueError(f"cycle_loss compares images of one shape, got {tuple(reconstructed.shape)} "
                         f"and {tuple(original.shape)}")
    return (reconstructed - original).abs().mean()


def cycle_consistency_loss(real_a: torch.Tensor, rec_a: torch.Tensor, real_b: torch.Tensor,
                           rec_b: torch.Tensor, lambda_cycle: float = 10.0) -> torch.Tensor:
    """CycleGAN's cycle term in both directions: ``lambda_cycle * (L1(rec_a, real_a) +
    L1(rec_b, real_b))`` with rec_a = G_B(G_A(a)), rec_b = G_A(G_B(b)) (notebook 07)."""
    return lambda_cycle * (cycle_loss(rec_a, real_a) + cycle_loss(rec_b, real_b))
