"""Real int8 inference: the exact float rewrites it relies on, the conversion of both course
generators, output tolerance, size, and the labelled fallback where no int8 engine exists.

Output tolerance, on outputs in [-1, 1] (tanh), random weights: mean |int8 - fp32| at most
0.02 for the DCGAN generator and 0.08 for the ResnetGenerator. Why these: activations are
7-bit on CPUs without VNNI (PyTorch's x86 default ``reduce_range``), a step of about 1/127
of each tensor's calibrated range, and the rounding errors of some 10 (DCGAN) to 30
(ResnetGenerator: 9 residual blocks whose InstanceNorms re-amplify small differences)
quantized tensors add up. Measured: about 0.0005 and 0.04. Speed is measured by
``benchmarks/bench_int8.py``, not here (a shared machine makes timing tests flaky).
"""
import warnings

import pytest
import torch
from torch import nn

import course_lib.compress.int8 as int8
from course_lib.compress import quantize_int8, size_report, state_dict_bytes
from course_lib.compress.int8 import (LatentProjection, SubPixelConvTranspose2d, fold_batchnorm,
                                     int8_friendly)
from course_lib.models import DCGANGenerator, ResnetGenerator

needs_engine = pytest.mark.skipif(int8.int8_engine() is None,
                                  reason="this PyTorch build has no x86/fbgemm int8 engine")


@pytest.mark.parametrize("k, s, p, op, size", [
    (4, 2, 1, 0, (5, 6)),    # DCGAN up-block
    (4, 1, 0, 0, (1, 1)),    # DCGAN first layer: 1x1 latent -> 4x4
    (3, 1, 1, 0, (5, 4)),
    (3, 1, 2, 0, (6, 6)),
    (3, 2, 1, 1, (8, 7)),    # CycleGAN upsampling
    (3, 2, 1, 0, (7, 7)),
    (5, 3, 2, 2, (4, 5)),
    (2, 2, 0, 0, (3, 3)),
])
def test_subpixel_conv_equals_transposed_conv(k, s, p, op, size):
    torch.manual_seed(0)
    convt = nn.ConvTranspose2d(6, 5, k, s, p, output_padding=op)
    x = torch.randn(2, 6, *size)
    sub = SubPixelConvTranspose2d(convt)
    assert isinstance(sub.conv, nn.Conv2d)
    assert torch.allclose(sub(x), convt(x), atol=1e-5)
    relu = SubPixelConvTranspose2d(convt, relu=True)
    assert torch.allclose(relu(x), torch.relu(convt(x)), atol=1e-5)


def test_subpixel_refuses_what_it_cannot_express():
    with pytest.raises(ValueError, match="groups"):
        SubPixelConvTranspose2d(nn.ConvTranspose2d(4, 4, 3, 2, groups=2))


def trained_like_dcgan(seed=0, ngf=32):
    torch.manual_seed(seed)
    g = DCGANGenerator(z_dim=128, ngf=ngf, image_size=32)
    g.train()
    with torch.no_grad():
        g(torch.randn(64, 128))        # BatchNorm statistics that are not 0 and 1
    return g.eval()


def test_int8_friendly_is_the_same_function():
    g = trained_like_dcgan()
    z = torch.randn(8, 128)
    friendly = int8_friendly(g)
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d)) for m in friendly.modules())
    assert torch.allclose(friendly(z), g(z), atol=1e-5)
    # with an example input, the first layer (on the 1x1 latent) becomes a Linear
    projected = int8_friendly(g, z)
    assert isinstance(projected.net[0], LatentProjection)
    assert torch.allclose(projected(z), g(z), atol=1e-5)
    assert torch.allclose(fold_batchnorm(g)(z), g(z), atol=1e-5)
    c = ResnetGenerator(ngf=8, n_blocks=2).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(int8_friendly(c)(x), c(x), atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())       # original untouched


def quantized_modules(model):
    return [m for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")
            or type(m).__module__.startswith("torch.ao.nn.intrinsic.quantized")]


