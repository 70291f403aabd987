"""DiffAugment: the published semantics, per-sample draws, vectorisation, gradients."""
import pytest
import torch
from torch.overrides import TorchFunctionMode

from course_lib.diffaugment import (POLICIES, diff_augment, rand_brightness, rand_contrast,
                                    rand_cutout, rand_saturation, rand_translation)

OPS = [rand_brightness, rand_saturation, rand_contrast, rand_translation, rand_cutout]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=16, c=3, h=8, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=gen(seed)) * 2 - 1


def test_policies_table():
    assert POLICIES == {"color": [rand_brightness, rand_saturation, rand_contrast],
                        "translation": [rand_translation], "cutout": [rand_cutout]}


def test_brightness_adds_one_offset_per_image_in_range():
    x = images(256)
    d = rand_brightness(x, generator=gen()) - x
    per_image = d.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    assert per_image.min() >= -0.5 and per_image.max() <= 0.5
    assert per_image.min() < -0.4 and per_image.max() > 0.4   # the range is used


def test_saturation_scales_around_the_channel_mean():
    x = images(256)
    grey = x.mean(dim=1, keepdim=True)
    y = rand_saturation(x, generator=gen())
    assert torch.allclose(y.mean(dim=1, keepdim=True), grey, atol=1e-6)  # grey is kept
    factor = ((y - grey) / (x - grey)).flatten(1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-3)
    assert factor.min() >= 0 and factor.max() <= 2 and factor.max() > 1.8


def test_contrast_scales_around_the_image_mean():
    x = images(256)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    y = rand_contrast(x, generator=gen())
    assert torch.allclose(y.mean(dim=(1, 2, 3), keepdim=True), mean, atol=1e-6)
    factor = ((y - mean) / (x - mean)).flatten(1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-3)
    assert factor.min() >= 0.5 and factor.max() <= 1.5


def shifted(img, dy, dx):
    """img [C, H, W] with out[:, i, j] = img[:, i + dy, j + dx], zero outside, by slicing."""
    c, h, w = img.shape
    out = torch.zeros_like(img)
    out[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
        img[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return out


def test_shifted_reference():
    img = torch.arange(1.0, 10.0).view(1, 3, 3)
    assert torch.equal(shifted(img, 1, -1), torch.tensor([[[0.0, 4, 5], [0, 7, 8], [0, 0, 0]]]))


@pytest.mark.parametrize("h, w, max_shift", [(32, 32, (4, 4)), (8, 12, (1, 2))])
def test_translation_is_an_integer_shift_with_zero_fill(h, w, max_shift):
    n = 64
    # every pixel distinct and non-zero, so a match pins the shift down
    x = torch.arange(1, n * 2 * h * w + 1, dtype=torch.float32).view(n, 2, h, w)
    y = rand_translation(x, generator=gen())
    seen = set()
    for k in range(n):
        matches = [(dy, dx) for dy in range(-max_shift[0], max_shift[0] + 1)
                   for dx in range(-max_shift[1], max_shift[1] + 1)
                   if torch.equal(y[k], shifted(x[k], dy, dx))]
        assert len(matches) == 1, f"sample {k} is not a shifted copy within {max_shift}"
        seen.add(matches[0])
    assert any(abs(dy) == max_shift[0] for dy, _ in seen)   # the largest shift occurs
    assert len(seen) > 5                                     # and shifts vary per sample


@pytest.mark.parametrize("h, w", [(32, 32), (9, 9), (8, 12)])
def test_cutout_zeroes_a_clipped_rectangle_of_the_right_size(h, w):
    size_h, size_w = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    n = 500
    y = rand_cutout(torch.ones(n, 3, h, w), generator=gen())
    holes = y[:, 0] == 0
    assert torch.equal(holes[:, None].expand_as(y), y == 0)   # same hole in every channel
    interior = 0
    for k in range(n):
        rows = holes[k].any(dim=1).nonzero().flatten()
        cols = holes[k].any(dim=0).nonzero().flatten()
        # a full rectangle: every (row, col) inside its bounding box is zero
        assert holes[k].sum() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
        assert len(rows) <= size_h and len(cols) <= size_w
        if 0 < rows.min() and rows.max() < h - 1 and 0 < cols.min() and cols.max() < w - 1:
            assert (len(rows), len(cols)) == (size_h, size_w)   # exact size when not clipped
            interior += 1
    assert 0 < interior < n  # some holes are clipped at the border, some are not


def test_cutout_centre_can_be_anywhere():
    # With 4x4 images and a 2x2 hole, every pixel must be hit by some draw.
    y = rand_cutout(torch.ones(400, 1, 4, 4), generator=gen())
    assert (y == 0).any(dim=0).all()


def test_empty_policy_is_the_identity():
    x = images()
    assert diff_augment(x, "") is x
    assert diff_augment(x, " ") is x


def test_gradcheck():
    x = images(n=2, c=3, h=5, w=5).double().requires_grad_()

    def augment(inp):  # a fresh generator per call: the same T on every evaluation
        return diff_augment(inp, "color,translation,cutout", generator=gen(5))

    assert torch.autograd.gradcheck(augment, (x,), eps=1e-6, atol=1e-5)


def test_draws_are_per_sample():
    x = images(n=1, h=32, w=32).expand(32, -1, -1, -1).contiguous()   # 32 copies of one image
    for op in OPS:
        y = op(x, generator=gen())
        distinct = {tuple(v.flatten().tolist()) for v in y.round(decimals=5)}
        assert len(distinct) > 16, op.__name__


def test_generator_makes_draws_reproducible():
    x = images()
    a = diff_augment(x, generator=gen(1))
    assert torch.equal(a, diff_augment(x, generator=gen(1)))
    assert not torch.equal(a, diff_augment(x, generator=gen(2)))
    # all randomness comes from the generator: the global RNG is neither used nor moved
    state = torch.get_rng_state()
    torch.manual_seed(123)
    b = diff_augment(x, generator=gen(1))
    torch.manual_seed(456)
    assert torch.equal(b, a)
    torch.set_rng_state(state)


def test_channels_last():
    x = images()
    a = diff_augment(x, generator=gen(3))
    b = diff_augment(x.permute(0, 2, 3, 1), channels_first=False, generator=gen(3))
    assert b.shape == (16, 8, 8, 3)
    assert torch.allclose(b.permute(0, 3, 1, 2), a)


def test_policy_order_and_dtype():
    x = images().double()
    assert diff_augment(x, "translation , cutout", generator=gen()).dtype == torch.float64
    y = diff_augment(x, "cutout", generator=gen(7))
    assert torch.equal(y, rand_cutout(x, generator=gen(7)))


class CountTorchCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_vectorised_no_loop_over_the_batch():
    # A Python loop over the images would make the number of torch calls grow with N.
    counts = []
    for n in (2, 64):
        x = images(n)
        with CountTorchCalls() as mode:
            diff_augment(x, generator=gen())
        counts.append(mode.calls)
    assert counts[0] == counts[1] > 10


def test_unknown_policy_names_it_and_the_valid_ones():
    with pytest.raises(ValueError) as err:
        diff_augment(images(), "color,rotation")
    message = str(err.value)
    assert "'rotation'" in message
    assert all(name in message for name in ("color", "translation", "cutout"))


def test_rejects_non_image_batches():
    with pytest.raises(ValueError, match="N, C, H, W"):
        diff_augment(torch.zeros(3, 8, 8))
