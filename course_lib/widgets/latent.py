"""Few-shot widgets: walk between two latents and check for copying; re-run a recorded run.

    explorer = latent_explorer(G, train_images)   # sliders: seed A, seed B, t
    explorer       # the frame slerp(z_A, z_B, t) and its nearest training images

Each frame is shown beside its ``k`` nearest training images (pixel space, and feature
space if asked), with their distances and a yardstick: the median distance between a
training image and its nearest *other* training image. A frame much closer than that to a
training image is (nearly) a copy of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from course_lib.latent import (latent_for_seed, nearest_images, image_features, slerp,
                               typical_neighbour_distance)
from course_lib.plotting import image_grid
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes

SPACES = ("pixel", "feature")


@dataclass
class ExplorerState:
    """What the explorer shows: the frame at ``t`` between the latents of ``seed_a`` and
    ``seed_b``, and per space its nearest training images (indices, distances) and the
    ratio of the nearest distance to the training set's typical neighbour distance."""
    seed_a: int
    seed_b: int
    t: float
    neighbours: dict = field(default_factory=dict)    # space -> list of training indices
    distances: dict = field(default_factory=dict)     # space -> list of distances
    ratio: dict = field(default_factory=dict)         # space -> nearest / typical
    caption: str = ""


# --- pure functions (the tests call these directly) -----------------------------------------

def frame_latent(seed_a: int, seed_b: int, t: float, z_dim: int,
                 interpolate: Callable = slerp) -> torch.Tensor:
    """The latent [1, z_dim] at position ``t`` from seed A's latent to seed B's."""
    za, zb = latent_for_seed(seed_a, z_dim), latent_for_seed(seed_b, z_dim)
    return torch.as_tensor(interpolate(za[None], zb[None], float(t))).reshape(1, z_dim)


@torch.no_grad()
def render_frame(G, z: torch.Tensor) -> torch.Tensor:
    """G's image [1, 3, S, S] in [-1, 1] for latent z [1, z_dim] (G in eval mode)."""
    was_training = G.training
    G.eval()
    try:
        return G(z).clamp(-1, 1)
    finally:
        G.train(was_training)


def copy_verdict(ratio: float) -> str:
    """Words for nearest distance / typical neighbour distance."""
    if ratio < 0.5:
        return "much closer than training images are to each other: looks like a copy"
    if ratio < 0.9:
        return "closer than usual: partly copied?"
    return "no closer than training images are to each other: not a copy"


def explorer_caption(state: ExplorerState) -> str:
    lines = [f"seed A {state.seed_a} → seed B {state.seed_b}, t = {state.t:.2f}"]
    for space, dists in state.distances.items():
        near = ", ".join(f"#{i} ({d:.2f})" for i, d in zip(state.neighbours[space], dists))
        lines.append(f"{space} space: nearest {near}; nearest/typical = "
                     f"{state.ratio[space]:.2f} ({copy_verdict(state.ratio[space])})")
    return "\n".join(lines)


def explorer_view(G, train_images: torch.Tensor, seed_a: int, seed_b: int, t: float, k: int = 3,
                  spaces=("pixel",), typical: dict | None = None, extractor=None,
                  train_features: torch.Tensor | None = None,
                  interpolate: Callable = slerp) -> tuple[torch.Tensor, ExplorerState]:
    """Everything the explorer shows for one slider setting.

    Returns (rows, state): rows is [R, 1 + k, 3, S, S] in [-1, 1], one row per space, the
    frame first then its neighbours nearest first; state an :class:`ExplorerState`.
    ``typical``: space -> :func:`course_lib.latent.typical_neighbour_distance` (computed
    here if not given).
    """
    frame = render_frame(G, frame_latent(seed_a, seed_b, t, G.z_dim, interpolate))
    state = ExplorerState(int(seed_a), int(seed_b), float(t))
    rows = []
    for space in spaces:
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        idx, dist = nearest_images(frame, train_images, k=k, space=space, extractor=extractor,
                                   train_features=train_features if space == "feature" else None)
        yard = (typical or {}).get(space)
        if yard is None:
            yard = typical_neighbour_distance(train_images, space, extractor,
                                              train_features if space == "feature" else None)
        state.neighbours[space] = idx[0].tolist()
        state.distances[space] = dist[0].tolist()
        state.ratio[space] = float(dist[0, 0]) / max(yard, 1e-12)
        rows.append(torch.cat([frame, train_images[idx[0]]]))
    state.caption = explorer_caption(state)
    return torch.stack(rows), state


def render_rows(rows: torch.Tensor) -> tuple[bytes, int, int]:
    """PNG of the rows [R, 1 + k, 3, S, S] as one grid, and its shown (width, height)."""
    r, c = rows.shape[:2]
    grid = image_grid(rows.reshape(r * c, *rows.shape[2:]), nrow=c)
    scale = display_scale(grid.shape[1], target=480, largest=4)
    return png_bytes(grid, scale=scale), grid.shape[1] * scale, grid.shape[0] * scale


# --- the widgets -----------------------------------------------------------------------------

