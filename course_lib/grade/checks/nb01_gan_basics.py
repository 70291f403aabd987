"""Checks for ``01_gan_basics``: the non-saturating GAN losses and one training step.

- ex1.1 ``discriminator_loss_from_logits(real_logits, fake_logits)``
- ex1.2 ``generator_loss_from_logits(fake_logits)``
- ex1.3 ``train_step(G, D, opt_g, opt_d, real, z)``

The losses are the non-saturating pair of Goodfellow et al. (2014) written with
``softplus`` (see :mod:`course_lib.losses`); the training step is compared with
:func:`course_lib.train.train_step` on a tiny network whose every number is known.
"""
import copy
import math

import torch
from torch import nn

from course_lib import losses
from course_lib.grade.api import expect, exercise
from course_lib.train import train_step as reference_train_step

LN2 = math.log(2)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _scalar_loss(out, name: str) -> torch.Tensor:
    expect(out is not None, f"{name} returned None: did you forget `return`?")
    expect(isinstance(out, torch.Tensor),
           f"{name} must return a torch scalar tensor (so that .backward() works), got "
           f"{type(out).__name__} — don't call .item() inside the loss")
    expect(out.numel() == 1, f"{name} must return one number (a scalar: the mean over the batch), "
                             f"got a tensor of shape {tuple(out.shape)}")
    expect(out.dtype.is_floating_point, f"{name} must return a float tensor, got {out.dtype}")
    return out.reshape(())


def _close(a: float, b: float, tol: float = 1e-5) -> bool:
    return math.isfinite(a) and abs(a - b) <= tol * max(1.0, abs(b))


# --- ex1.1: the discriminator's loss ------------------------------------------------------

def _d_hint(got: float, real: list, fake: list) -> str:
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    candidates = {
        "the sign is flipped: D should be rewarded (low loss) for positive logits on reals and "
        "negative logits on fakes, so use softplus(-real) and softplus(+fake)":
            mean([_softplus(r) for r in real]) + mean([_softplus(-f) for f in fake]),
        "that is the hinge loss (relu(1 - real) + relu(1 + fake)); this exercise asks for the "
        "non-saturating (binary cross-entropy) loss":
            mean([max(0.0, 1 - r) for r in real]) + mean([max(0.0, 1 + f) for f in fake]),
        "that is a sum over the batch; take the mean over each batch, so the loss does not "
        "grow with the batch size":
            sum(_softplus(-r) for r in real) + sum(_softplus(f) for f in fake),
        "that averages reals and fakes together (one mean over both batches); the loss is "
        "the mean over the reals PLUS the mean over the fakes":
            mean([_softplus(-r) for r in real] + [_softplus(f) for f in fake]),
    }
    for hint, value in candidates.items():
        if _close(got, value, 1e-4):
            return f" ({hint})"
    return ""


@exercise("ex1.1", notebook="01_gan_basics", function="discriminator_loss_from_logits",
          points=1, timeout=30)
def check_discriminator_loss(fn, ns):
    name = "discriminator_loss_from_logits"
    # Exact small cases. A D that outputs 0 is unsure (sigmoid(0) = 1/2): loss 2 ln 2.
    cases = [
        ([0.0, 0.0], [0.0, 0.0]),
        ([2.0], [-2.0]),
        ([1.0, 2.0, 3.0, 4.0], [0.0, -1.0]),   # different batch sizes for reals and fakes
        ([-1.0, 0.5], [3.0, 1.0, -0.5]),
    ]
    for real, fake in cases:
        r, f = torch.tensor(real), torch.tensor(fake)
        out = _scalar_loss(fn(r.clone(), f.clone()), name)
        want = (sum(_softplus(-x) for x in real) / len(real) + sum(_softplus(x) for x in fake) / len(fake))
        got = out.item()
        expect(_close(got, want),
               f"for real logits {real} and fake logits {fake} the loss must be "
               f"mean(softplus(-real)) + mean(softplus(fake)) = {want:.5f}, got {got:.5f}"
               f"{_d_hint(got, real, fake)}")

    # Invariant: a confident, correct D has a loss near 0; the loss is finite for huge logits.
    out = _scalar_loss(fn(torch.tensor([200.0, 150.0]), torch.tensor([-200.0])), name).item()
    expect(math.isfinite(out) and abs(out) < 1e-6,
           f"when D is confidently right (real logits 200, 150; fake logit -200) the loss must be "
           f"about 0, got {out}")
    out = _scalar_loss(fn(torch.tensor([-200.0]), torch.tensor([150.0, 200.0])), name).item()
    expect(math.isfinite(out) and abs(out - 375.0) < 1e-3,
           f"when D is confidently wrong (real logit -200; fake logits 150, 200) the loss must be "
           f"200 + 175 = 375, got {out}. log(sigmoid(x)) overflows for large |x|: write it as "
           f"-softplus(-x) (torch.nn.functional.softplus), or use "
           f"F.binary_cross_entropy_with_logits")

    # Gradients flow to both inputs, as the reference's do.
    gen = torch.Generator().manual_seed(11)
    real = (torch.randn(8, generator=gen) * 3).requires_grad_()
    fake = (torch.randn(5, generator=gen) * 3).requires_grad_()
    out = _scalar_loss(fn(real, fake), name)
    expect(out.requires_grad,
           "the loss is not connected to the logits (no gradient would reach D): don't use "
           ".item(), .detach() or numpy inside the loss")
    out.backward()
    r2, f2 = real.detach().clone().requires_grad_(), fake.detach().clone().requires_grad_()
    losses.d_loss(r2, f2, "nonsaturating").backward()
    expect(abs(out.item() - losses.d_loss(r2, f2, "nonsaturating").item()) < 1e-5,
           f"on random logits the loss differs from course_lib's: got {out.item():.5f}, "
           f"expected {losses.d_loss(r2, f2, 'nonsaturating').item():.5f}")
    for label, mine, ref in (("real", real.grad, r2.grad), ("fake", fake.grad, f2.grad)):
        expect(mine is not None and torch.allclose(mine, ref, atol=1e-6),
               f"the gradient with respect to the {label} logits differs from course_lib's")


