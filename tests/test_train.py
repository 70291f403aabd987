"""course_lib.train and course_lib.monitor: resuming, learning, where the augmentation
goes in each strategy, the monitor's numbers, and the train-gan command line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_lib import cli, losses
from course_lib.metrics import frechet_distance
from course_lib.diffaugment import diff_augment
from course_lib.models.dcgan import DCGANDiscriminator
from course_lib.monitor import (SignTally, batch_statistics, evaluate_discriminator, logits,
                                monitor_from_logits, r_v, spread_subset)
from course_lib.train import (
    STRATEGIES,
    TrainConfig,
    build_models,
    discriminator_loss,
    fixed_latents,
    generator_loss,
    train_gan,
    train_step,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models: one thread is faster (and kinder to a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**changes) -> TrainConfig:
    base = dict(steps=6, batch_size=4, ngf=4, ndf=4, eval_every=2, ema=0.9, seed=3,
                augment="diffaugment")
    base.update(changes)
    return TrainConfig(**base)


def random_images(n, seed=0, size=32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- resuming ------------------------------------------------------------------------------

def assert_same_state(a: nn.Module, b: nn.Module, what: str):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6, rtol=0), f"{what}.{name} differs after resuming"


@pytest.mark.parametrize("augment", ["none", "diffaugment"])
def test_resume_equals_an_uninterrupted_run(tmp_path, augment):
    data, held = random_images(24, seed=1), random_images(8, seed=2)
    config = tiny_config(augment=augment)
    whole = train_gan(data, config, heldout=held, progress=False, n_monitor=8)

    out = tmp_path / "run"
    first = train_gan(data, config, heldout=held, out_dir=out, progress=False, n_monitor=8, stop_after=3)
    assert first.history["step"][-1] == 3 and (out / "checkpoint.pt").exists()
    resumed = train_gan(data, config, heldout=held, out_dir=out, progress=False, n_monitor=8)

    assert resumed.history["step"] == list(range(1, 7))
    for key in ("loss_d", "loss_g", "eval_step", "acc_train", "acc_heldout", "r_t"):
        np.testing.assert_allclose(resumed.history[key], whole.history[key], atol=1e-6, err_msg=key)
    assert_same_state(resumed.G, whole.G, "G")
    assert_same_state(resumed.D, whole.D, "D")
    assert_same_state(resumed.G_ema, whole.G_ema, "G_ema")


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    data = random_images(8)
    train_gan(data, tiny_config(steps=2), out_dir=tmp_path, progress=False, n_monitor=4)
    with pytest.raises(ValueError, match="different configuration"):
        train_gan(data, tiny_config(steps=2, seed=4), out_dir=tmp_path, progress=False, n_monitor=4)


def test_a_finished_run_resumes_as_a_no_op(tmp_path):
    data = random_images(8)
    config = tiny_config(steps=2, eval_every=0)
    done = train_gan(data, config, out_dir=tmp_path, progress=False, n_monitor=4)
    again = train_gan(data, config, out_dir=tmp_path, progress=False, n_monitor=4)
    assert again.history.keys() == done.history.keys()
    for key in ("step", "loss_d", "loss_g", "eval_step", "acc_train", "r_t"):
        assert again.history[key] == done.history[key], key
    assert_same_state(again.G, done.G, "G")


# --- it learns -------------------------------------------------------------------------------

def simple_features(x: torch.Tensor) -> np.ndarray:
    """Per-image channel means and standard deviations, and the left-right brightness
    difference: enough to tell a coloured gradient from grey noise."""
    left_right = x[..., :16].mean((1, 2, 3)) - x[..., 16:].mean((1, 2, 3))
    return torch.cat([x.mean((2, 3)), x.std((2, 3)), left_right[:, None]], 1).double().numpy()


def fd_simple(images: torch.Tensor, reals: torch.Tensor) -> float:
    a, b = simple_features(images), simple_features(reals)
    return float(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _learnable_reals(n: int = 256) -> torch.Tensor:
    """Reddish images with a left-to-right ramp: far from an untrained G's grey."""
    gen = torch.Generator().manual_seed(0)
    colour = torch.tensor([0.6, -0.5, 0.1]).view(1, 3, 1, 1) + 0.1 * torch.randn(n, 3, 1, 1, generator=gen)
    ramp = torch.linspace(-0.3, 0.3, 32).view(1, 1, 1, 32)
    return (colour + ramp + 0.05 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(-1, 1)


def _learning_config(**changes) -> TrainConfig:
    base = dict(steps=40, batch_size=16, ngf=8, ndf=8, ema=None, lr_g=2e-3, lr_d=2e-3, augment="none", seed=0)
    base.update(changes)
    return TrainConfig(**base)


def test_a_tiny_run_beats_its_random_initialisation():
    reals, config = _learnable_reals(), _learning_config()

    torch.manual_seed(config.seed)  # the initial weights train_gan starts from
    G0, _ = build_models(config)
    with torch.no_grad():
        before = fd_simple(G0.eval()(fixed_latents(256, config.z_dim)), reals)
    result = train_gan(reals, config, progress=False)
    after = fd_simple(result.sample(256), reals)
    assert after < 0.7 * before, f"Fréchet distance {before:.3f} at initialisation -> {after:.3f} after training"


def test_the_ema_generator_keeps_up_with_a_short_run():
    reals, config = _learnable_reals(), _learning_config(ema=0.999)
    result = train_gan(reals, config, progress=False)
    z = fixed_latents(256, config.z_dim)
    with torch.no_grad():
        fd_g, fd_ema = fd_simple(result.G.eval()(z), reals), fd_simple(result.G_ema.eval()(z), reals)
    assert fd_ema < 2 * fd_g + 0.05, f"Fréchet distance of G {fd_g:.3f}, of its EMA {fd_ema:.3f}"


# --- where T goes, per strategy -----------------------------------------------------------------

MARK = 100.0  # the spy T adds this, so an augmented image is recognisable by its values
REAL_VALUE = 0.25


class SpyT:
    """An augmentation that shifts images by MARK (differentiably) and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x + MARK


class RecordingD(nn.Module):
    """A discriminator that records each batch it sees: real or fake, augmented or not,
    attached to a graph or not. logit = mean of the image minus a learnable bias."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x):
        augmented = bool((x > MARK / 2).all())
        plain = x.detach() - (MARK if augmented else 0.0)
        kind = "real" if torch.allclose(plain, torch.full_like(plain, REAL_VALUE)) else "fake"
        self.seen.append((kind, augmented, x.requires_grad))
        return x.flatten(1).mean(1) - self.bias


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3 * 4 * 4)

    def forward(self, z):
        return torch.tanh(self.lin(z)).reshape(-1, 3, 4, 4) * 0.5  # never equal to REAL_VALUE everywhere


