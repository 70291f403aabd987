"""Checks for ``05_distillation``: exercise 5.1 ``distillation_loss``.

    distillation_loss(student_out, teacher_out, student_feats, teacher_feats, mapper_weights,
                      lambda_recon=10.0, lambda_distill=0.01)
      = lambda_recon * mean|student_out - teacher_out|
      + lambda_distill * sum_l mean((conv1x1(student_feats[l], mapper_weights[l]) - teacher_feats[l])^2)

The teacher is a fixed target: no gradient may reach ``teacher_out`` or ``teacher_feats``.
"""
import torch
import torch.nn.functional as F

from course_lib.grade.api import exercise, expect, type_name
from course_lib.grade.calling import Grad

NOTEBOOK = "05_distillation"


def reference(s_out, t_out, s_feats, t_feats, weights, lambda_recon=10.0, lambda_distill=0.01):
    pixel = (s_out - t_out.detach()).abs().mean()
    feature = sum(((F.conv2d(s, w) - t.detach()) ** 2).mean() for s, w, t in zip(s_feats, weights, t_feats))
    return lambda_recon * pixel + lambda_distill * feature


def _case(seed, n=2, size=8, channels=((2, 4), (3, 6))):
    g = torch.Generator().manual_seed(seed)
    s_out = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    t_out = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    s_feats = [torch.randn(n, cs, size // 2, size // 2, generator=g) for cs, _ in channels]
    t_feats = [torch.randn(n, ct, size // 2, size // 2, generator=g) for _, ct in channels]
    weights = [torch.randn(ct, cs, 1, 1, generator=g) * 0.5 for cs, ct in channels]
    return s_out, t_out, s_feats, t_feats, weights


def _value(out, what):
    expect(isinstance(out, torch.Tensor) and out.numel() == 1,
           f"distillation_loss must return a scalar tensor, got {type_name(out)}"
           + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""))
    expect(torch.isfinite(out).all(), f"{what}: the loss is NaN or inf")
    return float(out.detach())


@exercise("ex5.1", notebook=NOTEBOOK, function="distillation_loss", points=3, timeout=60,
          reference=("course_lib.compress.distill.distillation_loss",
                     "course_lib.compress.distill.distill_losses",
                     "course_lib.compress.distill.feature_loss",
                     "course_lib.compress.distill.pixel_loss"))
def check_distillation_loss(student):
    # Pixel part alone: lambda_distill = 0; outputs differ by exactly 0.5 everywhere.
    s_out, t_out, s_feats, t_feats, weights = _case(0)
    half = _value(student(t_out + 0.5, t_out, s_feats, t_feats, weights, 10.0, 0.0), "pixel part")
    if abs(half - 10 * 0.25) < 1e-4:
        expect(False, "outputs 0.5 apart everywhere give 2.5 with lambda_recon 10: that is the "
                      "squared error. The pixel loss is L1: the mean absolute difference")
    expect(abs(half - 5.0) < 1e-4, f"outputs 0.5 apart everywhere, lambda_recon 10 and "
                                   f"lambda_distill 0 must give 10 * 0.5 = 5, got {half:.5g}")
    one = _value(student(t_out + 0.5, t_out, s_feats, t_feats, weights, 1.0, 0.0), "pixel part")
    expect(abs(one - 0.5) < 1e-4, f"with lambda_recon 1 the pixel part must be 0.5, got {one:.5g}: "
                                  "multiply the L1 by lambda_recon")

    # Feature part alone, where student and teacher features have the same channels: a
    # mapper that is not the identity must change the loss.
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 3, 4, 4, generator=g)]
    t = [torch.randn(2, 3, 4, 4, generator=g)]
    w = [torch.randn(3, 3, 1, 1, generator=g)]
    got = _value(student(t_out, t_out, s, t, w, 10.0, 1.0), "feature part")
    want = float(reference(t_out, t_out, s, t, w, 10.0, 1.0))
    unmapped = float(((s[0] - t[0]) ** 2).mean())
    expect(abs(got - unmapped) > 1e-4 or abs(got - want) < 1e-4,
           "the feature loss compares the student's features with the teacher's directly: map "
           "the student's features through the 1x1 conv first, F.conv2d(student_feat, weight)")
    expect(abs(got - want) < 1e-4 * (1 + abs(want)),
           f"one layer (3 -> 3 channels), lambda_distill 1: expected MSE(conv1x1(s, w), t) = "
           f"{want:.5g}, got {got:.5g}")

    # The full loss on two layers with other channel counts, and its gradients.
    s_out, t_out, s_feats, t_feats, weights = _case(2)
    want = float(reference(s_out, t_out, s_feats, t_feats, weights))
    layers = [float(((F.conv2d(s, w) - t) ** 2).mean()) for s, w, t in zip(s_feats, weights, t_feats)]
    pixel = float((s_out - t_out).abs().mean())
    s_out.requires_grad_()
    t_out.requires_grad_()
    run = student.run([s_out, t_out, s_feats, t_feats, weights, 10.0, 0.01],
                      grads=[Grad(wrt=(0, 1))])
    got = _value(run.value, "two layers")
    if abs(got - (10 * pixel + 0.01 * sum(layers) / 2)) < 1e-5:
        expect(False, "the layers' feature losses are averaged; GAN Compression sums them over layers")
    expect(abs(got - want) < 1e-5 * (1 + abs(want)),
           f"two layers (2 -> 4 and 3 -> 6 channels), lambda_recon 10, lambda_distill 0.01: "
           f"expected {want:.6g}, got {got:.6g}")
    grads = run.grads[0] or [None, None]
    g_student, g_teacher = grads[0], grads[1]
    (want_grad,) = torch.autograd.grad(reference(s_out, t_out, s_feats, t_feats, weights), [s_out])
    expect(g_student is not None and torch.allclose(g_student, want_grad, atol=1e-6),
           "the gradient with respect to student_out differs from the L1 loss's")
    expect(g_teacher is None or float(g_teacher.abs().max()) == 0.0,
           "a gradient reaches teacher_out: the teacher is a fixed target, detach it "
           "(teacher_out.detach(), and the teacher's features too)")