# --- ex1.2: the generator's loss ----------------------------------------------------------

def _g_hint(got: float, fake: list) -> str:
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    candidates = {
        "that is the saturating loss log(1 - D(G(z))) from the original minimax game: G must "
        "instead maximise log D(G(z)), i.e. minimise softplus(-fake)":
            mean([-_softplus(f) for f in fake]),
        "the sign is flipped: G wants D to say 'real' (positive logits) on its fakes, so its "
        "loss must fall as the fake logits rise: softplus(-fake)":
            mean([_softplus(f) for f in fake]),
        "that is the hinge generator loss (-mean(fake)); this exercise asks for the "
        "non-saturating loss softplus(-fake)":
            mean([-f for f in fake]),
        "that is a sum over the batch; take the mean": sum(_softplus(-f) for f in fake),
    }
    for hint, value in candidates.items():
        if _close(got, value, 1e-4):
            return f" ({hint})"
    return ""


@exercise("ex1.2", notebook="01_gan_basics", function="generator_loss_from_logits",
          points=1, timeout=30)
def check_generator_loss(fn, ns):
    name = "generator_loss_from_logits"
    for fake in ([0.0, 0.0, 0.0], [2.0], [-1.0, 3.0], [0.5, -2.0, 1.0, 4.0]):
        out = _scalar_loss(fn(torch.tensor(fake)), name)
        want = sum(_softplus(-x) for x in fake) / len(fake)
        got = out.item()
        expect(_close(got, want),
               f"for fake logits {fake} the loss must be mean(softplus(-fake)) = {want:.5f}, "
               f"got {got:.5f}{_g_hint(got, fake)}")

    # The point of "non-saturating": a strong gradient when D confidently rejects the fakes,
    # which is exactly the situation early in training.
    fake = torch.tensor([-10.0, -10.0]).requires_grad_()
    out = _scalar_loss(fn(fake), name)
    expect(out.requires_grad, "the loss is not connected to the logits (no gradient would reach G): "
                              "don't use .item(), .detach() or numpy inside the loss")
    out.backward()
    grad = fake.grad
    expect(grad is not None and abs(grad.sum().item() + 1.0) < 1e-3,
           f"when D rejects the fakes (logits -10) the loss must still push hard: d loss / d logits "
           f"should sum to about -1, got {None if grad is None else round(grad.sum().item(), 6)}. "
           f"A vanishing gradient here is the saturating loss log(1 - D(G(z)))")
    big = _scalar_loss(fn(torch.tensor([-200.0])), name).item()
    expect(math.isfinite(big) and abs(big - 200.0) < 1e-3,
           f"for a fake logit of -200 the loss must be 200, got {big}: log(sigmoid(x)) "
           f"underflows; write it as -softplus(-x) (torch.nn.functional.softplus)")

    # Compare with course_lib on random logits (value and gradient).
    gen = torch.Generator().manual_seed(12)
    fake = (torch.randn(9, generator=gen) * 3).requires_grad_()
    out = _scalar_loss(fn(fake), name)
    out.backward()
    ref_in = fake.detach().clone().requires_grad_()
    ref = losses.g_loss(ref_in, "nonsaturating")
    ref.backward()
    expect(abs(out.item() - ref.item()) < 1e-5,
           f"on random logits the loss differs from course_lib's: got {out.item():.5f}, expected "
           f"{ref.item():.5f}")
    expect(fake.grad is not None and torch.allclose(fake.grad, ref_in.grad, atol=1e-6),
           "the gradient with respect to the fake logits differs from course_lib's")


