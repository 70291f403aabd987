"""Checks for ``01_gan_basics``: the non-saturating GAN losses and one training step.

- ex1.1 ``discriminator_loss_from_logits(real_logits, fake_logits)``
- ex1.2 ``generator_loss_from_logits(fake_logits)``
- ex1.3 ``train_step(G, D, opt_g, opt_d, real, z)``
- ex1.4 ``frechet_distance_from_features(real_features, fake_features)``
- ex1.5 ``conv_macs(in_channels, out_channels, kernel_size, stride, padding, size, transposed=False, output_padding=0)``
- ex1.6 ``training_macs(g_macs, d_macs, batch_size, steps)``

The losses are the non-saturating pair of Goodfellow et al. (2014) written with
``softplus`` (see :mod:`course_lib.losses`); the training step is compared with
:func:`course_lib.train.train_step` on a tiny network whose every number is known. The
networks and optimisers of ex1.3 are fixtures (:mod:`course_lib.grade.fixtures`) built
where the student's code runs; the judge builds its own copies to compute the reference.
"""
import math

import torch

from course_lib import losses
from course_lib.grade.api import exercise, expect, type_name, written
from course_lib.grade.calling import Grad
from course_lib.grade.fixtures import Spec, build, load_params
from course_lib.train import train_step as reference_train_step

LN2 = math.log(2)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _scalar_loss(out, name: str) -> torch.Tensor:
    expect(out is not None, f"{name} returned None: did you forget `return`?")
    expect(isinstance(out, torch.Tensor),
           f"{name} must return a torch scalar tensor (so that .backward() works), got "
           f"{type_name(out)} — don't call .item() inside the loss")
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
          points=1, timeout=30, reference="course_lib.losses.d_loss")
def check_discriminator_loss(student):
    name = "discriminator_loss_from_logits"
    # Exact small cases. A D that outputs 0 is unsure (sigmoid(0) = 1/2): loss 2 ln 2.
    cases = [
        ([0.0, 0.0], [0.0, 0.0]),
        ([2.0], [-2.0]),
        ([1.0, 2.0, 3.0, 4.0], [0.0, -1.0]),   # different batch sizes for reals and fakes
        ([-1.0, 0.5], [3.0, 1.0, -0.5]),
    ]
    for real, fake in cases:
        out = _scalar_loss(student(torch.tensor(real), torch.tensor(fake)), name)
        want = (sum(_softplus(-x) for x in real) / len(real) + sum(_softplus(x) for x in fake) / len(fake))
        got = out.item()
        expect(_close(got, want),
               f"for real logits {real} and fake logits {fake} the loss is {want:.5f}, "
               f"got {got:.5f}"
               f"{_d_hint(got, real, fake)}")

    # Invariant: a confident, correct D has a loss near 0; the loss is finite for huge logits.
    out = _scalar_loss(student(torch.tensor([200.0, 150.0]), torch.tensor([-200.0])), name).item()
    expect(math.isfinite(out) and abs(out) < 1e-6,
           f"when D is confidently right (real logits 200, 150; fake logit -200) the loss must be "
           f"about 0, got {out}")
    out = _scalar_loss(student(torch.tensor([-200.0]), torch.tensor([150.0, 200.0])), name).item()
    expect(math.isfinite(out) and abs(out - 375.0) < 1e-3,
           f"when D is confidently wrong (real logit -200; fake logits 150, 200) the loss must be "
           f"200 + 175 = 375, got {out}. log(sigmoid(x)) overflows for large |x|: write it as "
           f"-softplus(-x) (torch.nn.functional.softplus), or use "
           f"F.binary_cross_entropy_with_logits")

    # Gradients flow to both inputs, as the reference's do (the judge asks for them).
    gen = torch.Generator().manual_seed(11)
    real = (torch.randn(8, generator=gen) * 3).requires_grad_()
    fake = (torch.randn(5, generator=gen) * 3).requires_grad_()
    run = student.run([real, fake], grads=[Grad(wrt=(0, 1))])
    out = _scalar_loss(run.value, name)
    expect(out.requires_grad,
           "the loss is not connected to the logits (no gradient would reach D): don't use "
           ".item(), .detach() or numpy inside the loss")
    ref = losses.d_loss(real, fake, "nonsaturating")
    ref_real, ref_fake = torch.autograd.grad(ref, [real, fake])
    expect(abs(out.item() - ref.item()) < 1e-5,
           f"on random logits the loss differs from course_lib's: got {out.item():.5f}, "
           f"expected {ref.item():.5f}")
    mine = run.grads[0] or [None, None]
    for label, got, want in (("real", mine[0], ref_real), ("fake", mine[1], ref_fake)):
        expect(isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want, atol=1e-6),
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
          points=1, timeout=30, reference="course_lib.losses.g_loss")
