"""Trusted objects a check hands to the student's function, sent as small recipes.

A check cannot send a model or an optimiser to the worker (that would take pickles), so it
sends a :class:`Spec` — a kind and a few numbers — and this module builds the object
wherever the student's function runs: in the worker (grader) or in the notebook's kernel
(``self_check``). The judge builds its own copy from the same spec to compute the
reference: every builder draws its numbers from a ``torch.Generator`` seeded by the spec,
so both copies start identical.

Some objects also *observe* the call (a spy optimiser logs ``step`` and ``zero_grad``, a
spy generator counts backward passes, a recording discriminator keeps its inputs). What
they record travels back as ``Outcome.events`` and ``Outcome.report(spec)``. Those are
the worker's account of itself: a check may take points off for them (e.g. the fakes
were not detached), but never awards points on them alone — values and gradients,
compared with the judge's own, decide a pass.

========================  =======================================================
kind                      what is built (params)
========================  =======================================================
``generator``             ``torch.Generator`` (seed)
``spy_generator``         z [N, 2] -> tanh(Linear(2, 3)) [N, 3]; event ``<name>.backward``
                          per backward pass into its output (seed, name, stale_grad)
``linear_discriminator``  [N, 3] -> logits [N]; all-zero weights with ``zero=True``
                          (seed, zero, stale_grad)
``spy_sgd``               SGD over ``module``'s parameters; events ``<name>.zero_grad``,
                          ``<name>.step`` (module, lr, name)
``mlp_generator``         z [N, z_dim] -> tanh images [N, 3, size, size] (seed, z_dim, size)
``conv_discriminator``    images [N, 3, size, size] -> logits [N]; reports its inputs
                          (seed, size)
``spy_transform``         T(x) = 0.5 * x.flip(-1) + 0.25 (:func:`flip_transform`); reports
                          each input and whether it required grad
``diff_augment``          T(x) = ``course_lib.diffaugment.diff_augment(x, generator=...)``
                          (seed)
========================  =======================================================

Reports: every ``nn.Module`` reports ``{"params": [tensors]}`` after each call, recorders
add ``"inputs"``. Add a kind by writing a builder and listing it in :data:`BUILDERS`.
"""
from __future__ import annotations

import itertools

_ids = itertools.count(1)


class Spec:
    """A recipe for a trusted object: ``Spec("spy_sgd", module=G, lr=0.5, name="opt_g")``.
    Params are plain data or other specs. The same spec passed to several calls of one
    exercise is the same object over there (its state carries over)."""
    _is_fixture_spec = True  # how the wire codec recognises it without importing this module

    def __init__(self, kind: str, **params):
        if kind not in BUILDERS:
            raise ValueError(f"unknown fixture kind {kind!r}; known: {', '.join(sorted(BUILDERS))}")
        self.kind, self.params, self.id = kind, params, next(_ids)

    def __repr__(self) -> str:
        return f"Spec({self.kind!r}, id={self.id})"


class Context:
    """Where built objects live during one exercise, and what they record during a call."""

    def __init__(self):
        self.objects: dict[int, object] = {}
        self.events: list[str] = []

    def resolve(self, spec_id: int, kind: str, params: dict):
        """The object of spec ``spec_id``, built on first sight (params already resolved)."""
        if spec_id not in self.objects:
            if kind not in BUILDERS:
                raise ValueError(f"unknown fixture kind {kind!r}")
            self.objects[spec_id] = BUILDERS[kind](params, self)
        return self.objects[spec_id]

    def materialise(self, value):
        """Specs inside ``value`` replaced by their objects (for a call in this process)."""
        if isinstance(value, Spec):
            params = {k: self.materialise(v) for k, v in value.params.items()}
            return self.resolve(value.id, value.kind, params)
        if type(value) is list:
            return [self.materialise(v) for v in value]
        if type(value) is tuple:
            return tuple(self.materialise(v) for v in value)
        if type(value) is dict:
            return {k: self.materialise(v) for k, v in value.items()}
        return value

    def begin_call(self) -> None:
        self.events.clear()
        for obj in self.objects.values():
            if hasattr(obj, "grading_reset"):
                obj.grading_reset()

    def reports(self) -> dict[int, dict]:
        out = {}
        for spec_id, obj in self.objects.items():
            report = grading_report(obj)
            if report is not None:
                out[spec_id] = report
        return out


def build(spec: Spec):
    """A fresh object from ``spec`` in this process (the judge's own copy)."""
    return Context().materialise(spec)


def grading_report(obj):
    """Plain data describing ``obj`` after a call, or None."""
    import torch

    report = None
    if isinstance(obj, torch.nn.Module):
        report = {"params": [p.detach().clone() for p in obj.parameters()]}
    if hasattr(obj, "grading_inputs"):
        report = dict(report or {}, inputs=list(obj.grading_inputs))
    return report