# --- ex1.3: one training step -------------------------------------------------------------

class _SpyG(nn.Module):
    """A tiny generator z [N, 2] -> "images" [N, 3] that counts how many backward passes
    reach its outputs (the D step must not backpropagate into G: fakes are detached)."""

    def __init__(self, gen: torch.Generator):
        super().__init__()
        self.net = nn.Linear(2, 3)
        with torch.no_grad():
            self.net.weight.copy_(torch.randn(3, 2, generator=gen) * 0.5)
            self.net.bias.copy_(torch.randn(3, generator=gen) * 0.1)
        self.backward_passes = 0

    def _count(self, grad):
        self.backward_passes += 1

    def forward(self, z):
        out = torch.tanh(self.net(z))
        if out.requires_grad:
            out.register_hook(self._count)
        return out


class _TinyD(nn.Module):
    """A linear discriminator: "images" [N, 3] -> logits [N]."""

    def __init__(self, gen: torch.Generator | None):
        super().__init__()
        self.net = nn.Linear(3, 1)
        with torch.no_grad():
            if gen is None:  # all zeros: D says 0 ("don't know") to everything
                self.net.weight.zero_(); self.net.bias.zero_()
            else:
                self.net.weight.copy_(torch.randn(1, 3, generator=gen))
                self.net.bias.copy_(torch.randn(1, generator=gen) * 0.1)

    def forward(self, x):
        return self.net(x).reshape(x.shape[0])


class _SpySGD(torch.optim.SGD):
    """SGD that logs its zero_grad/step calls into a shared list, tagged with its name."""

    def __init__(self, params, name, log, lr=0.5):
        super().__init__(params, lr=lr)
        self._name, self._log = name, log

    def zero_grad(self, set_to_none: bool = True):
        self._log.append(f"{self._name}.zero_grad")
        return super().zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        self._log.append(f"{self._name}.step")
        return super().step(closure)


def _setup(seed: int, zero_d: bool = False, stale_grads: bool = False):
    gen = torch.Generator().manual_seed(seed)
    G, D = _SpyG(gen), _TinyD(None if zero_d else gen)
    real = torch.randn(4, 3, generator=gen).clamp(-1, 1)
    z = torch.randn(4, 2, generator=gen)
    log: list[str] = []
    opt_g, opt_d = _SpySGD(G.parameters(), "opt_g", log), _SpySGD(D.parameters(), "opt_d", log)
    if stale_grads:  # what the previous step's backward passes leave behind
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = torch.full_like(p, 0.7)
    return G, D, opt_g, opt_d, real, z, log


def _reference(G, D, real, z):
    """course_lib's train_step on copies (fresh gradients, plain SGD with the same lr)."""
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    for p in list(G.parameters()) + list(D.parameters()):
        p.grad = None
    opt_g = torch.optim.SGD(G.parameters(), lr=0.5)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.5)
    out = reference_train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating")
    return G, D, out


def _losses_of(out) -> tuple[float, float]:
    expect(isinstance(out, dict), f"train_step must return a dict {{'loss_d': ..., 'loss_g': ...}}, "
                                  f"got {type(out).__name__}")
    missing = {"loss_d", "loss_g"} - set(out)
    expect(not missing, f"the returned dict lacks {sorted(missing)}: return "
                        f"{{'loss_d': loss_d.item(), 'loss_g': loss_g.item()}}")
    for key in ("loss_d", "loss_g"):
        expect(isinstance(out[key], (int, float)) and not isinstance(out[key], bool),
               f"out[{key!r}] must be a plain Python float (use .item()), got "
               f"{type(out[key]).__name__}: storing tensors keeps every step's graph in memory")
    return float(out["loss_d"]), float(out["loss_g"])


def _same_params(a: nn.Module, b: nn.Module, tol: float = 1e-5) -> bool:
    return all(torch.allclose(p, q, atol=tol, rtol=0) for p, q in zip(a.parameters(), b.parameters()))


def _params(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def _changed(before: list[torch.Tensor], m: nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, m.parameters()))


