"""Checks for ``06_channel_search``: exercise 6.1 ``sliced_conv`` (first-k weight sharing,
including the transposed conv's axis), 6.2 ``draw_configs`` (uniform, independent,
seeded config sampling) and 6.3 ``next_generation`` (one round of evolutionary search
under a budget)."""
import torch
import torch.nn.functional as F

from course_lib.grade import fixtures
from course_lib.grade.api import exercise, expect, type_name

NOTEBOOK = "06_channel_search"


# --- ex6.1 sliced_conv -------------------------------------------------------------------------

def reference_sliced(x, weight, bias, out_channels, transposed=False, stride=1, padding=0,
                     output_padding=0):
    c = x.shape[1]
    if transposed:
        w = weight[:c, :out_channels]
        return F.conv_transpose2d(x, w, None if bias is None else bias[:out_channels], stride,
                                  padding, output_padding)
    w = weight[:out_channels, :c]
    return F.conv2d(x, w, None if bias is None else bias[:out_channels], stride, padding)


def _tensor(out, what, shape):
    expect(isinstance(out, torch.Tensor), f"sliced_conv must return a tensor, got {type_name(out)}")
    expect(tuple(out.shape) == tuple(shape), f"{what}: expected output shape {tuple(shape)}, got "
                                             f"{tuple(out.shape)}")
    return out


@exercise("ex6.1", notebook=NOTEBOOK, function="sliced_conv", points=3, timeout=60,
          reference=("course_lib.compress.supernet.sliced_conv",
                     "course_lib.compress.supernet.SuperConv2d.forward",
                     "course_lib.compress.supernet.SuperConvTranspose2d.forward"))
def check_sliced_conv(student):
    g = torch.Generator().manual_seed(0)
    # A conv: weight [out=8, in=6, 3, 3]; input with 4 channels, 3 output channels.
    w = torch.randn(8, 6, 3, 3, generator=g)
    b = torch.randn(8, generator=g)
    x = torch.randn(2, 4, 7, 7, generator=g)
    for stride, padding in ((1, 1), (2, 0)):
        out = student(x, w, b, 3, False, stride, padding, 0)
        want = reference_sliced(x, w, b, 3, False, stride, padding)
        _tensor(out, f"conv, x [2, 4, 7, 7], 3 output channels, stride {stride}", want.shape)
        last = F.conv2d(x, w[-3:, -4:], b[-3:], stride, padding)
        expect(not torch.allclose(out, last, atol=1e-5),
               "that slices the *last* channels: weight sharing uses the first k (weight[:out, :in])")
        expect(torch.allclose(out, want, atol=1e-5),
               f"conv with stride {stride}, padding {padding}: the output differs from "
               f"F.conv2d(x, weight[:out, :in], bias[:out])")
    out = student(x, w, None, 5, False, 1, 1, 0)
    expect(torch.allclose(out, reference_sliced(x, w, None, 5, False, 1, 1), atol=1e-5),
           "with bias=None the conv has no bias")

    # A transposed conv: weight [in=6, out=8, 3, 3]; slicing it like a conv
    # (weight[:out, :in]) gives a [3, 4] weight that does not fit 4 input channels.
    wt = torch.randn(6, 8, 3, 3, generator=g)
    bt = torch.randn(8, generator=g)
    out = student(x, wt, bt, 3, True, 2, 1, 1)
    want = reference_sliced(x, wt, bt, 3, True, 2, 1, 1)
    _tensor(out, "transposed conv, x [2, 4, 7, 7], 3 output channels, stride 2", want.shape)
    transposed_first = F.conv_transpose2d(x, wt.transpose(0, 1)[:4, :3].contiguous(), bt[:3], 2, 1, 1)
    expect(not torch.allclose(out, transposed_first, atol=1e-5),
           "the transposed conv is sliced on the wrong axis: its weight is [in, out, kh, kw], "
           "so it uses weight[:in, :out] as it is (no transpose)")
    expect(torch.allclose(out, want, atol=1e-5),
           "transposed conv (stride 2, padding 1, output_padding 1): the output differs from "
           "F.conv_transpose2d(x, weight[:in, :out], bias[:out], ...)")
    x3 = torch.randn(1, 3, 5, 5, generator=g)
    out = student(x3, wt, bt, 2, True, 2, 1, 1)
    want = reference_sliced(x3, wt, bt, 2, True, 2, 1, 1)
    _tensor(out, "transposed conv, x [1, 3, 5, 5], 2 output channels", want.shape)
    expect(torch.allclose(out, want, atol=1e-5),
           "transposed conv with 3 input and 2 output channels differs from the reference")


# --- ex6.2 draw_configs -----------------------------------------------------------------------

SPACE = [[16, 12, 8, 6, 4]] * 8