# What the table in train.py's docstring says: (D step: real augmented?, fake augmented?), G step: fake augmented?
TABLE = {
    "none": ((False, False), False),
    "real_only": ((True, False), False),
    "d_step_only": ((True, True), False),
    "diffaugment": ((True, True), True),
}


def test_the_table_covers_every_strategy():
    assert set(TABLE) == set(STRATEGIES)


@pytest.mark.parametrize("augment", STRATEGIES)
def test_discriminator_and_generator_loss_apply_T_where_the_table_says(augment):
    (real_aug, fake_aug), g_aug = TABLE[augment]
    real = torch.full((2, 3, 4, 4), REAL_VALUE)
    fake = TinyG()(torch.randn(2, 2))
    D, T = RecordingD(), SpyT()
    discriminator_loss(D, real, fake.detach(), augment, T, "hinge")
    assert sorted(D.seen) == sorted([("real", real_aug, False), ("fake", fake_aug, False)])
    assert T.calls == real_aug + fake_aug

    D, T = RecordingD(), SpyT()
    generator_loss(D, fake, augment, T, "hinge")
    assert D.seen == [("fake", g_aug, True)]
    assert T.calls == int(g_aug)


@pytest.mark.parametrize("augment", STRATEGIES)
def test_train_step_applies_T_where_the_table_says(augment):
    (real_aug, fake_aug), g_aug = TABLE[augment]
    torch.manual_seed(0)
    G, D, T = TinyG(), RecordingD(), SpyT()
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
    real = torch.full((2, 3, 4, 4), REAL_VALUE)
    train_step(G, D, opt_g, opt_d, real, torch.randn(2, 2), augment, T, "hinge")
    # D step: reals and *detached* fakes; then the G step: fakes attached to G
    assert sorted(D.seen[:2]) == sorted([("real", real_aug, False), ("fake", fake_aug, False)])
    assert D.seen[2:] == [("fake", g_aug, True)]
    assert T.calls == real_aug + fake_aug + g_aug


