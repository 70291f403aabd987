"""The course_lib references behind exercises 1.4-1.6 and 3.5, the EMA's BatchNorm
recalibration and ``train_gan(step_fn=...)`` (issue 12)."""
import copy

import pytest
import torch
from torch import nn

from course_lib import ada, gan_cost, train
from course_lib.compress.profile import count_macs
from course_lib.models import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("case", [(3, 32, 4, 2, 1, 32, False, 0), (128, 64, 4, 2, 1, 4, True, 0),
                                  (256, 128, 3, 2, 1, 64, True, 1), (5, 7, 3, 3, 2, 11, False, 0)])
def test_conv_macs_agrees_with_the_profiler(case):
    in_c, out_c, k, s, p, size, transposed, op = case
    layer = (nn.ConvTranspose2d(in_c, out_c, k, s, p, output_padding=op) if transposed
             else nn.Conv2d(in_c, out_c, k, s, p))
    out = layer(torch.zeros(1, in_c, size, size))
    assert gan_cost.conv_macs(*case) == (count_macs(layer, (1, in_c, size, size)), out.shape[-1])


def test_the_module_docstrings_conv_macs_example_is_what_it_returns():
    # gan_cost's docstring shows exercise 1.5's convention on an example: keep it true.
    line = next(l for l in gan_cost.__doc__.splitlines() if l.strip().startswith("conv_macs("))
    call, _, shown = line.partition("#")
    assert eval(call.strip(), {"conv_macs": gan_cost.conv_macs}) == eval(shown.strip())


def test_conv_macs_refuses_an_empty_output():
    with pytest.raises(ValueError, match="no output"):
        gan_cost.conv_macs(3, 8, 5, 1, 0, 3)


def test_training_macs_counts_forward_and_backward():
    assert gan_cost.training_macs(1, 0, 1, 1) == 3      # G forward + backward
    assert gan_cost.training_macs(0, 1, 1, 1) == 9      # D on reals, fakes, and in G's step
    assert gan_cost.training_macs(10, 2, 4, 5) == (30 + 18) * 20


def test_ada_update_moves_by_a_fixed_step_and_stays_a_probability():
    assert ada.ada_update(0.0, 0.9, 250, ramp_images=1000) == 0.25
    assert ada.ada_update(0.5, 0.61, 250, ramp_images=1000) == ada.ada_update(0.5, 1.0, 250, ramp_images=1000)
    assert ada.ada_update(0.1, -1.0, 250, ramp_images=1000) == 0.0
    assert ada.ada_update(0.9, 1.0, 250, ramp_images=1000) == 1.0
    assert ada.ada_update(0.3, 0.6, 250) == 0.3
    assert ada.ada_schedule([1.0, 1.0, 0.0], 100, ramp_images=1000) == pytest.approx([0.1, 0.2, 0.1])
    with pytest.raises(ValueError, match="finite"):
        ada.ada_update(float("nan"), 0.5, 10)


def test_recalibrated_batchnorm_statistics_are_the_models_own():
    torch.manual_seed(0)
    G = DCGANGenerator(ngf=8)
    z = [torch.randn(32, 128) for _ in range(4)]
    before = copy.deepcopy(G)
    train.recalibrate_batchnorm(G, z)
    bn = G.net[1]
    with torch.no_grad():
        acts = torch.cat([G.net[0](batch[:, :, None, None]) for batch in z])
    assert torch.allclose(bn.running_mean, acts.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not G.training and bn.momentum == before.net[1].momentum
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), before.parameters()))


def test_train_gan_calls_a_step_of_ones_own():
    calls = []

    def my_step(G, D, opt_g, opt_d, real, z):
        calls.append((real.shape, z.shape))
        return train.train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating")

    reals = torch.rand(40, 3, 32, 32) * 2 - 1
    config = train.TrainConfig(steps=3, batch_size=8, ngf=8, ndf=8)
    result = train.train_gan(reals, config, step_fn=my_step, progress=False, device="cpu")
    assert len(calls) == 3 and calls[0] == (torch.Size([8, 3, 32, 32]), torch.Size([8, config.z_dim]))
    assert len(result.history["loss_d"]) >= 1
    # its D logits never reach the trainer: the monitor says acc_train is the snapshot's
    h = result.history
    assert h["acc_train_tallied"] and not any(h["acc_train_tallied"])
    assert h["acc_train"] == h["acc_train_snapshot"]
    with pytest.raises(ValueError, match="without augmentation"):
        train.train_gan(reals, train.TrainConfig(steps=1, batch_size=8, ngf=8, ndf=8, augment="diffaugment"),
                        step_fn=my_step, progress=False, device="cpu")
    assert isinstance(result.D, DCGANDiscriminator)
