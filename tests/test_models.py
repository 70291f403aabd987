"""DCGAN and CycleGAN models: shapes, ranges, documented sizes, checkpoint loading."""
import pytest
import torch

from course_lib.compress.profile import count_macs, count_params
from course_lib.models import (DCGANDiscriminator, DCGANGenerator, ResnetGenerator,
                               load_cyclegan_generator)

# (network, width, image size) -> (params, MACs per image), as documented in dcgan.py
DCGAN_SIZES = {
    ("G", 32, 32): (427_971, 22_544_384),
    ("G", 64, 32): (1_183_619, 78_643_200),
    ("G", 32, 64): (1_214_915, 115_343_360),
    ("G", 64, 64): (3_806_083, 432_013_312),
    ("D", 32, 32): (167_841, 4_589_568),
    ("D", 64, 32): (663_361, 17_567_744),
    ("D", 32, 64): (694_689, 26_742_784),
    ("D", 64, 64): (2_765_633, 103_817_216),
}


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_shapes_and_ranges(size):
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=16, ngf=8, image_size=size)
    D = DCGANDiscriminator(ndf=8, image_size=size)
    z = torch.randn(5, 16)
    assert z.shape == (5, 16) and G.z_dim == 16
    x = G(z)
    assert x.shape == (5, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x)
    assert logits.shape == (5,)
    # a 4-D latent [N, z_dim, 1, 1] is accepted too
    assert G(z[:, :, None, None]).shape == (5, 3, size, size)


@pytest.mark.parametrize("key", sorted(DCGAN_SIZES))
def test_dcgan_documented_sizes(key):
    net, width, size = key
    params, macs = DCGAN_SIZES[key]
    if net == "G":
        model, shape = DCGANGenerator(ngf=width, image_size=size), (1, 128)
    else:
        model, shape = DCGANDiscriminator(ndf=width, image_size=size), (1, 3, size, size)
    assert count_params(model) == params
    assert count_macs(model, shape) == macs


def test_dcgan_docstring_table_matches():
    import course_lib.models.dcgan as dcgan
    for (net, width, size), (params, macs) in DCGAN_SIZES.items():
        row = f"{net:<12}{width:<7}{size}x{size}"
        line = next(l for l in dcgan.__doc__.splitlines() if l.startswith(row))
        assert f"{params:,}" in line and f"{macs:,}" in line, line


def test_spectral_norm_discriminator():
    D = DCGANDiscriminator(ndf=8, spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert sum("parametrizations" in name for name, _ in D.named_parameters()) == 4
    assert D(torch.zeros(3, 3, 32, 32)).shape == (3,)


def test_bad_image_size():
    with pytest.raises(ValueError, match="32, 64"):
        DCGANGenerator(image_size=48)
    with pytest.raises(ValueError, match="32, 64"):
        DCGANDiscriminator(image_size=128)


# ---------------------------------------------------------------- CycleGAN

def expected_cyclegan_keys(n_blocks=9):
    keys = []
    for i in (1, 4, 7):
        keys += [f"model.{i}.weight", f"model.{i}.bias"]
    for b in range(10, 10 + n_blocks):
        for j in (1, 5):
            keys += [f"model.{b}.conv_block.{j}.weight", f"model.{b}.conv_block.{j}.bias"]
    for i in (19, 22, 26):
        keys += [f"model.{i}.weight", f"model.{i}.bias"]
    return keys


def test_resnet_generator_layout():
    g = ResnetGenerator()
    state = g.state_dict()
    assert list(state) == expected_cyclegan_keys()
    assert len(state) == 48
    assert count_params(g) == 11_378_179
    norms = [m for m in g.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 18 + 2  # stem, 2 down, 2 in each of 9 blocks, 2 up
    assert all(not m.affine and not m.track_running_stats for m in norms)


def test_resnet_generator_forward_small():
    g = ResnetGenerator(ngf=8, n_blocks=2)
    y = g(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1


def save_with_legacy_keys(model, path):
    state = dict(model.state_dict())
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.InstanceNorm2d):   # what pre-0.4 PyTorch saved
            c = m.num_features
            state[f"{name}.running_mean"] = torch.zeros(c)
            state[f"{name}.running_var"] = torch.ones(c)
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    torch.save(state, path)
    return state


def test_load_cyclegan_generator_roundtrip(tmp_path):
    torch.manual_seed(0)
    g = ResnetGenerator()
    path = tmp_path / "horse2zebra.pth"
    saved = save_with_legacy_keys(g, path)
    assert len(saved) > 48  # the legacy keys are really there
    loaded = load_cyclegan_generator(path)
    assert not loaded.training
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_load_cyclegan_generator_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_cyclegan_generator(tmp_path / "nope.pth")

    junk = tmp_path / "junk.pth"
    junk.write_text("<html>404 Not Found</html>")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_cyclegan_generator(junk)

    small = ResnetGenerator(ngf=8, n_blocks=9)
    state = dict(small.state_dict())
    del state["model.26.bias"]
    state["model.99.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError) as err:
        load_cyclegan_generator(bad)
    message = str(err.value)
    assert "missing keys [model.26.bias]" in message
    assert "unexpected keys [model.99.weight]" in message
    assert "wrong shapes" in message and "model.1.weight (8, 3, 7, 7) != (64, 3, 7, 7)" in message

    # the same small state dict loads when the architecture is given
    del state["model.99.weight"]
    state["model.26.bias"] = small.state_dict()["model.26.bias"]
    torch.save(state, bad)
    assert count_params(load_cyclegan_generator(bad, ngf=8)) == count_params(small)


def test_fast_instance_norm_computes_torchs_instance_norm():
    from torch import nn

    from course_lib.models.norm import FastInstanceNorm2d
    torch.manual_seed(0)
    x = torch.randn(3, 5, 9, 7, requires_grad=True)
    ours, theirs = FastInstanceNorm2d(5), nn.InstanceNorm2d(5)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    g = torch.randn(3, 5, 9, 7)
    (grad_ours,) = torch.autograd.grad(ours(x), x, g)
    (grad_theirs,) = torch.autograd.grad(theirs(x), x, g)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-4, atol=1e-5)
    narrow = x[:, :2].detach()                       # any width: the supernet runs it narrower
    torch.testing.assert_close(ours(narrow), nn.functional.instance_norm(narrow))
    assert isinstance(ours, nn.InstanceNorm2d) and not list(ours.state_dict())


def test_with_fast_instance_norms_keeps_outputs_and_state():
    from torch import nn

    from course_lib.models import MobileResnetGenerator
    from course_lib.models.norm import FastInstanceNorm2d, with_fast_instance_norms
    torch.manual_seed(0)
    for model in (ResnetGenerator(ngf=4, n_blocks=3), MobileResnetGenerator(widths=(2,) * 8)):
        fast = with_fast_instance_norms(model)
        norms = [m for m in fast.modules() if isinstance(m, nn.InstanceNorm2d)]
        assert norms and all(type(m) is FastInstanceNorm2d for m in norms)
        assert all(type(m) is not FastInstanceNorm2d for m in model.modules())   # a copy
        assert fast.state_dict().keys() == model.state_dict().keys()
        x = torch.rand(2, 3, 16, 16) * 2 - 1
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
