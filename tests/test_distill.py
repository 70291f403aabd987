"""Distillation: the pixel, feature and GAN losses, and the hooks on any course generator."""
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.compress.distill import (Distiller, DistillWeights, default_feature_layers,
                                         distill_losses, feature_loss, pixel_loss)
from course_lib.compress.supernet import SuperMobileResnetGenerator, sample_configs
from course_lib.models import DCGANGenerator, MobileResnetGenerator, ResnetGenerator

RESNET_LAYERS = ("model.9", "model.12", "model.15", "model.18")


def test_pixel_loss_is_l1_to_the_teacher():
    s = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    t = torch.tensor([[0.5, 1.0], [1.0, 0.5]])
    assert pixel_loss(s, t).item() == pytest.approx((0.5 + 0 + 2 + 0) / 4)


def test_feature_loss_maps_the_student_side():
    s = [torch.ones(1, 2, 3, 3)]
    t = [torch.full((1, 4, 3, 3), 3.0)]
    double = nn.Conv2d(2, 4, 1, bias=False)
    nn.init.constant_(double.weight, 1.0)           # each output = sum of the 2 inputs = 2
    assert feature_loss(s, t, [double]).item() == pytest.approx(1.0)   # (3 - 2)^2
    with pytest.raises(ValueError, match="one mapper per layer"):
        feature_loss(s, t, [])


def test_distill_losses_weights_and_keys():
    torch.manual_seed(0)
    s, t = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    feats = torch.tensor(2.0)
    logits = torch.tensor([0.0, 2.0])
    losses = distill_losses(s, t, feats, logits)
    assert set(losses) == {"pixel", "feature", "gan", "total"}
    assert losses["gan"].item() == pytest.approx(((0 - 1) ** 2 + (2 - 1) ** 2) / 2)  # LSGAN
    expected = 10 * F.l1_loss(s, t) + 0.01 * 2.0 + 1.0
    assert losses["total"].item() == pytest.approx(expected.item())
    only = distill_losses(s, t, weights=DistillWeights(recon=1.0))
    assert set(only) == {"pixel", "total"} and only["total"] == only["pixel"]
    hinge = distill_losses(s, t, fake_logits=logits, weights=DistillWeights(gan=2.0, gan_kind="hinge"))
    assert hinge["gan"].item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="unknown GAN loss kind"):
        DistillWeights(gan_kind="wgan")


def test_default_layers_are_the_papers_for_every_resnet_generator():
    assert default_feature_layers(ResnetGenerator(ngf=4)) == RESNET_LAYERS
    assert default_feature_layers(MobileResnetGenerator(widths=(2,) * 8)) == RESNET_LAYERS
    assert default_feature_layers(SuperMobileResnetGenerator(ngf=4)) == RESNET_LAYERS
    assert default_feature_layers(ResnetGenerator(ngf=4, n_blocks=6)) == (
        "model.9", "model.11", "model.13", "model.15")
    assert default_feature_layers(DCGANGenerator(ngf=4)) == ("net.2", "net.5", "net.8")


def test_hooks_keep_the_named_layers_outputs():
    torch.manual_seed(0)
    teacher = ResnetGenerator(ngf=4, n_blocks=9)
    student = MobileResnetGenerator(widths=(2,) * 8)
    x = torch.rand(2, 3, 16, 16)
    with Distiller(teacher, student, x[:1]) as d:
        teacher(x)
        trunk_input = teacher.model[:10](x)
        block3 = teacher.model[:13](x)
        torch.testing.assert_close(d.teacher_features["model.9"], trunk_input)
        torch.testing.assert_close(d.teacher_features["model.12"], block3)
        # mappers go from the student's trunk width (4*2) to the teacher's (4*4)
        assert [(m.in_channels, m.out_channels) for m in d.mappers] == [(8, 16)] * 4
    assert all(not m._forward_hooks for m in list(teacher.modules()) + list(student.modules()))