@needs_engine
def test_dcgan_int8_is_real_small_and_close():
    g = trained_like_dcgan()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # torch.ao's deprecation notices are silenced
        q = quantize_int8(g, [torch.randn(16, 128) for _ in range(4)])
        z = torch.randn(16, 128)
        with torch.no_grad():
            out, ref = q(z), g(z)
    assert q.real and "FX" in q.backend
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())
    # every conv runs an int8 kernel: no float conv is left
    assert not any(type(m) in (nn.Conv2d, nn.ConvTranspose2d) for m in q.modules())
    layers = [type(m).__name__ for m in quantized_modules(q)
              if type(m).__name__ in ("LinearReLU", "Linear", "ConvReLU2d", "Conv2d")]
    assert layers == ["LinearReLU", "ConvReLU2d", "ConvReLU2d", "Conv2d"]   # ReLUs fused
    assert out.shape == ref.shape and out.dtype == torch.float32
    change = (out - ref).abs().mean()
    assert 0 < change <= 0.02
    assert state_dict_bytes(g) / state_dict_bytes(q) >= 3.5
    assert size_report(q, 8)["params"] >= size_report(g)["params"] - 1000  # BN folded away


@needs_engine
def test_resnet_generator_int8_is_real_and_close():
    torch.manual_seed(0)
    c = ResnetGenerator(ngf=8, n_blocks=3).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    q = quantize_int8(c, [torch.rand(2, 3, 64, 64) * 2 - 1 for _ in range(4)])
    assert q.real
    assert not any(type(m) in (nn.Conv2d, nn.ConvTranspose2d) for m in q.modules())
    code = q.net.code
    assert code.count("quantize_per_tensor(") == 1 and code.count(".dequantize()") == 1  # int8 end to end
    assert code.count("quantized.add") == 3                    # the residual additions
    # every reflection pad runs in int8, except the first: it pads the float input image
    assert code.count("pad_channels_last(") == 2 * 3 + 1
    with torch.no_grad():
        change = (q(x) - c(x)).abs().mean()
    assert 0 < change <= 0.08


def test_fallback_is_simulated_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(int8, "int8_engine", lambda: None)
    g = trained_like_dcgan(ngf=8)
    q = quantize_int8(g, torch.randn(16, 128))
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "SIMULATED" in printed[0]
    assert not q.real and "simulated" in q.backend
    z = torch.randn(4, 128)
    assert 0 < (q(z) - g(z)).abs().mean() < 0.05


def test_bad_calibration_and_engine_say_what_to_do():
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(trained_like_dcgan(ngf=8), [])
    with pytest.raises(ValueError, match="engine"):
        quantize_int8(trained_like_dcgan(ngf=8), torch.randn(4, 128), engine="qnnpack")


@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 0, 1, 3)])
def test_pad_channels_last_equals_torch_padding(padding):
    x = torch.randn(2, 5, 7, 6)
    assert torch.equal(int8.pad_channels_last(x, padding), nn.ReflectionPad2d(padding)(x))
    assert torch.equal(int8.pad_channels_last(x, padding, reflect=False),
                       nn.ReplicationPad2d(padding)(x))


@needs_engine
def test_mobile_student_int8_keeps_depthwise_convs_float():
    """fbgemm's int8 depthwise conv is far slower than float: a mobile-ResNet student's
    depthwise convs stay float, its pointwise (1x1) and other convs run in int8."""
    from course_lib.models import MobileResnetGenerator

    torch.manual_seed(0)
    s = MobileResnetGenerator(widths=(4, 4, 8, 4, 8, 8, 4, 4), n_blocks=3).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    q = quantize_int8(s, [torch.rand(1, 3, 32, 32) * 2 - 1 for _ in range(4)])
    float_convs = [m for m in q.modules() if type(m) is nn.Conv2d]
    assert float_convs and all(m.groups == m.in_channels > 1 for m in float_convs)
    assert len(float_convs) == 2 * 3                              # two per residual block
    assert len([m for m in quantized_modules(q) if "Conv" in type(m).__name__]) >= 2 * 3 + 3
    with torch.no_grad():
        change = (q(x) - s(x)).abs().mean()
    assert 0 < change <= 0.08