def check_generator_loss(student):
    name = "generator_loss_from_logits"
    for fake in ([0.0, 0.0, 0.0], [2.0], [-1.0, 3.0], [0.5, -2.0, 1.0, 4.0]):
        out = _scalar_loss(student(torch.tensor(fake)), name)
        want = sum(_softplus(-x) for x in fake) / len(fake)
        got = out.item()
        expect(_close(got, want),
               f"for fake logits {fake} the loss is {want:.5f}, "
               f"got {got:.5f}{_g_hint(got, fake)}")

    # The point of "non-saturating": a strong gradient when D confidently rejects the fakes,
    # which is exactly the situation early in training.
    fake = torch.tensor([-10.0, -10.0]).requires_grad_()
    run = student.run([fake], grads=[Grad(wrt=(0,))])
    out = _scalar_loss(run.value, name)
    expect(out.requires_grad, "the loss is not connected to the logits (no gradient would reach G): "
                              "don't use .item(), .detach() or numpy inside the loss")
    grad = (run.grads[0] or [None])[0]
    grad = grad if isinstance(grad, torch.Tensor) else None
    expect(grad is not None and abs(grad.sum().item() + 1.0) < 1e-3,
           f"when D rejects the fakes (logits -10) the loss must still push hard: d loss / d logits "
           f"should sum to about -1, got {None if grad is None else round(grad.sum().item(), 6)}. "
           f"A vanishing gradient here is the saturating loss log(1 - D(G(z)))")
    big = _scalar_loss(student(torch.tensor([-200.0])), name).item()
    expect(math.isfinite(big) and abs(big - 200.0) < 1e-3,
           f"for a fake logit of -200 the loss must be 200, got {big}: log(sigmoid(x)) "
           f"underflows; write it as -softplus(-x) (torch.nn.functional.softplus)")

    # Compare with course_lib on random logits (value and gradient).
    gen = torch.Generator().manual_seed(12)
    fake = (torch.randn(9, generator=gen) * 3).requires_grad_()
    run = student.run([fake], grads=[Grad(wrt=(0,))])
    out = _scalar_loss(run.value, name)
    ref = losses.g_loss(fake, "nonsaturating")
    (ref_grad,) = torch.autograd.grad(ref, [fake])
    expect(abs(out.item() - ref.item()) < 1e-5,
           f"on random logits the loss differs from course_lib's: got {out.item():.5f}, expected "
           f"{ref.item():.5f}")
    got = (run.grads[0] or [None])[0]
    expect(isinstance(got, torch.Tensor) and got.shape == ref_grad.shape and torch.allclose(got, ref_grad, atol=1e-6),
           "the gradient with respect to the fake logits differs from course_lib's")


# --- ex1.3: one training step -------------------------------------------------------------
# G: z [N, 2] -> "images" [N, 3] (a spy that logs "G.backward" for every backward pass into
# its output: the D step must not backpropagate into G); D: [N, 3] -> logits [N]; two spy
# SGD optimisers (lr 0.5) that log their zero_grad/step calls. See course_lib.grade.fixtures.

LR = 0.5


def _setup(seed: int, zero_d: bool = False, stale_grads: bool = False):
    """Specs of G, D and their optimisers, and the batch (real [4, 3], z [4, 2])."""
    stale = 0.7 if stale_grads else None   # what the previous step's backward passes leave behind
    G = Spec("spy_generator", seed=10 * seed + 1, name="G", stale_grad=stale)
    D = Spec("linear_discriminator", seed=10 * seed + 2, zero=zero_d, stale_grad=stale)
    opt_g = Spec("spy_sgd", module=G, lr=LR, name="opt_g")
    opt_d = Spec("spy_sgd", module=D, lr=LR, name="opt_d")
    gen = torch.Generator().manual_seed(10 * seed + 3)
    real = torch.randn(4, 3, generator=gen).clamp(-1, 1)
    z = torch.randn(4, 2, generator=gen)
    return G, D, opt_g, opt_d, real, z


