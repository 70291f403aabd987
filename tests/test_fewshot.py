"""Few-shot training: fine-tuning hooks in train_gan (init_from, FreezeD), the four ways,
the recordings, and training on a messy folder of the user's own photos."""
import dataclasses

import pytest
import torch

from course_lib import fewshot
from course_lib.presets import get_preset, with_overrides
from course_lib.train import TrainConfig, build_models, freeze_discriminator_layers, train_gan


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("COURSE_PRESET", raising=False)


def tiny_config(**changes):
    base = dict(steps=4, batch_size=4, image_size=32, ngf=4, ndf=4, z_dim=8, eval_every=0, ema=0.9)
    base.update(changes)
    return TrainConfig(**base)


def reals(n=12, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny_settings(**changes):
    s = fewshot.settings_for("ci", steps=3, pretrain_steps=2, batch_size=4, width=4, n_eval=16,
                             eval_every=3)
    return dataclasses.replace(s, **changes)


# --- FreezeD ---------------------------------------------------------------------------------

def test_freeze_discriminator_layers_freezes_the_first_convs_and_their_norms():
    _, D = build_models(tiny_config())
    trainable = freeze_discriminator_layers(D, 2)
    net = D.net   # conv, lrelu, conv, bn, lrelu, conv, bn, lrelu, conv
    frozen = list(net[0].parameters()) + list(net[2].parameters()) + list(net[3].parameters())
    assert all(not p.requires_grad for p in frozen)
    assert {id(p) for p in trainable} == {id(p) for p in D.parameters() if p.requires_grad}
    assert not {id(p) for p in frozen} & {id(p) for p in trainable}
    assert list(net[5].parameters())[0].requires_grad


@pytest.mark.parametrize("n", [-1, 4])
def test_freeze_discriminator_layers_keeps_the_logit_layer(n):
    _, D = build_models(tiny_config())          # 32x32 D: 4 convs
    with pytest.raises(ValueError, match="between 0 and 3"):
        freeze_discriminator_layers(D, n)


def test_freeze_works_with_spectral_norm():
    _, D = build_models(tiny_config(spectral_norm=True))
    trainable = freeze_discriminator_layers(D, 1)
    assert len(trainable) == len(list(D.parameters())) - 2   # first conv: weight.original + bias


# --- init_from / freeze_d_layers in train_gan ----------------------------------------------------

def test_init_from_starts_at_the_pretrained_weights():
    pre = train_gan(reals(), tiny_config(seed=5), progress=False)
    frozen_lr = tiny_config(lr_g=0.0, lr_d=0.0, seed=1, steps=2)
    out = train_gan(reals(seed=1), frozen_lr, init_from=pre, progress=False)
    for a, b in zip(pre.G.state_dict().values(), out.G.state_dict().values()):
        if a.is_floating_point() and a.dim() > 1:
            assert torch.equal(a, b)
    # a payload dict (what the zoo stores) works as well
    out2 = train_gan(reals(seed=1), frozen_lr, init_from=pre.to_payload(), progress=False)
    assert torch.equal(out2.D.net[0].weight, pre.D.net[0].weight)


def test_frozen_layers_do_not_move_and_the_rest_does():
    pre = train_gan(reals(), tiny_config(), progress=False)
    out = train_gan(reals(seed=2), tiny_config(seed=3), init_from=pre, freeze_d_layers=2,
                    progress=False)
    assert torch.equal(out.D.net[0].weight, pre.D.net[0].weight)
    assert torch.equal(out.D.net[2].weight, pre.D.net[2].weight)
    assert torch.equal(out.D.net[3].weight, pre.D.net[3].weight)       # BN affine
    assert not torch.equal(out.D.net[5].weight, pre.D.net[5].weight)
    assert not torch.equal(out.G.net[0].weight, pre.G.net[0].weight)


def test_unused_hooks_leave_training_and_checkpoints_unchanged(tmp_path):
    a = train_gan(reals(), tiny_config(), out_dir=tmp_path / "a", progress=False)
    b = train_gan(reals(), tiny_config(), out_dir=tmp_path / "b", progress=False,
                  init_from=None, freeze_d_layers=0)
    for x, y in zip(a.G.state_dict().values(), b.G.state_dict().values()):
        assert torch.equal(x, y)
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert "init_from" not in ckpt["spec"]["config"] and "freeze_d_layers" not in ckpt["spec"]["config"]


def test_fine_tuning_resumes_exactly_and_refuses_other_hooks(tmp_path):
    pre = train_gan(reals(), tiny_config(), progress=False)
    config = tiny_config(steps=6, checkpoint_every=2, seed=4)
    whole = train_gan(reals(seed=2), config, init_from=pre, freeze_d_layers=1, progress=False)
    part = tmp_path / "part"
    train_gan(reals(seed=2), config, init_from=pre, freeze_d_layers=1, out_dir=part,
              stop_after=3, progress=False)
    resumed = train_gan(reals(seed=2), config, init_from=pre, freeze_d_layers=1, out_dir=part,
                        progress=False)
    for x, y in zip(whole.G.state_dict().values(), resumed.G.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6)
    saved = torch.load(part / "checkpoint.pt", weights_only=True)["spec"]["config"]
    assert (saved["init_from"], saved["freeze_d_layers"]) == (True, 1)
    with pytest.raises(ValueError, match="freeze_d_layers"):
        train_gan(reals(seed=2), config, init_from=pre, freeze_d_layers=2, out_dir=part,
                  progress=False)


# --- settings, the four ways ---------------------------------------------------------------

def test_settings_follow_the_preset():
    ci, cls = fewshot.settings_for("ci"), fewshot.settings_for("class")
    assert ci.image_size == 32 and cls.image_size == 64
    assert cls == get_preset("class").fewshot
    assert (cls.steps, cls.pretrain_steps, cls.width, cls.n_seeds) == (800, 4000, 16, 3)
    assert fewshot.settings_for(with_overrides(get_preset("class"), fewshot={"steps": 40})).steps == 40
    assert fewshot.settings_for("class", lr_finetune=1e-3).lr_finetune == 1e-3


def test_sizes_the_dcgan_cannot_make_are_refused():
    assert fewshot.settings_for("full").image_size == 64
    with pytest.raises(ValueError, match="supports"):
        fewshot.settings_for("class", image_size=256)


def test_ways_configure_augmentation_and_learning_rates():
    s = tiny_settings(lr_finetune=5e-5)
    assert fewshot.fewshot_config("baseline", s).augment == "none"
    assert fewshot.fewshot_config("diffaugment", s).augment == "diffaugment"
    assert fewshot.fewshot_config("finetune", s).lr_g == 5e-5
    assert fewshot.fewshot_config("finetune_diffaugment", s).augment == "diffaugment"
    with pytest.raises(ValueError, match="unknown way"):
        fewshot.fewshot_config("transfer", s)


def test_a_fine_tuning_run_starts_from_the_cached_pretrained_model():
    s = tiny_settings(freeze_d_layers=1)
    data = reals(16)
    result = fewshot.fewshot_run("finetune_diffaugment", 0, "ci", data=data, settings=s,
                                 progress=False)
    pre = fewshot.pretrained_model("ci", s, progress=False)
    assert torch.equal(result.D.net[0].weight, pre.D.net[0].weight)        # frozen by FreezeD
    for key in ("fd", "kid", "kid_std"):
        assert len(result.history[key]) == 1
    assert result.feature_extractor and result.n_train == 16
    again = fewshot.fewshot_run("finetune_diffaugment", 0, "ci", data=data, settings=s,
                                progress=False)
    assert torch.equal(again.G.net[0].weight, result.G.net[0].weight)      # from the zoo


def test_the_pretrained_model_is_tracked_and_ships_in_fp16(tmp_path, monkeypatch):
    """Its FD against its own set is in its history (to show convergence); its weights go
    through fp16 whichever way it comes; a shipped file that describes it is used without
    training, and one that describes another model is not."""
    s = tiny_settings(pretrain_steps=4)
    pre = fewshot.pretrained_model("ci", s, progress=False)
    assert pre.history["eval_step"] and len(pre.history["fd"]) == len(pre.history["eval_step"])
    w = pre.G.net[0].weight
    assert torch.equal(w, w.half().float())                  # fp16-representable
    monkeypatch.setattr(fewshot, "RECORDED_DIR", tmp_path / "recorded")
    fewshot.ship_pretrained(pre, s, fewshot.shipped_pretrained_path("ci"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "empty"))   # nothing to load from the zoo
    shipped = fewshot.pretrained_model("ci", s, progress=False)
    assert not (tmp_path / "empty").exists()                 # nothing trained, nothing cached
    assert torch.equal(shipped.G.net[0].weight, w)
    assert shipped.history["fd"] == pre.history["fd"] and shipped.history["eval_step"] == pre.history["eval_step"]
    assert shipped.data_source == pre.data_source and shipped.n_train == pre.n_train
    other = fewshot.pretrained_model("ci", dataclasses.replace(s, pretrain_steps=3), progress=False)
    assert (tmp_path / "empty").exists() and other.config.steps == 3


def test_training_set_reference_scores_the_training_set_best():
    images = reals(20, seed=3)
    ref = fewshot.training_set_reference(images)
    same, noise = ref.distance(images), ref.distance(reals(20, seed=9).mul(0.2))
    assert same == pytest.approx(0.0, abs=1e-6) and noise > same
    assert ref.kid(images).mean < ref.kid(reals(20, seed=9).mul(0.2)).mean


def test_evaluate_reports_quality_and_diversity():
    images = reals(20, seed=3)
    ref = fewshot.training_set_reference(images)

    class Generator(torch.nn.Module):    # "generates" training images: all of them, or one
        z_dim = 4

        def __init__(self, n_distinct):
            super().__init__()
            self.n_distinct = n_distinct
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z):
            return images[torch.arange(len(z)) % self.n_distinct]

    every = fewshot.evaluate(Generator(20), ref, n_samples=40)
    one = fewshot.evaluate(Generator(1), ref, n_samples=40)
    assert set(one) >= {"fd", "kid", "precision", "recall", "density", "coverage"}
    assert every["precision"] == one["precision"] == 1.0   # every sample is a real image...
    assert every["coverage"] == 1.0 and one["coverage"] < 1.0  # ...but one copy covers less
    assert one["recall"] < every["recall"]