def test_in_diffaugment_the_gradient_reaches_G_through_T():
    # With T(x) = x + MARK the G step's gradient is the same as without T (dT/dx = 1),
    # so G's gradient must be non-zero and equal to the un-augmented one.
    torch.manual_seed(0)
    G, fake_z = TinyG(), torch.randn(3, 2)
    grads = {}
    for augment in ("none", "diffaugment"):
        G.zero_grad()
        generator_loss(RecordingD(), G(fake_z), augment, SpyT(), "hinge").backward()
        grads[augment] = G.lin.weight.grad.clone()
    assert grads["none"].abs().sum() > 0
    assert torch.allclose(grads["diffaugment"], grads["none"])


def test_strategies_other_than_none_need_T():
    D, x = RecordingD(), torch.zeros(1, 3, 4, 4)
    for augment in ("real_only", "d_step_only", "diffaugment"):
        with pytest.raises(ValueError, match="needs an augmentation"):
            discriminator_loss(D, x, x, augment, None)
    with pytest.raises(ValueError, match="needs an augmentation"):
        generator_loss(D, x, "diffaugment", None)
    with pytest.raises(ValueError, match="unknown augmentation strategy"):
        TrainConfig(augment="everything")


# --- the monitor, on a hand-made discriminator ---------------------------------------------------

class MeanD(nn.Module):
    """logit = the mean pixel value of the image (so a constant image c has logit c)."""

    def forward(self, x):
        return x.flatten(1).mean(1)


def constant_images(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()


def test_monitor_numbers_on_a_hand_made_discriminator():
    train = constant_images([0.5, 0.2, -0.1, 0.0])        # logits 0.5, 0.2, -0.1, 0 (undecided)
    held = constant_images([-0.3, 0.4, -0.2, -0.6, 0.1])   # 2 of 5 called real
    fakes = constant_images([-0.9, -0.1, 0.3, 0.0, -0.5])  # 3 of 5 called fake
    D = MeanD().eval()
    stats = evaluate_discriminator(D, train, held, fakes)
    # r_t = 2 * acc_train - 1; r_v = (0.15 - (-0.12)) / (0.15 - (-0.24))
    assert stats == pytest.approx({"acc_train": 0.5, "acc_heldout": 0.4, "acc_fake": 0.6,
                                   "gap": 0.1, "r_t": 0.0, "acc_train_snapshot": 0.5,
                                   "acc_train_tallied": 0.0, "r_v": 0.27 / 0.39})
    assert all(isinstance(v, float) for v in stats.values())
    assert not D.training  # its mode is given back
    # The training batches' tally, when given, is acc_train (and r_t, gap follow it).
    tallied = evaluate_discriminator(D, train, held, fakes, train_tally=(0.9, 640))
    assert tallied["acc_train"] == 0.9 and tallied["r_t"] == pytest.approx(0.8)
    assert tallied["gap"] == pytest.approx(0.5) and tallied["acc_train_snapshot"] == 0.5
    assert tallied["acc_train_tallied"] == 1.0
    # an empty tally (no step since the last evaluation) falls back to the snapshot
    assert evaluate_discriminator(D, train, held, fakes, train_tally=(float("nan"), 0))["acc_train"] == 0.5


def test_r_v_is_adas_heldout_heuristic():
    assert r_v(torch.tensor([2.0, 4.0]), torch.tensor([3.0]), torch.tensor([-3.0, -1.0])) == pytest.approx(0 / 5)
    assert r_v(torch.tensor([3.0]), torch.tensor([-2.0]), torch.tensor([-2.0])) == pytest.approx(1.0)
    assert r_v(torch.tensor([3.0]), torch.tensor([0.5]), torch.tensor([-2.0])) == pytest.approx(0.5)
    assert np.isnan(r_v(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0])))