def _reference(G_spec, D_spec, real, z, G_params=None, D_params=None):
    """course_lib's train_step on the judge's own copies (fresh gradients, plain SGD)."""
    G, D = build(G_spec), build(D_spec)
    if G_params is not None:
        load_params(G, G_params)
        load_params(D, D_params)
    for p in list(G.parameters()) + list(D.parameters()):
        p.grad = None
    opt_g = torch.optim.SGD(G.parameters(), lr=LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=LR)
    out = reference_train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating")
    return [p.detach() for p in G.parameters()], [p.detach() for p in D.parameters()], out


def _losses_of(out) -> tuple[float, float]:
    expect(isinstance(out, dict), f"train_step must return a dict {{'loss_d': ..., 'loss_g': ...}}, "
                                  f"got {type_name(out)}")
    missing = {"loss_d", "loss_g"} - set(out)
    expect(not missing, f"the returned dict lacks {sorted(missing)}: return "
                        f"{{'loss_d': loss_d.item(), 'loss_g': loss_g.item()}}")
    for key in ("loss_d", "loss_g"):
        expect(isinstance(out[key], (int, float)) and not isinstance(out[key], bool),
               f"out[{key!r}] must be a plain Python float (use .item()), got "
               f"{type_name(out[key])}: storing tensors keeps every step's graph in memory")
    return float(out["loss_d"]), float(out["loss_g"])


def _params(run, spec) -> list[torch.Tensor]:
    params = run.report(spec).get("params")
    expect(isinstance(params, list) and all(isinstance(p, torch.Tensor) for p in params),
           "the grader could not read the networks' parameters after the step")
    return params