# --- recordings ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_record_and_load_round_trip(tmp_path):
    s = tiny_settings()
    out = fewshot.record("ci", out_dir=tmp_path / "rec", n_samples=4, settings=s)
    rec = fewshot.load_fewshot_recording("ci", out)
    assert {r["way"] for r in rec.runs} == set(fewshot.WAYS) and rec.seeds == [0]
    run = rec.find("diffaugment", 0)
    assert rec.images(run).shape == (4, 3, 32, 32)
    assert rec.images("pretrained").shape == (4, 3, 32, 32)
    assert rec.mean_final("baseline", "fd") == run_fd(rec, "baseline")
    assert [row["way"] for row in rec.table()] == list(fewshot.WAYS)
    assert rec.feature_extractor and "LFW" in rec.data_source
    with pytest.raises(KeyError):
        rec.find("diffaugment", 5)
    with pytest.raises(FileNotFoundError, match="python -m course_lib.fewshot"):
        fewshot.load_fewshot_recording("ci", tmp_path / "nothing")


def run_fd(rec, way):
    return rec.find(way, 0)["final"]["fd"]


@pytest.mark.parametrize("preset", ["ci", "class"])
def test_shipped_recordings_are_complete(preset):
    try:
        rec = fewshot.load_fewshot_recording(preset)
    except FileNotFoundError:
        pytest.skip(f"no {preset} recording yet")
    s = fewshot.settings_for(preset)
    assert rec.preset == preset and rec.settings["image_size"] == s.image_size
    assert len(rec.runs) == len(fewshot.WAYS) * s.n_seeds
    for run in rec.runs:
        assert rec.images(run).shape[-1] == s.image_size
        assert {"fd", "kid"} <= set(run["final"])


# --- your own photos -------------------------------------------------------------------------------

def test_training_on_a_messy_user_folder(tmp_path):
    from course_lib.data import load_image_folder

    folder = fewshot.make_demo_folder(tmp_path / "photos", n=10, size=32)
    ds = load_image_folder(folder, 32)
    # 10 faces + the 16-bit scan + the palette GIF load; the cut-off JPEG and notes.txt do not
    assert len(ds) == 12
    reasons = {p.name: r for p, r in ds.skipped}
    assert set(reasons) == {"broken_upload.jpg", "notes.txt"}
    assert "not an image" in reasons["notes.txt"]
    assert "skipped 2" in ds.summary()
    scan = ds.tensors()[[p.name for p in ds.paths].index("scan_16bit.png")]
    assert scan.min() < -0.5 and scan.max() > 0.0          # rescaled from 16 bits, not clipped
    result = fewshot.fewshot_run("finetune_diffaugment", 0, "ci", data=ds,
                                 settings=tiny_settings(), use_zoo=False, progress=False)
    assert result.n_train == 12 and result.data_source == ds.source
    assert torch.isfinite(torch.tensor(result.history["loss_d"])).all()
    assert result.sample(4).shape == (4, 3, 32, 32)
