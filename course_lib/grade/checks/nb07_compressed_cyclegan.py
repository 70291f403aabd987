"""Checks for ``07_compressed_cyclegan``: exercise 7.1 ``cycle_consistency_loss``."""
import torch

from course_lib.grade.api import exercise, expect, type_name
from course_lib.grade.calling import Grad

NOTEBOOK = "07_compressed_cyclegan"


def reference(real_a, rec_a, real_b, rec_b, lambda_cycle=10.0):
    return lambda_cycle * ((rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean())


def _scalar(out, what):
    expect(isinstance(out, torch.Tensor) and out.numel() == 1,
           f"cycle_consistency_loss must return a scalar tensor, got {type_name(out)}"
           + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""))
    return float(out.detach())


@exercise("ex7.1", notebook=NOTEBOOK, function="cycle_consistency_loss", points=2, timeout=60,
          reference=("course_lib.losses.cycle_consistency_loss", "course_lib.losses.cycle_loss"))
def check_cycle_loss(student):
    a = torch.zeros(2, 3, 4, 4)
    b = torch.zeros(2, 3, 4, 4)
    got = _scalar(student(a, a + 0.5, b, b.clone(), 10.0), "A off by 0.5")
    expect(abs(got - 2.5) > 1e-6 or abs(got - 5.0) < 1e-5,
           "A's round trip 0.5 off everywhere gives 2.5 with lambda 10: that is the squared "
           "error; the cycle loss is L1 (mean absolute difference), which blurs less")
    expect(abs(got - 5.0) < 1e-5, f"A's round trip 0.5 off everywhere, B's exact, lambda 10 must "
                                  f"give 10 * 0.5 = 5, got {got:.5g}")
    got = _scalar(student(a, a.clone(), b, b - 0.25, 10.0), "B off by 0.25")
    expect(abs(got - 2.5) < 1e-5, f"B's round trip 0.25 off everywhere, A's exact, lambda 10 must "
                                  f"give 2.5, got {got:.5g}: both directions count")
    got = _scalar(student(a, a + 0.5, b, b.clone(), 1.0), "lambda 1")
    expect(abs(got - 0.5) < 1e-5, f"with lambda_cycle 1 the loss must be 0.5, got {got:.5g}")
    g = torch.Generator().manual_seed(0)
    real_a, rec_a, real_b, rec_b = (torch.rand(3, 3, 8, 8, generator=g) * 2 - 1 for _ in range(4))
    rec_a.requires_grad_()
    rec_b.requires_grad_()
    run = student.run([real_a, rec_a, real_b, rec_b, 10.0], grads=[Grad(wrt=(1, 3))])
    got = _scalar(run.value, "random images")
    want = reference(real_a, rec_a, real_b, rec_b)
    expect(abs(got - float(want.detach())) < 1e-4,
           f"on random images expected {float(want.detach()):.5g}, got {got:.5g}")
    grads = run.grads[0] or [None, None]
    mine = torch.autograd.grad(want, [rec_a, rec_b])
    expect(all(gr is not None and torch.allclose(gr, m, atol=1e-6) for gr, m in zip(grads, mine)),
           "the gradient with respect to the reconstructions differs from the L1 loss's (is one "
           "of them detached?)")