def _same(a: list, b: list, tol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(p.shape == q.shape and torch.allclose(p, q, atol=tol, rtol=0)
                                    for p, q in zip(a, b))


@exercise("ex1.3", notebook="01_gan_basics", function="train_step", points=2, timeout=60,
          reference="course_lib.train.train_step",
          # A student's train_step may call their own losses from exercises 1.1-1.2; the
          # grader runs this cell on its own, so course_lib's stand in when they are missing.
          provides={"discriminator_loss_from_logits": "course_lib.losses.d_loss",
                    "generator_loss_from_logits": "course_lib.losses.g_loss"})
def check_train_step(student):
    # 1. An exact case: a D that says 0 to everything has loss_d = 2 ln 2.
    G, D, opt_g, opt_d, real, z = _setup(seed=0, zero_d=True)
    ref_G, ref_D, ref = _reference(G, D, real, z)
    run = student.run([G, D, opt_g, opt_d, real, z])
    loss_d, loss_g = _losses_of(run.value)
    expect(abs(loss_d - 2 * LN2) < 1e-5,
           f"with a discriminator whose logits are all 0, loss_d must be 2 ln 2 = {2 * LN2:.5f} "
           f"(the non-saturating D loss of exercise 1.1), got {loss_d:.5f}")

    # 2. Which optimiser steps, how often, and in which order (the spies' log).
    steps = [e for e in run.events if e.endswith(".step")]
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
    passes = run.events.count("G.backward")
    expect(passes == 1,
           f"gradients flowed back into G's output {passes} times; it must be exactly once "
           f"(in the G step). In the D step use fake.detach(): D's loss must not backpropagate "
           f"into G (wasted work, and without zero_grad it corrupts G's update)"
           if passes > 1 else
           "no gradient reached G's output: in the G step, compute D(fake) on fakes that are "
           "still connected to G (don't detach them there, and don't make them under "
           "torch.no_grad())")

    # 4. Values and parameters against course_lib's train_step.
    expect(abs(loss_g - ref["loss_g"]) < 1e-5,
           f"loss_g must be the non-saturating G loss of D's logits on the fakes, with D "
           f"already updated: expected {ref['loss_g']:.5f}, got {loss_g:.5f}"
           + (" (a negative loss_g is the saturating loss log(1 - D(G(z))); the non-saturating "
              "one, softplus(-logits), is never negative)" if loss_g < 0 else ""))
    expect(_same(_params(run, D), ref_D), "after the step D's parameters differ from one SGD step on "
                                          "loss_d (reals and detached fakes)")
    expect(_same(_params(run, G), ref_G), "after the step G's parameters differ from one SGD step on "
                                          "loss_g = generator loss of D(G(z))")

    # 5. A general case, twice in a row, with gradients left over from before.
    G, D, opt_g, opt_d, real, z = _setup(seed=1, stale_grads=True)
    ref_G, ref_D, ref = _reference(G, D, real, z)
    d_before = [p.detach() for p in build(D).parameters()]
    run = student.run([G, D, opt_g, opt_d, real, z])
    loss_d, loss_g = _losses_of(run.value)
    expect(abs(loss_d - ref["loss_d"]) < 1e-5,
           f"loss_d must be the non-saturating D loss on reals and the generated fakes: expected "
           f"{ref['loss_d']:.5f}, got {loss_d:.5f}")
    d_after, g_after = _params(run, D), _params(run, G)
    expect(not _same(d_before, d_after, 0.0), "D's parameters did not change: call opt_d.step() after "
                                              "loss_d.backward()")
    expect(_same(d_after, ref_D),
           "D's update used gradients left over from before this step (PyTorch adds new gradients "
           "to .grad): call opt_d.zero_grad() before loss_d.backward()")
    expect(_same(g_after, ref_G),
           "G's update used gradients left over from before (PyTorch adds new gradients to .grad, "
           "and the D step's and G step's backward passes both touch them): call "
           "opt_g.zero_grad() right before loss_g.backward()")
    expect(abs(loss_g - ref["loss_g"]) < 1e-5,
           f"loss_g: expected {ref['loss_g']:.5f}, got {loss_g:.5f}")

    # Second step on the same models: the G step's backward filled D's .grad.
    ref_G2, ref_D2, ref2 = _reference(G, D, real, z, g_after, d_after)
    run = student.run([G, D, opt_g, opt_d, real, z])
    loss_d, loss_g = _losses_of(run.value)
    expect(_same(_params(run, D), ref_D2) and _same(_params(run, G), ref_G2),
           "a second call of train_step moved the parameters differently from course_lib's: "
           "gradients from the first call leaked into it; zero the gradients of the optimiser "
           "you are about to step, right before each backward()")
    expect(abs(loss_d - ref2["loss_d"]) < 1e-5 and abs(loss_g - ref2["loss_g"]) < 1e-5,
           f"second step: expected losses ({ref2['loss_d']:.5f}, {ref2['loss_g']:.5f}), got "
           f"({loss_d:.5f}, {loss_g:.5f})")


# --- ex1.4: the Fréchet distance from features ---------------------------------------------

def _fd_parts(real: torch.Tensor, fake: torch.Tensor, ddof: int = 1):
    """(squared mean distance, trace of sigma_r + sigma_f, trace of (sigma_r sigma_f)^(1/2),
    trace of the entrywise sqrt) in float64, with covariances normalised by N - ddof."""
    real, fake = real.double(), fake.double()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r = (real - mu_r).T @ (real - mu_r) / (len(real) - ddof)
    cov_f = (fake - mu_f).T @ (fake - mu_f) / (len(fake) - ddof)
    evals = torch.linalg.eigvals(cov_r @ cov_f).real.clamp(min=0)
    entrywise = (cov_r * cov_f).clamp(min=0).sqrt().trace()
    return (((mu_r - mu_f) ** 2).sum().item(), (cov_r.trace() + cov_f.trace()).item(),
            evals.sqrt().sum().item(), entrywise.item())


def _fd_hint(got: float, real: torch.Tensor, fake: torch.Tensor) -> str:
    means, traces, root, entrywise = _fd_parts(real, fake)
    b_means, b_traces, b_root, _ = _fd_parts(real, fake, ddof=0)
    want = means + traces - 2 * root
    candidates = {
        "that is only the distance between the means: the covariances count too": means,
        "the cross term is 2 Tr((sigma_r sigma_f)^(1/2)), twice the trace of the matrix square "
        "root of the product": means + traces - root,
        "the square root is a matrix square root of sigma_r @ sigma_f (its trace is the sum of the "
        "square roots of that product's eigenvalues), not the square root of each entry":
            means + traces - 2 * entrywise,
        "the covariances divide by N (np.cov's bias=True); use the unbiased N - 1, as np.cov and "
        "torch.cov do by default": b_means + b_traces - 2 * b_root,
        "that is the square root of the Fréchet distance; FID-style distances are not square-rooted":
            math.sqrt(max(want, 0.0)),
    }
    for hint, value in candidates.items():
        if _close(got, value, 1e-4) and not _close(got, want, 1e-4):
            return f" ({hint})"
    return ""


def _fd_value(out, name: str = "frechet_distance_from_features") -> float:
    expect(out is not None, f"{name} returned None: did you forget `return`?")
    if isinstance(out, torch.Tensor):
        expect(out.numel() == 1, f"{name} must return one number, got a tensor of shape {tuple(out.shape)}")
        out = out.item()
    expect(isinstance(out, (int, float)) and not isinstance(out, bool),
           f"{name} must return a number (a Python float), got {type_name(out)}")
    expect(math.isfinite(out), f"{name} returned {out}; expected a finite distance")
    return float(out)


def _fd_reference(real: torch.Tensor, fake: torch.Tensor) -> float:
    from course_lib.metrics.fid import feature_stats, frechet_distance

    return frechet_distance(*feature_stats(real.numpy()), *feature_stats(fake.numpy()))


@exercise("ex1.4", notebook="01_gan_basics", function="frechet_distance_from_features", points=2,
          timeout=60, reference=("course_lib.metrics.frechet_distance",
                                 "course_lib.metrics.fid.frechet_distance",
                                 "course_lib.metrics.fid.feature_stats"))
def check_frechet_distance(student):
    gen = torch.Generator().manual_seed(14)
    real = torch.randn(40, 3, generator=gen, dtype=torch.float64)

    same = _fd_value(student(real, real.clone()))
    expect(abs(same) < 1e-6, f"two identical feature sets must be at distance 0, got {same:.6g}")

    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    got = _fd_value(student(real, real + shift))
    expect(_close(got, 5.25, 1e-5),
           f"moving every feature vector by (1, -2, 0.5) leaves both covariances equal, so the "
           f"distance is the squared length of the shift, 5.25; got {got:.6g}{_fd_hint(got, real, real + shift)}")

    # One dimension, four values each: means 2.5 and 0, unbiased standard deviations 1.29 and 2.58.
    a = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    b = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]], dtype=torch.float64)
    want = _fd_reference(a, b)
    got = _fd_value(student(a, b))
    expect(_close(got, want, 1e-5),
           f"in one dimension the distance is (mean_r - mean_f)^2 + (std_r - std_f)^2 with the "
           f"unbiased standard deviations: for {a.flatten().tolist()} and "
           f"{[round(v, 4) for v in b.flatten().tolist()]} that is {want:.5f}, got {got:.5f}{_fd_hint(got, a, b)}")

    # Correlated features whose covariances do not commute, and two sample sizes.
    mix_r = torch.tensor([[1.0, 0.8, 0.0, 0.0], [0.0, 0.6, 0.3, 0.0], [0.0, 0.0, 1.2, -0.5],
                          [0.2, 0.0, 0.0, 0.7]], dtype=torch.float64)
    mix_f = torch.tensor([[0.5, 0.0, 0.9, 0.0], [0.7, 1.1, 0.0, 0.0], [0.0, -0.4, 0.6, 0.2],
                          [0.0, 0.0, 0.3, 1.3]], dtype=torch.float64)
    real = torch.randn(60, 4, generator=gen, dtype=torch.float64) @ mix_r
    fake = torch.randn(45, 4, generator=gen, dtype=torch.float64) @ mix_f + 0.3
    real_copy, fake_copy = real.clone(), fake.clone()
    run = student.run([real, fake])
    got = _fd_value(run.value)
    want = _fd_reference(real, fake)
    expect(_close(got, want, 1e-4),
           f"on correlated random features (60 real, 45 fake, 4 dimensions) the distance is "
           f"{want:.5f}, got {got:.5f}{_fd_hint(got, real, fake)}")
    expect(all(isinstance(x, torch.Tensor) and torch.equal(x, y)
               for x, y in zip(run.args, (real_copy, fake_copy))),
           "frechet_distance_from_features changed its input features; work on copies")

    # float32 features, as a feature extractor gives them, more dimensions than in the cases above.
    real = torch.randn(200, 16, generator=gen)
    fake = torch.randn(150, 16, generator=gen) * 1.5 + 0.1
    got = _fd_value(student(real, fake))
    want = _fd_reference(real.double(), fake.double())
    expect(_close(got, want, 1e-3),
           f"on float32 features [200, 16] and [150, 16] the distance is {want:.4f}, got {got:.4f}"
           f"{_fd_hint(got, real, fake)}")


