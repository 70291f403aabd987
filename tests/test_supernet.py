"""The weight-shared supernet: first-k slicing, config sampling, export to a thin model."""
import json
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.compress.profile import count_macs, count_params
from course_lib.compress.supernet import (SuperConv2d, SuperConvTranspose2d, SuperDepthwiseConv2d,
                                          SuperMobileResnetGenerator, SuperSeparableConv2d,
                                          config_from_str, config_macs, config_to_str,
                                          default_choices, export_subnet, sample_config,
                                          sample_configs)
from course_lib.models import MobileResnetGenerator, ResnetGenerator
from course_lib.models.mobile_resnet import layer_channels
from course_lib.models.norm import with_fast_instance_norms

SIZE = (1, 3, 256, 256)


def test_super_conv_uses_first_out_and_in_channels():
    torch.manual_seed(0)
    conv = SuperConv2d(6, 8, 3, padding=1)
    x = torch.randn(2, 4, 5, 5)                          # 4 of the 6 input channels
    y = conv(x, 3)
    plain = nn.Conv2d(4, 3, 3, padding=1)
    plain.weight.data = conv.weight.data[:3, :4].clone()
    plain.bias.data = conv.bias.data[:3].clone()
    assert y.shape == (2, 3, 5, 5)
    torch.testing.assert_close(y, plain(x), rtol=0, atol=0)
    assert conv(torch.randn(1, 6, 5, 5)).shape == (1, 8, 5, 5)   # no width: all channels


def test_super_transposed_conv_slices_in_then_out():
    torch.manual_seed(0)
    up = SuperConvTranspose2d(6, 8, 3, stride=2, padding=1, output_padding=1)
    assert up.weight.shape == (6, 8, 3, 3)               # [in, out, kh, kw]
    x = torch.randn(1, 4, 5, 5)
    y = up(x, 3)
    plain = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
    plain.weight.data = up.weight.data[:4, :3].clone()
    plain.bias.data = up.bias.data[:3].clone()
    assert y.shape == (1, 3, 10, 10)
    torch.testing.assert_close(y, plain(x), rtol=0, atol=0)
    # The conv's [:out, :in] on this weight would be [:3, :4]: a different tensor.
    assert not torch.equal(up.weight[:3, :4], up.weight[:4, :3].transpose(0, 1))


def test_super_depthwise_and_separable_convs():
    torch.manual_seed(0)
    sep = SuperSeparableConv2d(6, 8, 3)
    x = torch.randn(1, 4, 7, 7)
    y = sep(x, 5)
    depthwise, norm, pointwise = sep
    expected = F.conv2d(x, depthwise.weight[:4], None, groups=4)
    expected = F.conv2d(F.instance_norm(expected), pointwise.weight[:5, :4])
    assert y.shape == (1, 5, 5, 5)
    torch.testing.assert_close(y, expected)
    dw = SuperDepthwiseConv2d(6, 3)
    assert dw(x).shape == (1, 4, 5, 5)


def test_forward_hooks_see_the_width_a_layer_ran_at():
    net = SuperMobileResnetGenerator(ngf=8, n_blocks=3)
    seen = {}
    for name in ("model.1", "model.4", "model.7", "model.10.conv_block.1", "model.13", "model.16"):
        net.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, o.shape[1]))
    config = (4, 6, 2, 8, 4, 4, 2, 8)
    net(torch.zeros(1, 3, 16, 16), config)
    # stem 4, down1 2*6, trunk 4*2, block inner 4*8, up1 2*2, up2 8; slots after 3 blocks.
    assert seen == {"model.1": 4, "model.4": 12, "model.7": 8, "model.10.conv_block.1": 32,
                    "model.13": 4, "model.16": 8}


def test_default_choices_scale_cyclegans():
    assert default_choices(64) == (64, 48, 32, 24, 16)
    assert default_choices(32) == (32, 24, 16, 12, 8)
    assert default_choices(16) == (16, 12, 8, 6, 4)
    net = SuperMobileResnetGenerator(ngf=16)
    assert net.space == ((16, 12, 8, 6, 4),) * 8
    assert net.largest == (16,) * 8 and net.smallest == (4,) * 8
    assert SuperMobileResnetGenerator(ngf=16, choices=[4, 16, 8]).space[0] == (16, 8, 4)


@pytest.mark.parametrize("config", [None, "smallest", (8, 4, 6, 8, 2, 6, 4, 8), (2, 8, 8, 4, 8, 2, 6, 2)])
def test_exported_subnet_computes_what_the_supernet_computes(config):
    torch.manual_seed(1)
    net = SuperMobileResnetGenerator(ngf=8, choices=[8, 6, 4, 2]).eval()
    config = {None: net.largest, "smallest": net.smallest}.get(config, config)
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    student = export_subnet(net, config).eval()
    assert isinstance(student, MobileResnetGenerator) and student.widths == config
    expected = net(x, config)
    # the same arithmetic (the supernet's norms are FastInstanceNorm2d) gives the same numbers
    torch.testing.assert_close(with_fast_instance_norms(student)(x), expected, rtol=0, atol=1e-6)
    # torch's InstanceNorm kernel, in the plain model, differs by rounding only
    torch.testing.assert_close(student(x), expected, rtol=0, atol=1e-5)
    # Physically thinner: exactly the parameters of a fresh model of those widths.
    assert count_params(student) == count_params(MobileResnetGenerator(widths=config))
    assert student.model[7].weight.shape[0] == layer_channels(config)[2]


