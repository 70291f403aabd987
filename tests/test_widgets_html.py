"""Every widget has a static image in an exported page (issue 12 §4): ``make workbook``'s
HTML (and any nbconvert export read without the widget JavaScript) shows a picture of the
widget's current state instead of the text "VBox(children=...)"."""
import base64
import io
import re

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output
from PIL import Image

from course_lib.experiments import load_recording
from course_lib.models import DCGANGenerator
from course_lib.tasks.dcgan import TrainConfig
from course_lib.widgets import (augment_explorer, dataset_browser, latent_explorer, live_run,
                                recorded_runs_explorer, rerun_panel)
from course_lib.widgets.leak import leak_lab
from course_lib.widgets.overfitting import LiveTraining
from course_lib.workbook import write_html


def _images(n=12, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _width_sliders():
    from course_lib.compress.supernet import SuperMobileResnetGenerator
    from course_lib.models.cyclegan import ResnetGenerator
    from course_lib.widgets.supernet import WidthSliders

    torch.manual_seed(0)
    supernet = SuperMobileResnetGenerator(3, 3, 4, 3).eval()
    teacher = ResnetGenerator(ngf=4, n_blocks=3).eval()
    return WidthSliders(supernet, teacher, _images(2, size=16), repeats=2)


@pytest.fixture(scope="module")
def widgets():
    recording = load_recording("ci")
    G = DCGANGenerator(z_dim=16, ngf=8, image_size=32).eval()
    config = TrainConfig(steps=4, batch_size=4, ngf=4, ndf=4, eval_every=2, ema=None)
    return {
        "dataset_browser": dataset_browser(list(_images()), per_page=8),
        "augment_explorer": augment_explorer(_images(8)),
        "recorded_runs_explorer": recorded_runs_explorer(recording),
        "live_run": live_run(recording, "ci", run_fn=lambda *a: None),
        "live_training": LiveTraining(_images(32), _images(16, seed=1), config),   # not run yet
        "latent_explorer": latent_explorer(G, _images(10), k=2, spaces=("pixel",)),
        "rerun_panel": rerun_panel(lambda way, seed: (_images(4), {"fd": 1.0}), ways=("baseline",)),
        "leak_lab": leak_lab(lambda strategy, callback: None, _images(8)),              # not run yet
        "compression_explorer": _compression_explorer(G),
        "width_sliders": _width_sliders(),
    }


def _compression_explorer(G):
    from course_lib.ptq import Evaluator
    from course_lib.widgets import compression_explorer

    evaluator = Evaluator.of(_images(20), G.z_dim, n_samples=16, n_seeds=1)
    return compression_explorer(G, evaluator, n_show=4)


def test_every_widget_offers_a_png_of_its_state(widgets):
    for name, widget in widgets.items():
        bundle = widget._repr_mimebundle_()
        assert "image/png" in bundle, name
        image = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
        assert image.width > 50 and image.height > 20, name
        assert not bundle["text/plain"].startswith(("VBox(", "HBox(")), name


def test_the_picture_follows_the_controls(widgets):
    explorer = widgets["augment_explorer"]
    before = explorer._repr_mimebundle_()["image/png"]
    explorer.controls["seed"].value = 7
    assert explorer._repr_mimebundle_()["image/png"] != before
    # both grids, side by side: the reals and T(reals)
    both = Image.open(io.BytesIO(base64.b64decode(before)))
    one = Image.open(io.BytesIO(explorer.output.value))
    assert both.width > 2 * one.width - 1


def test_exported_html_shows_images_not_widget_reprs(widgets, tmp_path):
    nb = new_notebook(cells=[])
    for name, widget in widgets.items():
        cell = new_code_cell(f"{name}(...)")
        cell.outputs = [new_output("display_data", data=widget._repr_mimebundle_())]
        nb.cells.append(cell)
    html = write_html(nb, tmp_path / "widgets.html").read_text(encoding="utf-8")
    assert "VBox(children" not in html and "HBox(children" not in html
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', html)) == len(widgets)


def test_every_widget_class_is_a_course_widget_and_notebooks_display_the_widget_itself():
    import inspect
    import pkgutil
    from importlib import import_module
    from pathlib import Path

    import course_lib.widgets as package
    from course_lib.widgets.core import CourseWidget

    for info in pkgutil.iter_modules(package.__path__):
        module = import_module(f"course_lib.widgets.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "widget" in vars(cls).get("__init__", lambda: 0).__code__.co_names:
                assert issubclass(cls, CourseWidget), f"{module.__name__}.{name} has no static picture"
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "solutions").glob("*.ipynb")):
        # displaying `.widget` (the raw ipywidgets box) would skip the picture
        assert not re.search(r"display\(\w+\.widget\)", path.read_text(encoding="utf-8")), path.name