# --- ex1.5: MACs of a convolution and of a transposed convolution ------------------------------

def _macs_pair(out, name: str = "conv_macs") -> tuple[int, int]:
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"{name} must return a pair (macs, output_size), got {type_name(out)}")
    values = []
    for label, v in zip(("macs", "output_size"), out):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        expect(isinstance(v, int) and not isinstance(v, bool),
               f"{label} must be a whole number (a Python int), got {type_name(v)}")
        values.append(v)
    return values[0], values[1]


def _layer(in_c, out_c, k, stride, padding, transposed, output_padding=0):
    if transposed:
        return torch.nn.ConvTranspose2d(in_c, out_c, k, stride=stride, padding=padding,
                                        output_padding=output_padding, bias=False)
    return torch.nn.Conv2d(in_c, out_c, k, stride=stride, padding=padding, bias=False)


def _true_macs(in_c, out_c, k, stride, padding, size, transposed, output_padding=0) -> tuple[int, int]:
    """Counted by course_lib's profiler on the real layer (on the meta device: no arithmetic)."""
    from course_lib.compress.profile import count_macs

    with torch.device("meta"):
        layer = _layer(in_c, out_c, k, stride, padding, transposed, output_padding)
        out = layer(torch.zeros(1, in_c, size, size))
    return count_macs(layer, (1, in_c, size, size)), out.shape[-1]


