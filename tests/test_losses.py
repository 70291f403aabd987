"""GAN losses on logits small enough to evaluate by hand."""
import math

import pytest
import torch

from course_lib.losses import KINDS, d_loss, g_loss

REAL = torch.tensor([0.0, 2.0])
FAKE = torch.tensor([0.0, -1.0])


def sp(v):  # softplus by hand: log(1 + e^v)
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("kind, d_expected, g_expected", [
    ("nonsaturating",
     (sp(-0.0) + sp(-2.0)) / 2 + (sp(0.0) + sp(-1.0)) / 2,
     (sp(-0.0) + sp(1.0)) / 2),
    ("hinge", (1 + 0) / 2 + (1 + 0) / 2, -(0 - 1) / 2),
    ("lsgan", (1 + 1) / 2 + (0 + 1) / 2, (1 + 4) / 2),
])
def test_losses_by_hand(kind, d_expected, g_expected):
    assert d_loss(REAL, FAKE, kind).item() == pytest.approx(d_expected, rel=1e-6)
    assert g_loss(FAKE, kind).item() == pytest.approx(g_expected, rel=1e-6)


def test_default_is_nonsaturating_binary_cross_entropy():
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(REAL, torch.ones(2)) + bce(FAKE, torch.zeros(2))
    assert torch.allclose(d_loss(REAL, FAKE), expected)
    assert torch.allclose(g_loss(FAKE), bce(FAKE, torch.ones(2)))


@pytest.mark.parametrize("kind", KINDS)
def test_losses_are_finite_for_huge_logits_and_point_the_right_way(kind):
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(d_loss(big, big, kind)) and torch.isfinite(g_loss(big, kind))
    fake = torch.zeros(3, requires_grad=True)
    g_loss(fake, kind).backward()
    assert (fake.grad < 0).all()  # G lowers its loss by making D's logits more "real"


def test_unknown_kind():
    with pytest.raises(ValueError, match="wgan.*nonsaturating, hinge, lsgan"):
        d_loss(REAL, FAKE, "wgan")
    with pytest.raises(ValueError, match="nonsaturating"):
        g_loss(FAKE, "bce")


def test_cycle_loss_is_l1_by_hand():
    from course_lib.losses import cycle_loss
    original = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    back = torch.tensor([[0.5, 1.0], [1.0, 0.0]])
    assert cycle_loss(back, original).item() == pytest.approx((0.5 + 0 + 2 + 0.5) / 4)
    # L1, not L2: the squared errors would average to (0.25 + 4 + 0.25) / 4
    assert cycle_loss(back, original).item() != pytest.approx((0.25 + 4 + 0.25) / 4)
    assert cycle_loss(original, original).item() == 0
    with pytest.raises(ValueError, match="one shape"):
        cycle_loss(back, original[:1])
