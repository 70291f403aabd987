"""Produce the leak yourself (notebook 03): train a short run with your own T placed one of
the four ways, and watch its samples as it trains.

    lab = leak_lab(train_fn, reals)      # train_fn(strategy, callback) -> TrainResult
    lab                                  # a dropdown, a button, samples and T's looks

``train_fn`` trains (e.g. ``train.train_gan(..., augment_fn=your_T, callback=callback)``)
and calls ``callback(step, history, result)`` after every evaluation; the lab redraws the
samples and measures them with :func:`course_lib.diffaugment.leak_indicators` next to
the real images, so "grey squares and borders" is a number as well as a look.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from course_lib.plotting import image_grid
from course_lib.diffaugment import leak_indicators
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes

LEAK_STRATEGIES = ("real_only", "d_step_only", "diffaugment", "none")


@dataclass
class LeakState:
    strategy: str = "real_only"
    step: int = 0
    # one row per redraw: step, grey_patches, grey_border, cast_spread
    trace: list = field(default_factory=list)
    status: str = "ready: pick a placement and press the button"
    running: bool = False


def leak_caption(step: int, mine: dict, reals: dict) -> str:
    """One line: T's looks in the samples at ``step`` against the real images'."""
    return (f"step {step:,}: grey_patches {mine['grey_patches']:.3f} (reals {reals['grey_patches']:.3f}) · "
            f"grey_border {mine['grey_border']:+.3f} (reals {reals['grey_border']:+.3f}) · "
            f"cast_spread {mine['cast_spread']:.3f} (reals {reals['cast_spread']:.3f})")


class LeakLab(CourseWidget):
    """See :func:`leak_lab`."""

    def __init__(self, train_fn: Callable, reals: torch.Tensor, strategies=LEAK_STRATEGIES,
                 n_samples: int = 32, labels: dict | None = None):
        import ipywidgets as W

        from course_lib.experiments import STRATEGY_LABELS

        labels = labels or STRATEGY_LABELS
        unknown = [s for s in strategies if s not in LEAK_STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(LEAK_STRATEGIES)}")
        self.train_fn, self.n_samples = train_fn, int(n_samples)
        self.real_looks = leak_indicators(reals)
        self.controls = {
            "strategy": W.Dropdown(options=[(labels.get(s, s), s) for s in strategies],
                                   value=strategies[0], description="T goes", layout=W.Layout(width="320px")),
            "run": W.Button(description="train it live", button_style="primary", icon="play"),
        }
        self.status = W.HTML()
        self.log = W.Output()
        self.output = W.Image(format="png")
        self.state = LeakState(strategy=strategies[0])
        self.result = None
        self.controls["run"].on_click(lambda _: self.run())
        self.widget = W.VBox([W.HBox([self.controls["strategy"], self.controls["run"]]), self.status,
                              self.log, self.output])
        self.update()

    def update(self, *_):
        self.status.value = self.state.status

    def show(self, step: int, history, result) -> None:
        """Redraw: the samples of ``result`` at ``step`` and T's looks in them."""
        samples = result.sample(self.n_samples)
        looks = leak_indicators(samples)
        self.state.step = step
        self.state.trace.append({"step": step, **looks})
        grid = image_grid(samples, nrow=8)
        self.output.value = png_bytes(grid, display_scale(grid.shape[1], target=480))
        self.state.status = leak_caption(step, looks, self.real_looks)
        self.update()

    def run(self):
        """Train the chosen placement, redrawing after every evaluation; returns the result."""
        if self.state.running:
            return None
        strategy = self.controls["strategy"].value
        self.state = LeakState(strategy=strategy, running=True, status=f"training {strategy} …")
        self.controls["run"].disabled = True
        self.update()
        started = time.perf_counter()
        try:
            with self.log:
                self.result = self.train_fn(strategy, self.show)
            self.show(self.result.history["step"][-1], self.result.history, self.result)
            self.state.status += f" — done in {time.perf_counter() - started:.0f} s"
        except Exception as exc:  # a button callback has nowhere to raise: say it on the widget
            self.state.status = f"⚠️ the live run failed: {type(exc).__name__}: {exc}"
        finally:
            self.state.running = False
            self.controls["run"].disabled = False
        self.update()
        return self.result


def leak_lab(train_fn: Callable, reals: torch.Tensor, strategies=LEAK_STRATEGIES, n_samples: int = 32,
             labels: dict | None = None) -> LeakLab:
    """A button that trains one placement of T live and shows its samples as it goes.

    train_fn(strategy, callback) -> TrainResult: trains with ``augment=strategy`` and calls
    ``callback(step, history, result)`` after each evaluation (``train_gan``'s callback).
    reals: real images [N, 3, H, W] in [-1, 1], the yardstick for T's looks.
    """
    return LeakLab(train_fn, reals, strategies=strategies, n_samples=n_samples, labels=labels)


__all__ = ["LEAK_STRATEGIES", "LeakState", "LeakLab", "leak_lab", "leak_caption"]
