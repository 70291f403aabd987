"""The leak lab of notebook 03 (issue 12 §3): one's own T, placed one of the ways, trained
live; the samples and T's looks are redrawn after every evaluation."""
from types import SimpleNamespace

import pytest
import torch

from course_lib import train
from course_lib.widgets.leak import leak_caption, leak_lab


def _images(n, seed=0, value=None):
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x if value is None else torch.full_like(x, value)


def fake_result(step, grey):
    return SimpleNamespace(sample=lambda n: _images(n, value=0.0 if grey else None),
                           history={"step": [step]})


def test_the_lab_trains_the_chosen_placement_and_redraws_at_each_evaluation():
    calls = []

    def train_fn(strategy, callback):
        calls.append(strategy)
        callback(100, {}, fake_result(100, grey=False))
        callback(200, {}, fake_result(200, grey=True))     # the samples have gone grey
        return fake_result(200, grey=True)

    lab = leak_lab(train_fn, _images(16), strategies=("real_only", "diffaugment"))
    assert lab.output.value == b"" and "ready" in lab.state.status
    lab.controls["strategy"].value = "diffaugment"
    lab.controls["run"].click()
    assert calls == ["diffaugment"]
    assert [row["step"] for row in lab.state.trace] == [100, 200, 200]
    assert lab.state.trace[0]["grey_patches"] < 0.5 < lab.state.trace[1]["grey_patches"]
    assert bytes(lab.output.value).startswith(b"\x89PNG") and "done" in lab.state.status
    assert not lab.controls["run"].disabled


def test_a_failing_run_is_reported_on_the_widget():
    def train_fn(strategy, callback):
        raise RuntimeError("out of memory")

    lab = leak_lab(train_fn, _images(8))
    lab.controls["run"].click()
    assert "failed: RuntimeError: out of memory" in lab.state.status and not lab.state.running


def test_unknown_strategies_are_refused():
    with pytest.raises(ValueError, match="unknown strategies"):
        leak_lab(lambda s, c: None, _images(4), strategies=("reals_only",))


def test_caption_compares_with_the_reals():
    text = leak_caption(800, {"grey_patches": 0.1, "grey_border": 0.2, "cast_spread": 0.3},
                        {"grey_patches": 0.0, "grey_border": 0.0, "cast_spread": 0.4})
    assert text.startswith("step 800:") and "(reals 0.000)" in text


def test_train_gan_places_ones_own_T_as_the_strategy_says():
    seen = []

    def my_T(x, generator=None):
        seen.append((x.requires_grad, isinstance(generator, torch.Generator), torch.is_grad_enabled()))
        return x.flip(-1)

    reals = _images(24)
    for strategy, per_step in (("real_only", 1), ("d_step_only", 2), ("diffaugment", 3)):
        seen.clear()
        config = train.TrainConfig(steps=2, batch_size=8, ngf=8, ndf=8, augment=strategy)
        train.train_gan(reals, config, augment_fn=my_T, progress=False, device="cpu")
        training = [s for s in seen if s[2]]                 # the monitor measures without grad
        assert len(training) == 2 * per_step, strategy
        assert len(seen) > len(training), strategy             # and sees D's inputs through T too
        assert all(gen for _, gen, _ in seen)
    assert any(requires_grad for requires_grad, _, _ in seen)  # the G step goes through T