class LatentExplorer(CourseWidget):
    """Sliders for two latent seeds and t; see :func:`latent_explorer`."""

    def __init__(self, G, train_images: torch.Tensor, k: int = 3, spaces=("pixel", "feature"),
                 max_seed: int = 99, extractor=None, interpolate: Callable = slerp,
                 title: str | None = None):
        import ipywidgets as W

        if k < 1 or k > len(train_images):
            raise ValueError(f"latent_explorer: k must be between 1 and {len(train_images)}, got {k}")
        self.G, self.train_images, self.k = G, torch.as_tensor(train_images), int(k)
        self.spaces, self.interpolate = tuple(spaces), interpolate
        self.extractor = None
        self.train_features = None
        if "feature" in self.spaces:
            from course_lib.metrics import default_extractor

            self.extractor = extractor or default_extractor()
            self.train_features = image_features(self.train_images, self.extractor)
        self.typical = {s: typical_neighbour_distance(self.train_images, s, self.extractor,
                                                      self.train_features if s == "feature" else None)
                        for s in self.spaces}
        slider = dict(continuous_update=False, layout=W.Layout(width="420px"))
        self.controls = {
            "seed_a": W.IntSlider(value=0, min=0, max=max_seed, description="seed A", **slider),
            "seed_b": W.IntSlider(value=1, min=0, max=max_seed, description="seed B", **slider),
            "t": W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", **slider),
        }
        label = " / ".join(f"row {i + 1}: {s} space" for i, s in enumerate(self.spaces))
        self.legend = W.HTML(f"<small>left: the frame; then its {self.k} nearest training images, "
                             f"nearest first ({label})</small>")
        self.caption = W.HTML()
        self.output = W.Image(format="png")
        self.state = None
        parts = [W.HTML(f"<b>{title}</b>")] if title else []
        self.widget = W.VBox(parts + list(self.controls.values())
                             + [self.legend, self.output, self.caption])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def update(self, *_):
        rows, state = explorer_view(
            self.G, self.train_images, self.controls["seed_a"].value, self.controls["seed_b"].value,
            self.controls["t"].value, self.k, self.spaces, self.typical, self.extractor,
            self.train_features, self.interpolate)
        png, width, height = render_rows(rows)
        self.state = state
        self.output.value = png
        self.output.width, self.output.height = str(width), str(height)
        self.caption.value = "<pre style='font-size:11px'>" + state.caption + "</pre>"


def latent_explorer(G, train_images: torch.Tensor, k: int = 3, spaces=("pixel", "feature"),
                    max_seed: int = 99, extractor=None, interpolate: Callable = slerp,
                    title: str | None = None) -> LatentExplorer:
    """Three sliders (seed A, seed B, t) over G's latent space.

    G: a generator (latent [N, z_dim] -> images [N, 3, S, S] in [-1, 1]) with ``.z_dim``;
    train_images: [N, 3, S, S] in [-1, 1]. Each frame ``G(interpolate(z_A, z_B, t))`` is
    shown with its ``k`` nearest training images in each of ``spaces`` ("pixel",
    "feature"); ``interpolate`` defaults to :func:`course_lib.latent.slerp`.
    """
    return LatentExplorer(G, train_images, k, spaces, max_seed, extractor, interpolate, title)


@dataclass
class RerunState:
    way: str
    seed: int
    figures: dict = field(default_factory=dict)     # the live run's final figures
    recorded: dict = field(default_factory=dict)    # the recording's final figures
    message: str = ""


class RerunPanel(CourseWidget):
    """A way dropdown, a seed box and a button that trains that run live; see
    :func:`rerun_panel`."""

    def __init__(self, run_fn: Callable, ways, seeds, recorded: Callable | None = None,
                 labels: dict | None = None):
        import ipywidgets as W

        labels = labels or {}
        self.run_fn, self.recorded = run_fn, recorded
        self.controls = {
            "way": W.Dropdown(options=[(labels.get(w, w), w) for w in ways], value=ways[-1],
                              description="run"),
            "seed": W.Dropdown(options=list(seeds), value=list(seeds)[0], description="seed"),
            "run": W.Button(description="train it live", button_style="primary"),
        }
        self.caption = W.HTML("<small>Pick a run and press the button: it trains now (a "
                              "minute or two on the class preset) or loads from the zoo.</small>")
        self.output = W.Image(format="png")
        self.state = RerunState(self.controls["way"].value, self.controls["seed"].value)
        self.widget = W.VBox([W.HBox([self.controls["way"], self.controls["seed"],
                                      self.controls["run"]]), self.caption, self.output])
        self.controls["run"].on_click(self.update)

    def update(self, *_):
        way, seed = self.controls["way"].value, self.controls["seed"].value
        self.controls["run"].disabled = True
        try:
            images, figures = self.run_fn(way, seed)
        finally:
            self.controls["run"].disabled = False
        recorded = self.recorded(way, seed) if self.recorded else {}
        parts = [f"{k} {v:.4g}" + (f" (recorded {recorded[k]:.4g})" if k in recorded else "")
                 for k, v in figures.items()]
        self.state = RerunState(way, seed, dict(figures), dict(recorded),
                                f"{way}, seed {seed}: " + ", ".join(parts))
        grid = image_grid(images)
        scale = display_scale(grid.shape[1], target=384, largest=4)
        self.output.value = png_bytes(grid, scale=scale)
        self.caption.value = self.state.message


def rerun_panel(run_fn: Callable, ways, seeds=(0, 1), recorded: Callable | None = None,
                labels: dict | None = None) -> RerunPanel:
    """A button that re-runs one recorded run live.

    run_fn(way, seed) -> (images [n, 3, S, S] in [-1, 1], {figure: value}); recorded(way,
    seed) -> {figure: value} of the recording, shown alongside for comparison.
    """
    return RerunPanel(run_fn, ways, seeds, recorded, labels)