def _configs(student, space, n, seed):
    out = student(space, n, fixtures.generator(seed))
    expect(isinstance(out, (list, tuple)) and len(out) == n,
           f"draw_configs(space, {n}, generator) must return a list of {n} configs, got "
           f"{type_name(out)}" + (f" of length {len(out)}" if isinstance(out, (list, tuple)) else ""))
    configs = []
    for c in out:
        expect(isinstance(c, (list, tuple)) and len(c) == len(space),
               f"each config must be a tuple of {len(space)} widths, got {c!r}")
        c = tuple(int(v) for v in c)
        bad = [i for i, v in enumerate(c) if v not in space[i]]
        expect(not bad, f"config {c} has widths not in the space at positions {bad}")
        configs.append(c)
    return configs


@exercise("ex6.2", notebook=NOTEBOOK, function="draw_configs", points=2, timeout=60,
          reference=("course_lib.compress.supernet.draw_configs",
                     "course_lib.compress.supernet.sample_config",
                     "course_lib.compress.supernet.sample_configs"))
def check_sample_configs(student):
    small = [[3, 1], [5, 4, 2]]
    few = _configs(student, small, 6, 0)
    n = 2000
    configs = _configs(student, SPACE, n, 1)
    # Uniform: each width about n / 5 times at every position.
    for i in range(len(SPACE)):
        counts = {w: sum(c[i] == w for c in configs) for w in SPACE[i]}
        low = min(counts, key=counts.get)
        expect(counts[low] > n / 5 - 110 and max(counts.values()) < n / 5 + 110,
               f"position {i}: over {n} configs the widths came {counts} times; each of the 5 "
               f"should come about {n // 5} times (uniform). Is one never drawn (randint's upper "
               f"bound is exclusive: torch.randint(len(widths), ...))?")
    # Independent positions: all 8 widths the same only ~5^-7 of the time.
    same = sum(len(set(SPACE[0].index(w) for w in c)) == 1 for c in configs)
    expect(same < n * 0.02,
           f"{same} of {n} configs use the same choice at every position: draw each position "
           f"independently (GAN Compression's per-layer widths), not one multiplier for all")
    # Seeded: the same generator seed repeats the configs, another seed does not.
    expect(_configs(student, SPACE, 50, 7) == _configs(student, SPACE, 50, 7),
           "two generators with the same seed gave different configs: draw from `generator` "
           "(torch.randint(..., generator=generator)), not the global random state")
    expect(_configs(student, SPACE, 50, 7) != _configs(student, SPACE, 50, 8),
           "generators with different seeds gave the same configs")
    expect(len(few) == 6, "draw_configs(space, 6, ...) must give 6 configs")


# --- ex6.3 next_generation ---------------------------------------------------------------------

def _cost(config, costs):
    return sum(c * w for c, w in zip(costs, config))


@exercise("ex6.3", notebook=NOTEBOOK, function="next_generation", points=3, timeout=60,
          reference=("course_lib.compress.search.next_generation",
                     "course_lib.compress.search.evolutionary_search"))
def check_next_generation(student):
    space = [[16, 12, 8, 6, 4]] * 6
    costs = [1.0, 2.0, 4.0, 4.0, 2.0, 1.0]
    budget = 120.0
    g = torch.Generator().manual_seed(3)
    population = []
    while len(population) < 12:
        c = tuple(space[i][int(torch.randint(5, (), generator=g))] for i in range(6))
        if _cost(c, costs) <= budget and c not in population:
            population.append(c)
    scores = [float(v) for v in torch.rand(len(population), generator=g)]
    parents, children = 4, 16
    out = student(population, scores, space, costs, budget, parents, children, fixtures.generator(0))
    expect(isinstance(out, (list, tuple)) and len(out) == parents + children,
           f"next_generation must return parents + children = {parents + children} configs, got "
           f"{type_name(out)}" + (f" of length {len(out)}" if isinstance(out, (list, tuple)) else ""))
    out = [tuple(int(v) for v in c) for c in out]
    best = [population[i] for i in sorted(range(len(population)), key=lambda i: scores[i])[:parents]]
    worst = [population[i] for i in sorted(range(len(population)), key=lambda i: -scores[i])[:parents]]
    if out[:parents] == worst:
        expect(False, "the parents kept are the highest-scoring configs: the score is an FD, "
                      "lower is better")
    expect(sorted(out[:parents]) == sorted(best),
           f"the first {parents} configs must be the {parents} lowest-scoring of the population "
           f"({best}), got {out[:parents]}")
    for c in out[parents:]:
        bad = [i for i, v in enumerate(c) if v not in space[i]]
        expect(len(c) == len(space) and not bad, f"child {c} has widths outside the space")
    over = [c for c in out[parents:] if _cost(c, costs) > budget]
    expect(not over, f"{len(over)} of {children} children cost more than the budget {budget:g}, "
                     f"e.g. {over[0] if over else ''} costs {(_cost(over[0], costs) if over else 0):g}: "
                     f"draw a child again until it fits")
    new = [c for c in out[parents:] if c not in best]
    expect(len(new) >= children // 4,
           f"only {len(new)} of {children} children differ from their parents: mutate (re-draw "
           f"some positions) and cross over (take each position from one of two parents)")
    again = [tuple(int(v) for v in c) for c in
             student(population, scores, space, costs, budget, parents, children, fixtures.generator(0))]
    expect(again == out, "the same generator seed gave another generation: draw every random "
                         "choice from `generator`")
