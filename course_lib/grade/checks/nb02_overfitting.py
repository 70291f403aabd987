"""Checks for ``02_overfitting``: ex2.1 ``overfitting_stats``, the discriminator monitor.

The reference is :func:`course_lib.monitor.monitor_from_logits`: D's accuracy on training
reals (logit > 0), on held-out reals (logit > 0), on fakes (logit < 0), the gap
acc_train - acc_heldout, and StyleGAN2-ADA's r_t = mean(sign(train logits)).
A logit of exactly 0 is "undecided": right about nothing, and sign(0) = 0.
"""
import math

import torch

from course_lib.grade.api import CheckFailed, exercise, expect, type_name, written
from course_lib.monitor import monitor_from_logits as reference

KEYS = ("acc_train", "acc_heldout", "acc_fake", "gap", "r_t")


def _stats(student, train, held, fake) -> dict:
    args = [torch.tensor(v, dtype=torch.float32) for v in (train, held, fake)]
    run = student.run(args)
    out = run.value
    expect(out is not None, "overfitting_stats returned None: did you forget `return`?")
    expect(isinstance(out, dict), f"overfitting_stats must return a dict with keys {list(KEYS)}, "
                                  f"got {type_name(out)}")
    missing = [k for k in KEYS if k not in out]
    expect(not missing, f"the returned dict lacks {missing} (it needs {list(KEYS)})")
    expect(all(isinstance(a, torch.Tensor) and torch.equal(a, c) for a, c in zip(run.args, args)),
           "overfitting_stats changed the logits it was given (in place); compute new tensors")
    values = {}
    for key in KEYS:
        value = out[key]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if type(value) not in (int, float) or isinstance(value, bool):
            raise CheckFailed(f"out[{key!r}] must be one number (a float; use .item()), got "
                              f"{type_name(out[key])}")
        values[key] = float(value)
    return values


def _hint(key: str, got: float, train, held, fake) -> str:
    t, h, f = (torch.tensor(v, dtype=torch.float32) for v in (train, held, fake))
    acc_train, acc_held = (t > 0).float().mean().item(), (h > 0).float().mean().item()
    wrong = {
        "acc_fake": [
            ((f > 0).float().mean().item(),
             "you counted fakes with a positive logit as correct; D is right about a fake when "
             "it says 'fake', i.e. when the logit is < 0"),
            ((f <= 0).float().mean().item(),
             "a logit of exactly 0 is undecided: it is not a correct 'fake' answer (use < 0, not <= 0)"),
        ],
        "acc_train": [((t >= 0).float().mean().item(),
                       "a logit of exactly 0 is undecided: it is not a correct 'real' answer (use > 0, not >= 0)")],
        "acc_heldout": [((h >= 0).float().mean().item(),
                         "a logit of exactly 0 is undecided: it is not a correct 'real' answer (use > 0)")],
        "gap": [(acc_held - acc_train,
                 "the gap is reversed: it is acc_train - acc_heldout (positive when D does better "
                 "on the images it trained on, i.e. when it memorises)")],
        "r_t": [(t.mean().item(),
                 "that is the mean of the logits; r_t is the mean of their SIGNS, "
                 "torch.sign(train_logits).mean(), so it always lies in [-1, 1]"),
                ((t > 0).float().mean().item(),
                 "that is the fraction of positive logits (acc_train); r_t = mean(sign(logits)) "
                 "counts negative logits as -1, so it lies in [-1, 1]"),
                (torch.sign(h).mean().item(),
                 "r_t is measured on the TRAINING reals, not the held-out ones")],
    }
    for value, hint in wrong.get(key, []):
        if math.isfinite(value) and abs(got - value) < 1e-6:
            return f" ({hint})"
    return ""


def _expect_case(student, train, held, fake, want: dict, what: str):
    got = _stats(student, train, held, fake)
    for key in KEYS:
        expect(math.isfinite(got[key]) and abs(got[key] - want[key]) < 1e-6,
               f"{what}: {key} must be {want[key]:g}, got {got[key]:.4g}"
               f"{_hint(key, got[key], train, held, fake)} "
               f"[train logits {train}, held-out {held}, fakes {fake}]")


@exercise("ex2.1", notebook="02_overfitting", function="overfitting_stats", points=2, timeout=30,
          reference="course_lib.monitor.monitor_from_logits")
def check_overfitting_stats(student):
    # Hand-made logits, with exact zeros (undecided) in every set.
    train, held, fake = [2.0, -1.0, 0.0, 3.0], [-1.0, -2.0, 0.5, 0.0], [-3.0, 0.0, 1.0, -0.5, -2.0]
    _expect_case(student, train, held, fake,
                 {"acc_train": 0.5, "acc_heldout": 0.25, "acc_fake": 0.6, "gap": 0.25, "r_t": 0.25},
                 "hand-made logits")

    # A memorising D: sure about its training images, wrong about new ones.
    train, held, fake = [50.0, 100.0, 75.0], [-4.0, -2.0], [-9.0, -8.0, 7.0, -1.0]
    _expect_case(student, train, held, fake,
                 {"acc_train": 1.0, "acc_heldout": 0.0, "acc_fake": 0.75, "gap": 1.0, "r_t": 1.0},
                 "a memorising discriminator")

    # All undecided.
    zeros = [0.0, 0.0, 0.0]
    _expect_case(student, zeros, zeros, zeros,
                 {"acc_train": 0.0, "acc_heldout": 0.0, "acc_fake": 0.0, "gap": 0.0, "r_t": 0.0},
                 "all logits exactly 0")

    # A D that calls every training image fake: r_t hits its lower end.
    _expect_case(student, [-0.5, -0.25, -300.0], [1.0], [2.0, 3.0],
                 {"acc_train": 0.0, "acc_heldout": 1.0, "acc_fake": 0.0, "gap": -1.0, "r_t": -1.0},
                 "a D that rejects every training image")

    # Random logits of different sizes against course_lib's monitor; r_t stays in [-1, 1].
    gen = torch.Generator().manual_seed(21)
    for n_train, n_held, n_fake in ((64, 32, 48), (7, 13, 5)):
        train = (torch.randn(n_train, generator=gen) * 4 + 1).tolist()
        held = (torch.randn(n_held, generator=gen) * 4).tolist()
        fake = (torch.randn(n_fake, generator=gen) * 4 - 1).tolist()
        got = _stats(student, train, held, fake)
        want = reference(torch.tensor(train), torch.tensor(held), torch.tensor(fake))
        expect(-1 <= got["r_t"] <= 1, f"r_t must lie in [-1, 1], got {got['r_t']:.4g}"
                                      f"{_hint('r_t', got['r_t'], train, held, fake)}")
        for key in KEYS:
            expect(abs(got[key] - want[key]) < 1e-5,
                   f"on {n_train} random training logits, {n_held} held-out and {n_fake} fake, "
                   f"{key} is {got[key]:.4f} but course_lib's monitor gives {want[key]:.4f}"
                   f"{_hint(key, got[key], train, held, fake)}")


# --- written questions (marked by hand) -------------------------------------------------------

written("q2.1", notebook="02_overfitting",
        prompt="G never sees the training images: why does D memorising them make G's samples worse?")
