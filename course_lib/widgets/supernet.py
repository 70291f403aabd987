"""Per-layer width sliders over a supernet (notebook 06): move a width, see the subnet's
MACs, parameters, measured CPU latency and output beside the teacher's.

The figures come from :func:`subnet_figures` (a pure function a test can call); the
widget only wires 8 sliders to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib.compress.profile import count_macs, count_params, measure_latencies
from course_lib.compress.supernet import export_subnet
from course_lib.plotting import image_grid
from course_lib.widgets.core import CourseWidget, png_bytes

POSITIONS = ("stem", "down 1", "trunk", "blocks 1-3", "blocks 4-6", "blocks 7-9", "up 1", "up 2")
INPUT_256 = (1, 3, 256, 256)


@dataclass
class SubnetFigures:
    config: tuple
    macs: int               # at 1x3x256x256
    params: int
    latency_ms: float       # median, at 1x3x256x256, the exported subnet
    teacher_latency_ms: float
    teacher_macs: int
    output: torch.Tensor    # the subnet's translations of the images, [N, 3, S, S] in [-1, 1]


def subnet_figures(supernet, teacher, images: torch.Tensor, config, *, threads: int = 1,
                   repeats: int = 3) -> SubnetFigures:
    """Export ``config`` from ``supernet`` and measure it against ``teacher`` (interleaved
    latency at 1x3x256x256 on ``threads`` threads, median of ``repeats``)."""
    config = supernet.check_config(tuple(config))
    student = export_subnet(supernet, config).eval()
    lat = measure_latencies({"teacher": teacher, "student": student}, INPUT_256, threads=threads,
                            repeats=repeats, warmup=1)
    with torch.no_grad():
        out = student(images)
    return SubnetFigures(config, count_macs(student, INPUT_256), count_params(student),
                         lat["student"].median_ms, lat["teacher"].median_ms,
                         count_macs(teacher, INPUT_256), out)


class WidthSliders(CourseWidget):
    """8 sliders (one per config position) over ``supernet``; ``state`` is the last
    :class:`SubnetFigures`. Latency is measured on every change (a second or two).
    Display the object itself: an exported page then shows the teacher/subnet image."""

    def __init__(self, supernet, teacher, images: torch.Tensor, *, threads: int = 1, repeats: int = 3):
        import ipywidgets as w

        self.supernet, self.teacher, self.images = supernet, teacher, images
        self.threads, self.repeats = threads, repeats
        with torch.no_grad():
            self.teacher_out = teacher(images)
        self.controls = {name: w.SelectionSlider(options=sorted(choices), value=max(choices),
                                                 description=name, continuous_update=False)
                         for name, choices in zip(POSITIONS, supernet.space)}
        self.text = w.HTML()
        self.output = w.Image(format="png")
        for c in self.controls.values():
            c.observe(lambda change: self.update(), names="value")
        self.widget = w.HBox([w.VBox(list(self.controls.values())), w.VBox([self.text, self.output])])
        self.state: SubnetFigures | None = None
        self.update()

    def update(self) -> SubnetFigures:
        config = tuple(c.value for c in self.controls.values())
        f = subnet_figures(self.supernet, self.teacher, self.images, config, threads=self.threads,
                           repeats=self.repeats)
        self.state = f
        self.text.value = (f"<b>{'_'.join(map(str, config))}</b>: {f.macs / 1e9:.3f}G MACs "
                           f"({f.teacher_macs / f.macs:.1f}x fewer than the teacher), {f.params:,} "
                           f"params, {f.latency_ms:.1f} ms vs the teacher's {f.teacher_latency_ms:.1f} ms "
                           f"({f.teacher_latency_ms / f.latency_ms:.2f}x) at 256x256, "
                           f"{self.threads} thread(s). Top: teacher; bottom: subnet.")
        grid = image_grid(torch.cat([self.teacher_out, f.output]), nrow=len(self.images))
        self.output.value = png_bytes(grid, scale=2)
        return f

    def __repr__(self):
        f = self.state
        if f is None:
            return "WidthSliders()"
        return (f"WidthSliders({'_'.join(map(str, f.config))}: {f.macs / 1e9:.3f}G MACs, "
                f"{f.latency_ms:.1f} ms vs the teacher's {f.teacher_latency_ms:.1f} ms)")
