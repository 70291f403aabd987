"""The model classes a checkpoint may name, and architecture specs that rebuild them.

A checkpoint carries, for each model it holds, an *architecture spec*: the class name,
the module that defines it, and the constructor's keyword arguments (plain JSON values)::

    {"class": "DCGANGenerator", "module": "course_lib.models.dcgan",
     "kwargs": {"z_dim": 128, "ngf": 32, "image_size": 32, "out_channels": 3}}

:func:`build_model` turns a spec back into a freshly initialised model. Only classes
registered here can be built, and a spec can only make this library import one of its own
modules (``course_lib.*``), so a checkpoint file never chooses what code runs. Register a
new model class with one line::

    @register_model
    class StudentGenerator(nn.Module): ...

(any ``nn.Module`` whose constructor takes JSON-able keyword arguments).
"""
from __future__ import annotations

import importlib
import json

from torch import nn

MODEL_CLASSES: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Make ``cls`` buildable from a spec (use as a class decorator). Returns ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_model takes an nn.Module subclass, got {cls!r}")
    known = MODEL_CLASSES.get(cls.__name__)
    if known is not None and known is not cls and known.__module__ != cls.__module__:
        raise ValueError(f"two model classes are called {cls.__name__!r} ({known.__module__} and "
                         f"{cls.__module__}): rename one, specs name classes by their name")
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_spec(cls: type[nn.Module], **kwargs) -> dict:
    """The spec of ``cls(**kwargs)``. kwargs must be JSON values (numbers, strings, bools,
    None, lists, dicts), so the spec survives a ``weights_only`` load and a JSON file."""
    register_model(cls)
    try:
        plain = json.loads(json.dumps(kwargs))
    except TypeError as exc:
        raise TypeError(f"{cls.__name__}'s constructor arguments must be JSON values to go into "
                        f"a checkpoint: {exc}") from None
    return {"class": cls.__name__, "module": cls.__module__, "kwargs": plain}


def model_class(spec: dict) -> type[nn.Module]:
    """The registered class a spec names (importing its ``course_lib`` module if needed)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ValueError(f"not a model spec (needs 'class', 'module', 'kwargs'): {spec!r:.120}")
    name, module = spec["class"], spec.get("module", "")
    if name not in MODEL_CLASSES and isinstance(module, str) and (
            module == "course_lib" or module.startswith("course_lib.")):
        try:
            importlib.import_module(module)     # its @register_model lines run on import
        except ImportError:
            pass
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {name!r} (from {module or 'an unknown module'}); "
                         f"known: {', '.join(sorted(MODEL_CLASSES)) or 'none'}")
    return MODEL_CLASSES[name]


def build_model(spec: dict) -> nn.Module:
    """A new ``spec['class'](**spec['kwargs'])`` (randomly initialised, on the CPU)."""
    cls = model_class(spec)
    kwargs = spec.get("kwargs") or {}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"cannot build {cls.__name__}(**{kwargs}): {exc}") from None