def test_sign_tally_accumulates_until_read():
    tally = SignTally()
    tally.add(torch.tensor([1.0, -1.0, 2.0, 0.0]))
    tally.add(torch.tensor([[3.0], [4.0]]))
    assert tally.read() == (pytest.approx(4 / 6), 6)
    acc, n = tally.read()
    assert n == 0 and np.isnan(acc)
    tally.add(torch.tensor([1.0, -1.0]))
    again = SignTally()
    again.load_state_dict(tally.state_dict())
    assert again.read() == (pytest.approx(0.5), 2)


def bn_discriminator() -> nn.Module:
    torch.manual_seed(0)
    D = DCGANDiscriminator(ndf=4, image_size=32)
    D.train()
    for _ in range(3):  # running statistics that differ from any one batch's
        D(random_images(8, seed=1) * 0.3 + 0.5)
        D(random_images(8, seed=2) * 0.3 - 0.5)
    return D.eval()


def test_logits_use_batch_statistics_and_leave_the_running_ones_alone():
    D = bn_discriminator()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    images = random_images(12, seed=3)
    got = logits(D, images, batch_size=6)
    for k, v in D.state_dict().items():
        assert torch.equal(v, before[k]), f"measuring changed D's {k}"
    assert not D.training
    with torch.no_grad():
        want = torch.cat([D.train()(images[:6]), D(images[6:])]).flatten()   # as in training
        D.load_state_dict(before)
        eval_mode = D.eval()(images).flatten()
    assert torch.allclose(got, want, atol=1e-5)
    # the old eval-mode measurement (running statistics) is a different classifier
    assert (got - eval_mode).abs().max() > 0.05


def test_batch_statistics_restores_buffers_even_after_an_error():
    D = bn_discriminator()
    before = [b.clone() for b in D.buffers()]
    with pytest.raises(RuntimeError):
        with batch_statistics(D):
            assert D.training
            D(random_images(4))
            raise RuntimeError("boom")
    assert all(torch.equal(a, b) for a, b in zip(before, D.buffers())) and not D.training


def test_monitor_reals_go_through_the_strategys_augmentation():
    D = MeanD().eval()
    images = constant_images([0.3] * 8)
    T = lambda x: diff_augment(x, "color", generator=torch.Generator().manual_seed(0))  # noqa: E731
    plain = logits(D, images)
    augmented = logits(D, images, transform=T)
    assert torch.allclose(plain, torch.full((8,), 0.3)) and not torch.allclose(augmented, plain)


def test_logits_are_computed_in_batches():
    images = constant_images(np.linspace(-1, 1, 7).tolist())
    assert torch.allclose(logits(MeanD(), images, batch_size=3), torch.linspace(-1, 1, 7), atol=1e-6)


@pytest.mark.parametrize("augment", ["none", "diffaugment"])
def test_train_gan_history_is_the_monitor_of_the_returned_models(augment):
    data, held = random_images(16, seed=5), random_images(8, seed=6)
    config = tiny_config(steps=4, eval_every=2, augment=augment)
    result = train_gan(data, config, heldout=held, progress=False, n_monitor=8, log_every=1)
    h = result.history
    assert h["eval_step"] == [2, 4] and len(h["acc_train"]) == 2
    # acc_train and r_t: D's own training batches over the steps since the last evaluation
    window = [v for s, v in zip(h["step"], h["r_t_batch"]) if 2 < s <= 4]
    assert h["r_t"][-1] == pytest.approx(float(np.mean(window)), abs=1e-6)
    assert h["acc_train"][-1] == pytest.approx((h["r_t"][-1] + 1) / 2, abs=1e-6)
    assert h["acc_train_tallied"] == [1.0, 1.0]
    # the rest: the final models measured afresh (batch statistics, the strategy's T)
    T = None
    if augment == "diffaugment":
        gen = torch.Generator().manual_seed(4321)
        T = lambda x: diff_augment(x, config.policy, generator=gen)  # noqa: E731
    final = evaluate_discriminator(result.D, spread_subset(data, 8), spread_subset(held, 8),
                                   result.sample(8, seed=4321), batch_size=config.batch_size,
                                   real_transform=T, fake_transform=T)
    for key in ("acc_heldout", "acc_fake", "acc_train_snapshot", "r_v"):
        assert h[key][-1] == pytest.approx(final[key], abs=1e-6), key


