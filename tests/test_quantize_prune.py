"""Linear quantization and magnitude pruning on tensors small enough to work out by hand."""
import pytest
import torch

from course_lib.compress.prune import magnitude_prune
from course_lib.compress.quantize import linear_quantize


def test_quantize_per_tensor_by_hand():
    # 3 bits -> levels -3..3; max|w| = 1.5 so the step is 0.5
    w = torch.tensor([-1.5, -0.7, 0.2, 0.3, 1.2])
    assert torch.equal(linear_quantize(w, 3), torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.0]))


def test_quantize_per_channel_by_hand():
    w = torch.tensor([[1.0, 0.4], [-4.0, 2.2]])
    # row 0: step 1/3 -> 0.4 rounds to 1 step; row 1: step 4/3 -> 2.2 rounds to 2 steps
    expected = torch.tensor([[1.0, 1 / 3], [-4.0, 8 / 3]])
    assert torch.allclose(linear_quantize(w, 3, per_channel=True), expected)
    # per tensor the step is 4/3 everywhere: 1 -> 4/3, 0.4 -> 0
    assert torch.allclose(linear_quantize(w, 3), torch.tensor([[4 / 3, 0.0], [-4.0, 8 / 3]]))


def test_quantize_invariants():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    for bits in (2, 4, 8):
        q = linear_quantize(w, bits)
        assert q.shape == w.shape and q.dtype == w.dtype
        assert len(torch.unique(q)) <= 2 ** bits - 1
        step = w.abs().max() / (2 ** (bits - 1) - 1)
        assert (q - w).abs().max() <= step / 2 + 1e-6       # rounding error at most half a step
        assert torch.allclose(linear_quantize(q, bits), q)  # quantizing twice changes nothing
        qc = linear_quantize(w, bits, per_channel=True)
        assert all(len(torch.unique(qc[i])) <= 2 ** bits - 1 for i in range(8))
    assert torch.equal(linear_quantize(torch.zeros(3, 2), 4, per_channel=True), torch.zeros(3, 2))
    assert linear_quantize(torch.tensor([0.0, 0.1, -0.1]), 4)[0] == 0  # zero stays exact


def test_quantize_bad_bits():
    with pytest.raises(ValueError, match="bits"):
        linear_quantize(torch.ones(3), 1)


def test_prune_by_hand():
    w = torch.tensor([3.0, -1.0, 0.5, -2.0, 4.0, 0.1])
    pruned = magnitude_prune(w, 0.5)
    assert torch.equal(pruned, torch.tensor([3.0, 0.0, 0.0, -2.0, 4.0, 0.0]))
    assert torch.equal(w, torch.tensor([3.0, -1.0, 0.5, -2.0, 4.0, 0.1]))  # input untouched


def test_prune_edges_and_ties():
    w = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    pruned = magnitude_prune(w, 0.5)
    assert pruned.shape == (2, 2)
    assert int((pruned == 0).sum()) == 2                  # exactly half, despite the ties
    assert torch.equal(pruned, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert torch.equal(magnitude_prune(w, 0.0), w)
    assert torch.equal(magnitude_prune(w, 1.0), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(w, 1.5)


def test_prune_then_quantize_keeps_zeros():
    torch.manual_seed(1)
    w = torch.randn(100)
    pruned = magnitude_prune(w, 0.7)
    assert int((linear_quantize(pruned, 4) == 0).sum()) >= 70
