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


# ---- agreement with torchprofile (GAN Compression's own counter) ----------------------------

def _torchprofile_macs(model, input_size):
    import warnings

    from torchprofile import profile_macs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # "No handlers found: aten::pad": padding is free
        return profile_macs(model.eval(), torch.zeros(*input_size))


def test_official_generator_agrees_with_torchprofile_at_256():
    g = ResnetGenerator()                            # ngf 64, 9 blocks: the horse2zebra teacher
    ours, theirs = count_macs(g, (1, 3, 256, 256)), _torchprofile_macs(g, (1, 3, 256, 256))
    assert theirs == pytest.approx(56.8e9, rel=0.005)
    assert ours == pytest.approx(theirs, rel=0.005)


def _course_generators():
    from course_lib.compress.supernet import SuperMobileResnetGenerator, export_subnet
    from course_lib.models import DCGANDiscriminator, DCGANGenerator, MobileResnetGenerator
    torch.manual_seed(0)
    supernet = SuperMobileResnetGenerator(ngf=16)
    configs = [supernet.largest, supernet.smallest, (8, 12, 16, 4, 6, 12, 8, 4)]
    image = (1, 3, 64, 64)
    yield "teacher ngf 16", ResnetGenerator(ngf=16), image
    yield "teacher ngf 24, 6 blocks", ResnetGenerator(ngf=24, n_blocks=6), image
    yield ("mobile student, paper config",
           MobileResnetGenerator(widths=(16, 16, 32, 16, 32, 32, 16, 16)), image)
    for config in configs:
        yield f"supernet at {config}", supernet.with_config(config), image
        yield f"exported {config}", export_subnet(supernet, config), image
    yield "DCGAN G 32px", DCGANGenerator(ngf=32, image_size=32), (1, 128)
    yield "DCGAN G 64px", DCGANGenerator(ngf=32, image_size=64), (1, 128)
    yield "DCGAN D 32px", DCGANDiscriminator(ndf=32, image_size=32), (1, 3, 32, 32)


@pytest.mark.parametrize("name, model, input_size",
                         [pytest.param(*case, id=case[0]) for case in _course_generators()])
def test_count_macs_agrees_with_torchprofile(name, model, input_size):
    ours, theirs = count_macs(model, input_size), _torchprofile_macs(model, input_size)
    assert ours == pytest.approx(theirs, rel=0.005), name


def test_a_narrowed_depthwise_conv_is_counted_at_its_width():
    from course_lib.compress.supernet import SuperDepthwiseConv2d
    dw = SuperDepthwiseConv2d(8, 3)
    assert count_macs(dw, (1, 3, 6, 6)) == 3 * 4 * 4 * 9      # 3 channels, one 3x3 filter each
    assert count_macs(dw, (1, 8, 6, 6)) == 8 * 4 * 4 * 9


# ---- latency --------------------------------------------------------------------------------

class Sleeper(nn.Module):
    """A model whose forward takes at least ``ms`` milliseconds."""

    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms
        self.calls = 0

    def forward(self, x):
        import time
        self.calls += 1
        time.sleep(self.ms / 1000)
        return x


def test_measure_latencies_warms_up_repeats_and_reports_the_spread():
    from course_lib.compress.profile import measure_latencies
    fast, slow = Sleeper(2), Sleeper(12)
    slow.train()
    threads = torch.get_num_threads()
    results = measure_latencies({"fast": fast, "slow": slow}, (1, 3), threads=1, repeats=5, warmup=2)
    assert fast.calls == slow.calls == 2 + 5
    assert slow.training and torch.get_num_threads() == threads      # restored
    for name, ms in (("fast", 2), ("slow", 12)):
        r = results[name]
        assert r.repeats == 5 and r.threads == 1
        assert ms <= r.min_ms <= r.q1_ms <= r.median_ms <= r.q3_ms <= r.max_ms
        assert r.iqr_ms == pytest.approx(r.q3_ms - r.q1_ms)
        assert "ms (IQR" in str(r)
    assert results["slow"].median_ms > results["fast"].median_ms


def test_measure_latency_of_a_real_model_and_bad_arguments():
    from course_lib.compress.profile import measure_latency
    r = measure_latency(nn.Conv2d(3, 8, 3), (1, 3, 32, 32), threads=1, repeats=3, warmup=1)
    assert 0 < r.min_ms <= r.median_ms <= r.max_ms
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(nn.Identity(), (1,), repeats=1)
    with pytest.raises(ValueError, match="threads"):
        measure_latency(nn.Identity(), (1,), threads=0)
    with pytest.raises(ValueError, match="to the CPU"):
        measure_latency(nn.Linear(2, 2).to("meta"), (1, 2))