def _macs_hint(got_macs, got_size, case) -> str:
    in_c, out_c, k, stride, padding, size, transposed, op = case
    want_macs, want_size = _true_macs(*case)
    conv_size = (size + 2 * padding - k) // stride + 1
    per_out = in_c * k * k
    hints = []
    if got_size != want_size:
        if transposed and got_size == conv_size:
            hints.append("that is a convolution's output size: a transposed convolution goes the "
                         "other way, it enlarges (stride 2 roughly doubles the size)")
        elif transposed and got_size == want_size - op:
            hints.append("the output_padding adds rows and columns to a transposed convolution's "
                         "output")
    elif transposed and got_macs == size * size * out_c * per_out:
        hints.append("that counts one kernel per *input* position (the useful work); the course "
                     "counts, as torchprofile and GAN Compression do, in_channels x k x k MACs per "
                     "*output* element, also for a transposed convolution")
    elif got_macs == want_size * want_size * out_c * in_c * k:
        hints.append("a k x k kernel has k*k weights per input channel")
    elif got_macs == want_size * want_size * per_out:
        hints.append("every output channel has its own kernel: multiply by out_channels too")
    elif got_macs == want_size * want_size * out_c * k * k:
        hints.append("each output element sums over all in_channels")
    return f" ({'; '.join(hints)})" if hints else ""


@exercise("ex1.5", notebook="01_gan_basics", function="conv_macs", points=2, timeout=30,
          reference=("course_lib.gan_cost.conv_macs", "course_lib.compress.profile.count_macs",
                     # torchprofile (in requirements.txt) counts MACs the same way
                     "torchprofile.profile_macs", "torchprofile.trace.trace"))
