"""Checks for ``00_welcome``: exercise 0.1, ``to_unit_range``."""
import torch

from course_lib.grade.api import exercise, expect, type_name
from course_lib.plotting import to_unit_range as reference


def _call(student, x: torch.Tensor) -> torch.Tensor:
    """Call the student's function, and check it returned a tensor."""
    out = student(x)
    expect(isinstance(out, torch.Tensor),
           f"to_unit_range must return a torch.Tensor, got {type_name(out)} "
           f"(did you forget `return`?)")
    return out


@exercise("ex0.1", notebook="00_welcome", function="to_unit_range", points=1, timeout=30,
          reference="course_lib.plotting.to_unit_range")
def check_to_unit_range(student):
    # Exact small cases: the two ends and the middle of the range.
    x = torch.tensor([-1.0, 0.0, 1.0])
    out = _call(student, x)
    expect(out.shape == x.shape, f"the shape must stay {tuple(x.shape)}, got {tuple(out.shape)}")
    expect(out.dtype.is_floating_point, f"the result must be a float tensor, got {out.dtype}")
    for value, want, got in zip(x.tolist(), [0.0, 0.5, 1.0], out.tolist()):
        hint = ""
        if abs(got - (value + 1) / 255) < 1e-6:
            hint = " (that is (x + 1) / 255: the range of x + 1 is [0, 2], so divide by 2)"
        elif abs(got - value / 2) < 1e-6:
            hint = " (that is x / 2: shift by 1 before halving)"
        elif abs(got - (value + 1) * 127.5) < 1e-4:
            hint = " (that is the 0..255 pixel scale; this function returns [0, 1])"
        expect(abs(got - want) < 1e-6, f"{value:g} must map to {want:g}, got {got:.4g}{hint}")

    # Clamping: a generator's output can overshoot [-1, 1]; the result must stay in [0, 1].
    x = torch.tensor([-3.0, -1.5, 1.5, 3.0])
    out = _call(student, x)
    for value, want, got in zip(x.tolist(), [0.0, 0.0, 1.0, 1.0], out.tolist()):
        expect(abs(got - want) < 1e-6,
               f"values outside [-1, 1] must be clamped: {value:g} must give {want:g}, got "
               f"{got:.4g} (clamp the result to [0, 1], e.g. with .clamp(0, 1))")

    # Shape kept for an image batch, and no change to the caller's tensor.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 7, generator=gen) * 1.5
    run = student.run([x])
    out = run.value
    expect(isinstance(out, torch.Tensor), f"to_unit_range must return a tensor, got {type_name(out)}")
    expect(torch.equal(run.args[0], x),
           "to_unit_range changed its input in place (e.g. add_ / clamp_): the caller's images "
           "were modified; compute a new tensor instead")
    expect(out.shape == x.shape, f"a batch of shape {tuple(x.shape)} must keep its shape, "
                                 f"got {tuple(out.shape)}")
    expect(out.dtype.is_floating_point, f"the result must be a float tensor, got {out.dtype}")
    lo, hi = out.min().item(), out.max().item()
    expect(lo >= 0 and hi <= 1, f"every value must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")

    # The reference on random input.
    want = reference(x)
    worst = (out.float() - want).abs().max().item()
    expect(worst < 1e-5, f"on a random batch the result differs from course_lib's by up to "
                         f"{worst:.3g}; the mapping is (x + 1) / 2, clamped to [0, 1]")