@exercise("ex1.3", notebook="01_gan_basics", function="train_step", points=2, timeout=60)
def check_train_step(fn, ns):
    # A student may call their own loss functions from exercises 1.1-1.2; the grader runs
    # this cell on its own, so provide course_lib's under those names if they are missing.
    ns.setdefault("discriminator_loss_from_logits",
                  lambda r, f: losses.d_loss(r, f, "nonsaturating"))
    ns.setdefault("generator_loss_from_logits", lambda f: losses.g_loss(f, "nonsaturating"))

    # 1. An exact case: a D that says 0 to everything has loss_d = 2 ln 2.
    G, D, opt_g, opt_d, real, z, log = _setup(seed=0, zero_d=True)
    ref_G, ref_D, ref = _reference(G, D, real, z)
    loss_d, loss_g = _losses_of(fn(G, D, opt_g, opt_d, real, z))
    expect(abs(loss_d - 2 * LN2) < 1e-5,
           f"with a discriminator whose logits are all 0, loss_d must be 2 ln 2 = {2 * LN2:.5f} "
           f"(the non-saturating D loss of exercise 1.1), got {loss_d:.5f}")

    # 2. Which optimiser steps, how often, and in which order.
    steps = [e for e in log if e.endswith(".step")]
    expect(steps.count("opt_d.step") == 1,
           f"opt_d.step() must be called exactly once per training step, it was called "
           f"{steps.count('opt_d.step')} times" + (
               " — the G step must use opt_g.step(), not opt_d.step()" if steps.count("opt_d.step") > 1 else ""))
    expect(steps.count("opt_g.step") == 1,
           f"opt_g.step() must be called exactly once per training step, it was called "
           f"{steps.count('opt_g.step')} times")
    expect(steps == ["opt_d.step", "opt_g.step"],
           "update D first, then G (the G step uses the freshly updated D); the optimiser "
           f"steps came in the order {steps}")

    # 3. Fakes are detached in the D step: only the G step backpropagates into G.
    expect(G.backward_passes == 1,
           f"gradients flowed back into G's output {G.backward_passes} times; it must be exactly once "
           f"(in the G step). In the D step use fake.detach(): D's loss must not backpropagate "
           f"into G (wasted work, and without zero_grad it corrupts G's update)"
           if G.backward_passes > 1 else
           "no gradient reached G's output: in the G step, compute D(fake) on fakes that are "
           "still connected to G (don't detach them there, and don't make them under "
           "torch.no_grad())")

    # 4. Values and parameters against course_lib's train_step.
    expect(abs(loss_g - ref["loss_g"]) < 1e-5,
           f"loss_g must be the non-saturating G loss of D's logits on the fakes, with D "
           f"already updated: expected {ref['loss_g']:.5f}, got {loss_g:.5f}"
           + (" (a negative loss_g is the saturating loss log(1 - D(G(z))); the non-saturating "
              "one, softplus(-logits), is never negative)" if loss_g < 0 else ""))
    expect(_same_params(D, ref_D), "after the step D's parameters differ from one SGD step on "
                                   "loss_d (reals and detached fakes)")
    expect(_same_params(G, ref_G), "after the step G's parameters differ from one SGD step on "
                                   "loss_g = generator loss of D(G(z))")

    # 5. A general case, twice in a row, with gradients left over from before.
    G, D, opt_g, opt_d, real, z, log = _setup(seed=1, stale_grads=True)
    ref_G, ref_D, ref = _reference(G, D, real, z)
    d_before = _params(D)
    loss_d, loss_g = _losses_of(fn(G, D, opt_g, opt_d, real, z))
    expect(abs(loss_d - ref["loss_d"]) < 1e-5,
           f"loss_d must be the non-saturating D loss on reals and the generated fakes: expected "
           f"{ref['loss_d']:.5f}, got {loss_d:.5f}")
    expect(_changed(d_before, D), "D's parameters did not change: call opt_d.step() after loss_d.backward()")
    expect(_same_params(D, ref_D),
           "D's update used gradients left over from before this step (PyTorch adds new gradients "
           "to .grad): call opt_d.zero_grad() before loss_d.backward()")
    expect(_same_params(G, ref_G),
           "G's update used gradients left over from before (PyTorch adds new gradients to .grad, "
           "and the D step's and G step's backward passes both touch them): call "
           "opt_g.zero_grad() right before loss_g.backward()")
    expect(abs(loss_g - ref["loss_g"]) < 1e-5,
           f"loss_g: expected {ref['loss_g']:.5f}, got {loss_g:.5f}")

    # Second step on the same models: the G step's backward filled D's .grad.
    ref_G2, ref_D2, ref2 = _reference(G, D, real, z)
    loss_d, loss_g = _losses_of(fn(G, D, opt_g, opt_d, real, z))
    expect(_same_params(D, ref_D2) and _same_params(G, ref_G2),
           "a second call of train_step moved the parameters differently from course_lib's: "
           "gradients from the first call leaked into it; zero the gradients of the optimiser "
           "you are about to step, right before each backward()")
    expect(abs(loss_d - ref2["loss_d"]) < 1e-5 and abs(loss_g - ref2["loss_g"]) < 1e-5,
           f"second step: expected losses ({ref2['loss_d']:.5f}, {ref2['loss_g']:.5f}), got "
           f"({loss_d:.5f}, {loss_g:.5f})")
