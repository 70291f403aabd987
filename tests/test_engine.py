"""The training engine (course_lib.engine): self-describing checkpoints and load_model,
the model registry, a new task plugging into the loop unchanged, devices, logging without a
per-step host sync, freezing, EMA, and the CycleGAN task's pieces."""
import copy
import json

import pytest
import torch
from PIL import Image
from torch import nn

from course_lib import cli

from course_lib.engine import (StepContext, Task, fit, load_model, load_models, model_spec,
                               read_spec, register_model, resolve_device, resolve_precision)
from course_lib.fileio import CheckpointError
from course_lib.models import DCGANGenerator
from course_lib.tasks.cyclegan import (CycleGANConfig, ImagePool, lr_factor, train_cyclegan,
                                       translate)
from course_lib.train import TrainConfig, TrainResult, fixed_latents, train_gan


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(n=16, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def uint8_images(n=6, size=32, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def tiny_dcgan(**changes):
    base = dict(steps=4, batch_size=4, ngf=4, ndf=4, z_dim=8, ema=0.9, seed=1, augment="diffaugment")
    return TrainConfig(**{**base, **changes})


def tiny_cyclegan(**changes):
    base = dict(steps=4, batch_size=2, image_size=32, ngf=4, ndf=4, n_blocks=1, pool_size=3, seed=2)
    return CycleGANConfig(**{**base, **changes})


# --- load_model: any model from its file alone ------------------------------------------------

def test_load_model_rebuilds_every_dcgan_role_from_the_checkpoint(tmp_path):
    result = train_gan(images(), tiny_dcgan(), out_dir=tmp_path, progress=False)
    z = fixed_latents(5, 8)
    path = tmp_path / "checkpoint.pt"
    assert torch.equal(load_model(path)(z), result.G_ema.eval()(z))        # the sampling role
    models = load_models(path)
    assert set(models) == {"G", "D", "G_ema"}
    assert torch.equal(models["G"](z), result.G.eval()(z))
    x = images(3)
    assert torch.equal(models["D"](x), result.D.eval()(x))
    spec = read_spec(path)
    assert spec["task"] == "dcgan" and spec["models"]["G"]["kwargs"]["ngf"] == 4
    assert spec["config"]["augment"] == "diffaugment"


def test_load_model_works_on_a_zoo_payload(tmp_path):
    result = train_gan(images(), tiny_dcgan(ema=None), progress=False)
    path = tmp_path / "entry.pt"
    torch.save(result.to_payload(), path)
    z = fixed_latents(4, 8)
    assert torch.equal(load_model(path)(z), result.G.eval()(z))            # no EMA: G samples
    again = TrainResult.from_payload(torch.load(path, weights_only=True))
    assert torch.equal(again.sample(4), result.sample(4))


def test_load_model_rebuilds_the_cyclegan_generators_and_discriminators(tmp_path):
    a, b = uint8_images(seed=1), uint8_images(seed=2)
    result = train_cyclegan(a, b, tiny_cyclegan(), out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    x = images(2)
    G = load_model(path)
    assert type(G).__name__ == "ResnetGenerator" and torch.equal(G(x), result.G_A(x))
    assert torch.equal(load_model(path, "G_B")(x), result.G_B(x))
    assert torch.equal(load_model(path, "D_A")(x), result.models["D_A"](x))
    assert read_spec(path)["models"]["D_B"]["class"] == "NLayerDiscriminator"
    with pytest.raises(CheckpointError, match="holds no model 'G_ema'"):
        load_model(path, "G_ema")


def test_load_model_refuses_files_without_a_spec_in_one_line(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(DCGANGenerator(ngf=2).state_dict(), plain)
    with pytest.raises(CheckpointError, match="carries no architecture spec.*load_cyclegan_generator"):
        load_model(plain)
    foreign = tmp_path / "foreign.pt"
    torch.save({"spec": {"models": {"G": {"class": "system", "module": "os", "kwargs": {}}},
                         "sample_role": "G"}, "models": {"G": {}}}, foreign)
    with pytest.raises(CheckpointError, match="unknown model class 'system'"):
        load_model(foreign)


# --- a new kind of model is a task (the loop does not change) ------------------------------------

@register_model
class TinyStudent(nn.Module):
    """A stand-in for a distilled student: z [N, z_dim] -> images [N, 3, 32, 32]."""

    def __init__(self, z_dim: int = 8, width: int = 4):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(z_dim, width * 16), nn.ReLU(),
                                 nn.Linear(width * 16, 3 * 32 * 32), nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, 3, 32, 32)


class DistillTask(Task):
    """Pixel distillation: the student matches a frozen teacher's images for the same z."""

    name = "distill-test"
    rng_streams = ("z",)
    sample_role = "student"

    def __init__(self, teacher: nn.Module, steps: int):
        self.teacher, self.steps, self.seed = teacher, steps, 0

    def config(self):
        return {"steps": self.steps, "lr": 1e-2}

    def model_specs(self):
        return {"teacher": model_spec(DCGANGenerator, z_dim=8, ngf=4, image_size=32),
                "student": model_spec(TinyStudent, z_dim=8, width=4)}

    def setup(self, models, ctx):
        models["teacher"].load_state_dict(self.teacher.state_dict())
        models["teacher"].eval().requires_grad_(False)

    def optimizers(self, models):
        return {"student": torch.optim.Adam(models["student"].parameters(), lr=1e-2)}

    def batch(self, ctx):
        return torch.randn(8, 8, generator=ctx.rng["z"])

    def train_step(self, z, models, optimizers, ctx):
        with torch.no_grad():
            target = models["teacher"](z)
        with ctx.autocast():
            loss = (models["student"](z) - target).abs().mean()
        ctx.update(loss, optimizers["student"])
        return {"loss_pixel": loss.detach()}


def test_a_distillation_task_plugs_into_the_loop_and_its_checkpoint_rebuilds(tmp_path):
    torch.manual_seed(0)
    teacher = DCGANGenerator(z_dim=8, ngf=4).eval()
    run = fit(DistillTask(teacher, 30), steps=30, out_dir=tmp_path, progress=False, log_every=7)
    losses = run.history["loss_pixel"]
    assert len(losses) == 30 and losses[-1] < 0.7 * losses[0]
    student = load_model(tmp_path / "checkpoint.pt")
    assert isinstance(student, TinyStudent)
    z = torch.randn(3, 8)
    assert torch.equal(student(z), run.models["student"](z))
    assert torch.equal(load_model(tmp_path / "checkpoint.pt", "teacher")(z), teacher(z))


# --- devices -------------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_picks_the_cpu_here_and_says_so(capsys):
    device, why = resolve_device("auto")
    assert device.type in ("cpu", "mps") and "auto" in why
    train_gan(images(), tiny_dcgan(steps=1), progress=True)
    assert "device: cpu (auto: no CUDA or MPS on this machine); precision fp32" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        resolve_device("cuda")


def test_mixed_precision_is_for_cuda_only():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).dtype is None
    for name in ("bf16", "fp16"):
        with pytest.raises(ValueError, match="CUDA"):
            resolve_precision(name, cpu)


# --- logging without a host sync per step ----------------------------------------------------------

def test_scalars_are_fetched_every_log_every_steps_not_every_step(monkeypatch):
    import sys

    calls = {"item": 0}
    real_item = torch.Tensor.item

    def counting_item(self):   # counts the course's own calls (not the optimiser's internals)
        if sys._getframe(1).f_globals.get("__name__", "").startswith("course_lib"):
            calls["item"] += 1
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    counts, histories = [], []
    for steps, log_every in ((10, 5), (40, 5), (40, 1)):
        calls["item"] = 0
        r = train_gan(images(), tiny_dcgan(steps=steps, augment="none"), progress=False,
                      log_every=log_every)
        counts.append(calls["item"])
        histories.append(r.history)
    # .item() only in the final evaluation: the same number however long the run is
    assert counts[0] == counts[1] == counts[2]
    # and what is logged does not depend on how often it is fetched
    assert histories[1]["loss_d"] == histories[2]["loss_d"] and len(histories[1]["loss_d"]) == 40
    assert histories[1]["step"] == list(range(1, 41))


# --- freezing --------------------------------------------------------------------------------------

def test_frozen_turns_gradients_off_and_restores_each_flag():
    D = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    D[0].weight.requires_grad_(False)                      # e.g. FreezeD's frozen layer
    ctx = StepContext(torch.device("cpu"), resolve_precision("fp32", torch.device("cpu")),
                      None, {}, torch.amp.GradScaler("cpu", enabled=False))
    before = [p.requires_grad for p in D.parameters()]
    x = torch.randn(2, 3, requires_grad=True)
    with ctx.frozen(D) as fixed:
        assert fixed is D and not any(p.requires_grad for p in D.parameters())
        fixed(x).sum().backward()
    assert all(p.grad is None for p in D.parameters()) and x.grad is not None
    assert [p.requires_grad for p in D.parameters()] == before


def test_the_dcgan_task_freezes_d_during_the_g_step(monkeypatch):
    from course_lib.tasks import dcgan

    seen = []
    real = dcgan.generator_loss

    def spy(D, fake, *args, **kwargs):
        seen.append(not any(p.requires_grad for p in D.parameters()))
        return real(D, fake, *args, **kwargs)

    monkeypatch.setattr(dcgan, "generator_loss", spy)
    result = train_gan(images(), tiny_dcgan(steps=2, ema=None), progress=False)
    assert seen == [True, True]                                   # frozen in each G step
    assert all(p.requires_grad for p in result.D.parameters())    # and trainable again after


# --- the CycleGAN task's pieces ---------------------------------------------------------------------

def test_the_learning_rate_is_constant_then_decays_linearly():
    factors = [lr_factor(s, 10, 0.5) for s in range(10)]
    assert factors[:5] == [1.0] * 5                      # the first half of the steps
    assert factors[5:] == pytest.approx([1 - k / 6 for k in range(1, 6)])   # the authors' policy
    assert factors[-1] == pytest.approx(1 / 6)           # 1/(n + 1) at the last of n = 5 steps
    assert all(a > b for a, b in zip(factors[4:], factors[5:]))


def test_the_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)               # filling: the images themselves
    later = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(later)
    older = (out != later).sum().item()
    assert 70 < older < 130                                    # about half come from the pool
    assert set(out.flatten().tolist()) <= set(range(3)) | set(range(100, 300))
    assert len(pool.images) == 3
    again = ImagePool(3, torch.Generator().manual_seed(0))
    again.query(first)
    assert torch.equal(again.query(later), out)                # a seed reproduces the draws


def test_cyclegan_resumes_exactly_pool_and_all(tmp_path):
    a, b = uint8_images(seed=3), uint8_images(seed=4)
    config = tiny_cyclegan(steps=6, checkpoint_every=3)
    whole = train_cyclegan(a, b, config, progress=False)
    train_cyclegan(a, b, config, out_dir=tmp_path, progress=False, stop_after=3)
    resumed = train_cyclegan(a, b, config, out_dir=tmp_path, progress=False)
    for role in whole.models:
        for (k, x), y in zip(whole.models[role].state_dict().items(),
                             resumed.models[role].state_dict().values()):
            assert torch.allclose(x, y, atol=1e-6), f"{role}.{k}"
    assert resumed.history["loss_g_a"] == pytest.approx(whole.history["loss_g_a"], abs=1e-6)


def test_cyclegan_learns_a_colour_mapping():
    """Domain A: dark images; domain B: the same pictures, bright. After a short run G_A
    brightens A (its outputs move towards B's mean) and G_B darkens B."""
    base = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    a = (base * 0.4 * 255).to(torch.uint8)                  # values 0..0.4 -> dark
    b = ((0.6 + base * 0.4) * 255).to(torch.uint8)          # 0.6..1 -> bright
    config = tiny_cyclegan(steps=120, ngf=8, ndf=8, batch_size=4, lr=1e-3)
    result = train_cyclegan(a, b, config, progress=False)
    to_b = translate(result.G_A, a[:8]).mean().item()
    to_a = translate(result.G_B, b[:8]).mean().item()
    mean_a, mean_b = (a[:8].float() / 127.5 - 1).mean().item(), (b[:8].float() / 127.5 - 1).mean().item()
    assert to_b > mean_a + 0.5 * (mean_b - mean_a), (mean_a, to_b, mean_b)
    assert to_a < mean_b - 0.5 * (mean_b - mean_a), (mean_b, to_a, mean_a)


def test_a_run_spec_change_is_refused_but_more_steps_resume(tmp_path):
    data = images()
    train_gan(data, tiny_dcgan(steps=2), out_dir=tmp_path, progress=False)
    longer = train_gan(data, tiny_dcgan(steps=4), out_dir=tmp_path, progress=False)
    assert longer.history["step"] == [1, 2, 3, 4]
    whole = train_gan(data, tiny_dcgan(steps=4), progress=False)
    for x, y in zip(whole.G.state_dict().values(), longer.G.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6)
    with pytest.raises(CheckpointError, match=r"another architecture \(G\.kwargs\.ngf 4 there, 8 here"):
        train_gan(data, tiny_dcgan(steps=4, ngf=8), out_dir=tmp_path, progress=False)


def test_registry_refuses_two_classes_of_one_name():
    class TinyStudent(nn.Module):  # noqa: F811 -- the clash is the point
        pass

    TinyStudent.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="two model classes are called 'TinyStudent'"):
        register_model(TinyStudent)
    assert copy.copy(model_spec(DCGANGenerator, ngf=2))["class"] == "DCGANGenerator"


def test_payloads_written_before_the_engine_still_load():
    result = train_gan(images(), tiny_dcgan(steps=1), progress=False)
    old = {"config": result.config.as_dict(), "G": result.G.state_dict(), "D": result.D.state_dict(),
           "G_ema": result.G_ema.state_dict(), "history": result.history, "data_source": "old"}
    again = TrainResult.from_payload(old)
    assert torch.equal(again.sample(3), result.sample(3)) and again.data_source == "old"


def test_an_explicit_preset_wins_over_the_environment(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()).save(folder / f"{i}.png")
    monkeypatch.setenv("COURSE_PRESET", "ci")
    out = tmp_path / "run"
    assert cli.main(["train-gan", "--data", str(folder), "--preset", "class", "--steps", "1",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"] == "class" and summary["config"]["batch_size"] == 64
    assert summary["config"]["ngf"] == 32
    assert "preset class" in capsys.readouterr().out