def test_train_gan_calls_back_after_every_evaluation_with_eval_fn_figures():
    seen = []
    train_gan(random_images(8), tiny_config(steps=4, eval_every=1), progress=False, n_monitor=4,
              eval_fn=lambda G: {"fd": 7.0},
              callback=lambda step, history, result: seen.append((step, history["fd"][-1])))
    assert seen == [(1, 7.0), (2, 7.0), (3, 7.0), (4, 7.0)]


# --- the command line ---------------------------------------------------------------------------

@pytest.fixture
def odd_folder(tmp_path) -> Path:
    """A folder of images in awkward formats, plus files that are not images."""
    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(folder / "sixteen_bit.png")
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(folder / "rgba.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_train_gan_cli_on_odd_images_then_resume(odd_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    out = tmp_path / "out"
    args = ["train-gan", "--data", str(odd_folder), "--steps", "3", "--preset", "ci", "--out", str(out),
            "--augment", "diffaugment"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "loaded 5 images" in printed and "skipped 2" in printed
    for name in ("checkpoint.pt", "samples.png", "summary.json", "history.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"] == "ci" and summary["images"] == 5 and summary["config"]["steps"] == 3
    assert Image.open(out / "samples.png").size[0] > 32

    # The same command again finds the run finished and does not train again.
    before = torch.load(out / "checkpoint.pt", weights_only=True)
    assert cli.main(args) == 0
    after = torch.load(out / "checkpoint.pt", weights_only=True)
    assert after["step"] == before["step"] == 3
    for key in before["models"]["G"]:
        assert torch.equal(before["models"]["G"][key], after["models"]["G"][key])


def test_train_gan_cli_resumes_an_interrupted_run(odd_folder, tmp_path, monkeypatch):
    # Interrupt after 2 of 4 steps (as Ctrl-C after a checkpoint would), then re-run.
    import course_lib.train as train_module

    monkeypatch.delenv("COURSE_PRESET", raising=False)
    out = tmp_path / "out"
    args = ["train-gan", "--data", str(odd_folder), "--steps", "4", "--checkpoint-every", "2",
            "--preset", "ci", "--out", str(out), "--augment", "none"]
    real_train_gan = train_module.train_gan

    def interrupted(*a, **k):
        real_train_gan(*a, **k, stop_after=2)
        raise KeyboardInterrupt

    monkeypatch.setattr("course_lib.train_cli.train_gan", interrupted)
    assert cli.main(args) == 130
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr("course_lib.train_cli.train_gan", real_train_gan)
    assert cli.main(args) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2, 3, 4]


def test_train_gan_cli_in_a_subprocess_has_no_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "COURSE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for argv in (["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                 ["--augment", "everything", "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-m", "course_lib", "train-gan", *argv], cwd=ROOT,
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode in (1, 2), proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(("error:", "python -m course_lib train-gan: error:")), proc.stderr


def test_the_monitor_measures_d_through_ones_own_t():
    # With augment_fn (notebook 03's leak lab: the learner's T), the monitor must show D the
    # reals as D sees them in training: through that T, not the library's diff_augment.
    from course_lib.diffaugment import diff_augment as library_T
    calls = {"train": 0, "monitor": 0}

    def own_T(x, generator=None):
        calls["train" if torch.is_grad_enabled() else "monitor"] += 1
        return library_T(x, "color", generator=generator)

    data, held = random_images(16, seed=5), random_images(8, seed=6)
    train_gan(data, tiny_config(steps=4, eval_every=2, augment="real_only"), heldout=held,
              progress=False, n_monitor=8, augment_fn=own_T)
    assert calls["train"] >= 4 and calls["monitor"] > 0, calls
