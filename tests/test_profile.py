"""MACs and parameter counting, checked on layers whose cost is easy to work out by hand."""
import pytest
import torch
from torch import nn

from course_lib.compress.profile import count_macs, count_params
from course_lib.models import ResnetGenerator


def test_cyclegan_generator_is_56_8_gmacs():
    # The meta device runs shapes only: the full 256x256 count costs no compute.
    g = ResnetGenerator().to("meta")
    macs = count_macs(g, (1, 3, 256, 256))
    assert macs == pytest.approx(56.8e9, rel=0.005)
    assert count_params(g) == 11_378_179  # 11.378M, as in the GAN Compression paper


def test_conv_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)            # out 8x10x10, each sums 3*3*3 products
    assert count_macs(conv, (1, 3, 10, 10)) == 10 * 10 * 8 * 3 * 9
    assert count_macs(conv, (2, 3, 10, 10)) == 2 * 10 * 10 * 8 * 3 * 9  # whole batch
    grouped = nn.Conv2d(4, 8, 3, groups=2)          # out 8x3x3, each sums 2*3*3
    assert count_macs(grouped, (1, 4, 5, 5)) == 8 * 3 * 3 * 2 * 9


def test_transposed_conv_counted_per_output_element():
    # torchprofile's convention: output elements * in_channels * kh*kw.
    up = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)   # 3x3 -> 6x6
    assert count_macs(up, (1, 4, 3, 3)) == 2 * 6 * 6 * 4 * 16


def test_linear_and_ignored_layers():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.BatchNorm1d(7), nn.Linear(7, 2))
    assert count_macs(model, (3, 5)) == 3 * 5 * 7 + 3 * 7 * 2
    assert count_params(model) == (5 * 7 + 7) + (7 + 7) + (7 * 2 + 2)


def test_count_macs_leaves_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.train()
    model[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, (2, 3, 8, 8))
    assert model.training and model[0].training and not model[1].training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k       # BN statistics not updated
    assert all(not m._forward_hooks for m in model.modules())


def test_count_macs_accepts_a_tensor():
    conv = nn.Conv2d(1, 1, 3)
    assert count_macs(conv, torch.zeros(1, 1, 5, 5)) == 9 * 9