def test_a_distillation_step_trains_student_and_mappers_not_the_teacher():
    torch.manual_seed(0)
    teacher = ResnetGenerator(ngf=4)
    student = MobileResnetGenerator(widths=(2,) * 8)
    d = Distiller(teacher, student, torch.zeros(1, 3, 16, 16))
    assert set(d.state_dict()) == {f"mappers.{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        target = teacher(x)
    fake = student(x)
    losses = distill_losses(fake, target, d.feature_loss(), torch.zeros(2))
    assert losses["feature"] > 0
    losses["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.mappers.parameters())
    assert student.model[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    with pytest.raises(RuntimeError, match="run the teacher and the student"):
        d.feature_loss()                              # the student's features were used up
    d.remove()


def test_distillation_pulls_the_student_towards_the_teacher():
    torch.manual_seed(0)
    teacher = ResnetGenerator(ngf=4, n_blocks=3)
    student = MobileResnetGenerator(widths=(4,) * 8, n_blocks=3)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    d = Distiller(teacher, student, x[:1])
    opt = torch.optim.Adam(list(student.parameters()) + list(d.parameters()), lr=1e-2)
    with torch.no_grad():
        target = teacher(x)                            # its features are kept for every step
    first = None
    for _ in range(40):
        losses = distill_losses(student(x), target, d.feature_loss())
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        first = first if first is not None else losses["pixel"].item()
    assert losses["pixel"].item() < 0.5 * first


def test_a_supernet_student_shares_one_mapper_across_configs():
    torch.manual_seed(0)
    teacher = ResnetGenerator(ngf=8)
    supernet = SuperMobileResnetGenerator(ngf=8)
    d = Distiller(teacher, supernet, torch.zeros(1, 3, 16, 16))
    assert [m.in_channels for m in d.mappers] == [32] * 4           # the supernet's full trunk
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        target = teacher(x)                          # one teacher pass for the whole sandwich
    total = 0
    for config in sample_configs(supernet.space, random.Random(0), "sandwich"):
        out = supernet(x, config)
        total = total + distill_losses(out, target, d.feature_loss())["total"]
    total.backward()
    grad = d.mappers[0].weight.grad                  # [32 teacher, 32 student, 1, 1]
    assert grad[:, :8].abs().sum() > 0               # the smallest config's 4*2 channels trained


def test_dcgan_teacher_and_student():
    torch.manual_seed(0)
    teacher = DCGANGenerator(z_dim=8, ngf=16)
    student = DCGANGenerator(z_dim=8, ngf=4)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    d = Distiller(teacher, student, torch.zeros(2, 8))
    for k, v in student.state_dict().items():          # the probe did not move BN statistics
        assert torch.equal(v, before[k]), k
    assert [(m.in_channels, m.out_channels) for m in d.mappers] == [(16, 64), (8, 32), (4, 16)]
    z = torch.randn(4, 8)
    target = teacher(z)
    loss = distill_losses(student(z), target, d.feature_loss())["total"]
    loss.backward()
    assert d.mappers[2].weight.grad.abs().sum() > 0


def test_bad_layers_say_what_is_wrong():
    teacher, student = ResnetGenerator(ngf=4), MobileResnetGenerator(widths=(2,) * 8)
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="no module named 'model.99'"):
        Distiller(teacher, student, x, layers=["model.99"])
    with pytest.raises(ValueError, match="same spatial size"):
        Distiller(teacher, student, x, layers=["model.9"], student_layers=["model.3"])
    with pytest.raises(ValueError, match="same number"):
        Distiller(teacher, student, x, layers=["model.9"], student_layers=["model.9", "model.12"])
    # a failed construction leaves no hooks behind
    assert all(not m._forward_hooks for m in list(teacher.modules()) + list(student.modules()))
    with pytest.raises(ValueError, match="pass layers"):
        default_feature_layers(nn.Sequential(nn.Conv2d(3, 3, 1)))


# --- the distillation task's init_from: fine-tuning from given weights --------------------------

def _task_inputs(seed=0):
    from course_lib.models.registry import model_spec
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randint(0, 256, (4, 3, 24, 24), generator=g, dtype=torch.uint8) for _ in range(2))
    torch.manual_seed(seed)
    teacher = ResnetGenerator(ngf=4, n_blocks=3)
    t_spec = model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=4, n_blocks=3)
    s_spec = model_spec(MobileResnetGenerator, input_nc=3, output_nc=3, widths=[2] * 8, n_blocks=3)
    return t_spec, teacher.state_dict(), s_spec, a, b


def _student_after_setup(init_from, steps=2):
    """The student's weights right after ``setup`` (before any step), and the run."""
    from course_lib.engine.loop import fit
    from course_lib.tasks.distill import DistillConfig, DistillTask
    t_spec, t_state, s_spec, a, b = _task_inputs()
    seen = {}

    class Spy(DistillTask):
        def setup(self, models, ctx):
            super().setup(models, ctx)
            seen.update({k: v.clone() for k, v in models["student"].state_dict().items()})

    task = Spy(DistillConfig(steps=steps, batch_size=2, image_size=24, ndf=4), t_spec, t_state,
               s_spec, a, b, init_from=init_from)
    try:
        run = fit(task, steps=steps, progress=False)
    finally:
        if task.distiller is not None:
            task.distiller.remove()
    return seen, run


def test_init_from_starts_the_student_exactly_at_the_given_weights():
    torch.manual_seed(123)
    given = MobileResnetGenerator(widths=(2,) * 8, n_blocks=3)
    for p in given.parameters():                  # far from any init_weights draw
        nn.init.constant_(p, 0.37)
    state = given.state_dict()
    seen, run = _student_after_setup(state)
    assert set(seen) == set(state)
    for k, v in state.items():
        assert torch.equal(seen[k], v), f"{k} is not the given weight after setup"
    # ... then training moves it (it is trained, not frozen), and the spec says it was given.
    moved = run.models["student"].state_dict()["model.1.weight"]
    assert not torch.equal(moved, state["model.1.weight"])
    assert run.spec["config"]["init_from"] is True
    # Without init_from: the usual random init, and the config is a plain run's.
    plain, plain_run = _student_after_setup(None)
    assert not torch.equal(plain["model.1.weight"], state["model.1.weight"])
    assert "init_from" not in plain_run.spec["config"]


def test_init_from_of_another_architecture_is_one_line():
    wrong = MobileResnetGenerator(widths=(4,) * 8, n_blocks=3).state_dict()
    with pytest.raises(ValueError, match="the student's init_from weights do not fit its spec") as exc:
        _student_after_setup(wrong)
    assert len(str(exc.value).splitlines()) == 1