def test_export_rebuilds_from_json_kwargs_and_state_dict():
    torch.manual_seed(2)
    net = SuperMobileResnetGenerator(ngf=8, n_blocks=4)
    config = (4, 8, 6, 2, 4, 8, 6, 4)
    student = export_subnet(net, config)
    spec = json.loads(json.dumps({"class": type(student).__name__,
                                  "kwargs": {"widths": list(student.widths), "n_blocks": 4}}))
    rebuilt = MobileResnetGenerator(**spec["kwargs"])
    rebuilt.load_state_dict(student.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x, config), rtol=0, atol=1e-5)
    # The supernet itself rebuilds from JSON kwargs too.
    again = SuperMobileResnetGenerator(**json.loads(json.dumps({"ngf": 8, "n_blocks": 4})))
    again.load_state_dict(net.state_dict(), strict=True)


def test_export_copies_and_leaves_the_supernet_alone():
    net = SuperMobileResnetGenerator(ngf=4, n_blocks=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    student = export_subnet(net, (2,) * 8)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.training and student.training


def test_a_step_at_one_config_trains_only_its_slices():
    torch.manual_seed(0)
    net = SuperMobileResnetGenerator(ngf=8, n_blocks=3)
    config = (4, 4, 2, 4, 4, 4, 4, 4)
    net(torch.rand(1, 3, 16, 16), config).mean().backward()
    stem = net.model[1].weight.grad                     # [8, 3, 7, 7], 4 used
    assert stem[:4].abs().sum() > 0 and stem[4:].abs().sum() == 0
    up1 = net.model[13].weight.grad                     # transposed [trunk 32, up1 16], uses [:8, :8]
    assert up1[:8, :8].abs().sum() > 0
    assert up1[8:].abs().sum() == 0 and up1[:, 8:].abs().sum() == 0


def test_config_sampling():
    space = SuperMobileResnetGenerator(ngf=16).space
    rng = random.Random(0)
    draws = [sample_config(space, rng) for _ in range(400)]
    assert all(len(c) == 8 and all(w in s for w, s in zip(c, space)) for c in draws)
    for position in range(8):                            # every width gets drawn everywhere
        assert {c[position] for c in draws} == set(space[position])
    again = random.Random(0)
    assert draws[:5] == [sample_config(space, again) for _ in range(5)]     # seeded: repeatable
    one = sample_configs(space, random.Random(3))
    assert len(one) == 1 and all(w in s for w, s in zip(one[0], space))
    largest, smallest, middle = sample_configs(space, random.Random(3), "sandwich")
    assert largest == (16,) * 8 and smallest == (4,) * 8
    assert middle == one[0]                  # the same draw as a "random" step with that seed
    with pytest.raises(ValueError, match="sandwich"):
        sample_configs(space, rng, "biggest-first")


def test_bad_configs_say_what_is_wrong():
    net = SuperMobileResnetGenerator(ngf=8, n_blocks=3)
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="8 positive ints"):
        net(x, (4, 4, 4))
    with pytest.raises(ValueError, match="above the supernet's ngf=8"):
        net(x, (16, 4, 4, 4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="8 positive ints"):
        export_subnet(net, (4, 4, 4, 0, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="between 1 and ngf"):
        SuperMobileResnetGenerator(ngf=8, choices=[16, 8])


def test_config_strings_read_as_the_papers():
    assert config_to_str((16, 16, 32, 16, 32, 32, 16, 16)) == "16_16_32_16_32_32_16_16"
    assert config_from_str("16_16_32_16_32_32_16_16") == (16, 16, 32, 16, 32, 32, 16, 16)
    with pytest.raises(ValueError, match="joined by '_'"):
        config_from_str("16-16-32")


@pytest.mark.parametrize("size", [(1, 3, 32, 32), (2, 3, 64, 48)])
def test_config_macs_match_the_exported_models(size):
    net = SuperMobileResnetGenerator(ngf=8, n_blocks=4)
    seen = []
    net.model[1].register_forward_hook(lambda *args: seen.append(1))
    macs = config_macs(net, size)
    for config in [net.largest, net.smallest, (8, 2, 6, 4, 8, 2, 4, 6)]:
        assert macs(config) == count_macs(export_subnet(net, config), size)
    assert macs(net.largest) > macs((8, 2, 6, 4, 8, 2, 4, 6)) > macs(net.smallest)
    assert not seen                                   # the supernet's own hooks never fired
    with pytest.raises(ValueError, match="multiples of 4"):
        config_macs(net, (1, 3, 30, 30))


def test_paper_config_and_small_teacher_budgets():
    """At 256x256 the paper's config is ~20x below the ngf-64 teacher, and an ngf-16
    supernet reaches 10x and 20x below an ngf-16 teacher of the official layout."""
    with torch.device("meta"):
        teacher64, teacher16 = ResnetGenerator(ngf=64), ResnetGenerator(ngf=16)
        paper = MobileResnetGenerator(widths=(16, 16, 32, 16, 32, 32, 16, 16))
        small = SuperMobileResnetGenerator(ngf=16)
    assert count_macs(teacher64, SIZE) / count_macs(paper, SIZE) > 20
    assert 0.3e6 < count_params(paper) < 0.4e6            # the paper's student: 0.342M
    macs = config_macs(small, SIZE)
    t16 = count_macs(teacher16, SIZE)
    assert t16 / macs((8, 8, 8, 4, 4, 4, 8, 8)) > 9      # a 10x-ish mid point of the space
    assert t16 / macs(small.smallest) > 20