def load_params(module, params) -> None:
    """Copy a reported parameter list into ``module`` (same architecture)."""
    import torch

    with torch.no_grad():
        for p, value in zip(module.parameters(), params):
            p.copy_(value.detach())


def flip_transform(x):
    """The spy transform's deterministic, differentiable map: 0.5 * x.flip(-1) + 0.25."""
    return 0.5 * x.flip(-1) + 0.25


# --- builders ----------------------------------------------------------------------------

def _generator(params, ctx):
    import torch

    return torch.Generator().manual_seed(int(params["seed"]))


def _stale(module, value) -> None:
    """Gradients left over from a previous step (what an optimiser must zero)."""
    import torch

    if value is not None:
        for p in module.parameters():
            p.grad = torch.full_like(p, float(value))


def _spy_generator(params, ctx):
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(int(params["seed"]))
    name = str(params.get("name", "G"))

    class SpyGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 3)
            with torch.no_grad():
                self.net.weight.copy_(torch.randn(3, 2, generator=gen) * 0.5)
                self.net.bias.copy_(torch.randn(3, generator=gen) * 0.1)

        def forward(self, z):
            out = torch.tanh(self.net(z))
            if out.requires_grad:
                out.register_hook(lambda grad: ctx.events.append(f"{name}.backward"))
            return out

    model = SpyGenerator()
    _stale(model, params.get("stale_grad"))
    return model


def _linear_discriminator(params, ctx):
    import torch
    from torch import nn

    class LinearDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 1)
            with torch.no_grad():
                if params.get("zero"):   # says 0 ("don't know") to everything
                    self.net.weight.zero_()
                    self.net.bias.zero_()
                else:
                    gen = torch.Generator().manual_seed(int(params["seed"]))
                    self.net.weight.copy_(torch.randn(1, 3, generator=gen))
                    self.net.bias.copy_(torch.randn(1, generator=gen) * 0.1)

        def forward(self, x):
            return self.net(x).reshape(x.shape[0])

    model = LinearDiscriminator()
    _stale(model, params.get("stale_grad"))
    return model


def _spy_sgd(params, ctx):
    import torch

    name = str(params["name"])

    class SpySGD(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True):
            ctx.events.append(f"{name}.zero_grad")
            return super().zero_grad(set_to_none=set_to_none)

        def step(self, closure=None):
            ctx.events.append(f"{name}.step")
            return super().step(closure)

    return SpySGD(params["module"].parameters(), lr=float(params["lr"]))


def _uniform_init(module, gen) -> None:
    """PyTorch's default bound (1/sqrt(fan_in)), drawn from ``gen``."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            bound = 1 / max(fan_in, 1) ** 0.5
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)


def _mlp_generator(params, ctx):
    import torch
    from torch import nn

    z_dim, size = int(params["z_dim"]), int(params["size"])
    model = nn.Sequential(nn.Linear(z_dim, 3 * size * size), nn.Unflatten(1, (3, size, size)), nn.Tanh())
    _uniform_init(model, torch.Generator().manual_seed(int(params["seed"])))
    return model


def _conv_discriminator(params, ctx):
    import torch
    from torch import nn

    size = int(params["size"])

    class ConvDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4 * size * size, 1)
            self.grading_inputs: list = []

        def grading_reset(self):
            self.grading_inputs = []

        def forward(self, x):
            self.grading_inputs.append(x.detach().clone())
            h = nn.functional.leaky_relu(self.conv(x), 0.2)
            return self.head(h.flatten(1)).flatten()

    model = ConvDiscriminator()
    _uniform_init(model, torch.Generator().manual_seed(int(params["seed"])))
    return model


def _spy_transform(params, ctx):
    class SpyTransform:
        def __init__(self):
            self.grading_inputs: list = []

        def grading_reset(self):
            self.grading_inputs = []

        def __call__(self, x):
            self.grading_inputs.append((x.detach().clone(), bool(x.requires_grad)))
            return flip_transform(x)

    return SpyTransform()


def _diff_augment(params, ctx):
    import torch

    from course_lib.diffaugment import diff_augment

    gen = torch.Generator().manual_seed(int(params["seed"]))
    return lambda x: diff_augment(x, generator=gen)


BUILDERS = {
    "generator": _generator,
    "spy_generator": _spy_generator,
    "linear_discriminator": _linear_discriminator,
    "spy_sgd": _spy_sgd,
    "mlp_generator": _mlp_generator,
    "conv_discriminator": _conv_discriminator,
    "spy_transform": _spy_transform,
    "diff_augment": _diff_augment,
}


def generator(seed: int) -> Spec:
    """A ``torch.Generator`` seeded with ``seed``, built where the student's code runs."""
    return Spec("generator", seed=seed)