def check_conv_macs(student):
    # (in, out, kernel, stride, padding, size, transposed, output_padding)
    cases = [
        (3, 32, 4, 2, 1, 32, False, 0),        # D's first layer
        (64, 128, 4, 2, 1, 8, False, 0),       # D, deeper
        (128, 1, 4, 1, 0, 4, False, 0),        # D's last layer: one logit
        (128, 128, 4, 1, 0, 1, True, 0),       # G's first layer: z (1x1) -> 4x4
        (128, 64, 4, 2, 1, 4, True, 0),        # G: 4x4 -> 8x8
        (32, 3, 4, 2, 1, 16, True, 0),         # G's last layer
        (3, 64, 7, 1, 0, 262, False, 0),       # CycleGAN's stem (after ReflectionPad(3))
        (256, 128, 3, 2, 1, 64, True, 1),      # CycleGAN's up-sampling, output_padding 1
        (5, 7, 3, 3, 2, 11, False, 0),         # odd sizes: the division rounds down
        (6, 4, 5, 3, 2, 5, True, 2),
    ]
    for case in cases:
        in_c, out_c, k, stride, padding, size, transposed, op = case
        kwargs = {"transposed": transposed}
        if op:
            kwargs["output_padding"] = op
        got_macs, got_size = _macs_pair(student(in_c, out_c, k, stride, padding, size, **kwargs))
        want_macs, want_size = _true_macs(*case)
        what = (f"{'ConvTranspose2d' if transposed else 'Conv2d'}({in_c}, {out_c}, kernel_size={k}, "
                f"stride={stride}, padding={padding}" + (f", output_padding={op}" if op else "")
                + f") on a {size}x{size} input")
        expect(got_size == want_size,
               f"{what}: the output is {want_size}x{want_size}, got {got_size}{_macs_hint(got_macs, got_size, case)}")
        expect(got_macs == want_macs,
               f"{what}: {want_macs:,} MACs, got {got_macs:,}{_macs_hint(got_macs, got_size, case)}")
    # The default is a plain convolution.
    got = _macs_pair(student(3, 8, 3, 1, 1, 10))
    expect(got == _true_macs(3, 8, 3, 1, 1, 10, False), "called without `transposed`, conv_macs must "
                                                        "count an ordinary convolution")


# --- ex1.6: the cost of a training run -----------------------------------------------------

def _train_hint(got: float, g: int, d: int, b: int, steps: int) -> str:
    n = b * steps
    candidates = {
        "that counts forward passes only; a backward pass costs about twice its forward pass":
            n * (g + 3 * d),
        "D runs forward and backward three times a step: on the reals and on the fakes in D's step, "
        "and once more in the G step (G's gradient comes back through D)": n * (3 * g + 6 * d),
        "D's step sees two batches, the reals and the fakes": n * (3 * g + 3 * d),
        "G runs forward once per step: the G step reuses the fakes of the D step": n * (4 * g + 9 * d),
        "a backward pass costs about twice its forward pass, so forward + backward is 3x":
            n * (2 * g + 6 * d),
        "that is the cost of one step; multiply by the number of steps": b * (3 * g + 9 * d),
        "the MACs are per image: multiply by the batch size": steps * (3 * g + 9 * d),
    }
    for hint, value in candidates.items():
        if _close(got, value, 1e-9):
            return f" ({hint})"
    return ""


@exercise("ex1.6", notebook="01_gan_basics", function="training_macs", points=1, timeout=30,
          reference="course_lib.gan_cost.training_macs")
def check_training_macs(student):
    from course_lib.gan_cost import training_macs as reference

    cases = [(1, 0, 1, 1), (0, 1, 1, 1), (10, 0, 4, 1), (0, 10, 1, 5), (7, 3, 2, 3),
             (22_544_384, 4_589_568, 64, 1_000), (56_800_000_000, 10_000_000_000, 1, 266_800)]
    for g, d, b, steps in cases:
        out = student(g, d, b, steps)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        expect(isinstance(out, (int, float)) and not isinstance(out, bool),
               f"training_macs must return a number, got {type_name(out)}")
        want = reference(g, d, b, steps)
        what = f"G {g:,} and D {d:,} MACs per image, batch {b}, {steps:,} steps"
        expect(_close(float(out), float(want), 1e-9),
               f"{what}: {want:,} MACs in all, got {out:,.0f}{_train_hint(float(out), g, d, b, steps)}")


# --- written questions (marked by hand) -------------------------------------------------------

written("q1.1", notebook="01_gan_basics",
        prompt="Why detach the fakes in D's step but not in G's? What would each change break or cost?")
written("q1.2", notebook="01_gan_basics",
        prompt="CycleGAN has fewer parameters than ResNet-50 yet 14x its MACs: where does its cost come from?")
