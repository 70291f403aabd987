"""Widgets, headless: set ``.value`` on a control, check ``.state`` and the output."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.widgets import dataset_browser, png_bytes
from course_lib.widgets.browse import page_bounds, page_caption, page_images, render_page
from course_lib.widgets.core import display_scale


class TinyDataset:
    """100 images, image i filled with a value that depends on i, as (image, label)."""
    source = "test pattern"

    def __init__(self, n=100, size=8):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return torch.full((3, self.size, self.size), -1 + 2 * i / self.n), i % 10


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# --- pure functions ---------------------------------------------------------------------

def test_page_bounds_and_short_last_page():
    assert page_bounds(1, 16, 100) == (0, 16)
    assert page_bounds(2, 16, 100) == (16, 32)
    assert page_bounds(7, 16, 100) == (96, 100)
    with pytest.raises(ValueError, match="out of range"):
        page_bounds(8, 16, 100)


def test_caption_is_one_based_and_names_the_source():
    assert page_caption(16, 32, 100, "CIFAR-10") == "images 17–32 of 100 · source: CIFAR-10"


def test_page_images_accepts_pairs_and_plain_images():
    assert page_images(TinyDataset(), 0, 4).shape == (4, 3, 8, 8)
    plain = [torch.zeros(3, 8, 8) for _ in range(5)]
    assert page_images(plain, 2, 5).shape == (3, 3, 8, 8)


def test_png_bytes_round_trip_and_scale():
    array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    assert (decode(png_bytes(array)) == array).all()
    big = decode(png_bytes(array, scale=3))
    assert big.shape == (6, 6, 3) and (big[:3, :3] == array[0, 0]).all()
    assert decode(png_bytes(np.ones((2, 2, 3)))).max() == 255  # floats are [0, 1]
    with pytest.raises(ValueError, match="expects"):
        png_bytes(np.zeros((1, 2, 2, 3)))


def test_display_scale_brings_small_grids_up_to_size():
    assert display_scale(138) == 2
    assert display_scale(1000) == 1
    assert display_scale(4) == 8  # bounded


def test_render_page_keeps_grid_size_on_the_short_last_page():
    data = TinyDataset()
    first, w1, h1 = render_page(data, 1, 16)
    last, w7, h7 = render_page(data, 7, 16)
    assert (w1, h1) == (w7, h7)
    assert decode(first).shape == decode(last).shape == (h1, w1, 3)


# --- the widget -------------------------------------------------------------------------

def test_browser_starts_on_page_one():
    browser = dataset_browser(TinyDataset(), per_page=16, title="Test data")
    assert browser.state.page == 1 and browser.state.n_pages == 7
    assert browser.controls["page"].max == 7
    assert browser.state.caption == "images 1–16 of 100 · source: test pattern"
    assert browser.output.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Test data" in browser.widget.children[0].value


def test_moving_the_slider_changes_state_caption_and_image():
    browser = dataset_browser(TinyDataset(), per_page=16)
    before = browser.output.value
    browser.controls["page"].value = 2
    assert (browser.state.start, browser.state.stop) == (16, 32)
    assert browser.caption.value == "images 17–32 of 100 · source: test pattern"
    assert browser.output.value != before
    # The image really shows images 17-32: the first tile's colour is image 16's value.
    expected = render_page(TinyDataset(), 2, 16)[0]
    assert browser.output.value == expected


def test_last_page_and_back():
    browser = dataset_browser(TinyDataset(), per_page=16)
    first = browser.output.value
    browser.controls["page"].value = 7
    assert browser.state.caption.startswith("images 97–100 of 100")
    browser.controls["page"].value = 1
    assert browser.output.value == first  # rendering is a pure function of the page


def test_browser_on_plain_list_without_source():
    browser = dataset_browser([torch.zeros(1, 8, 8)] * 3, per_page=4)  # grayscale too
    assert browser.state.n_pages == 1
    assert "unknown" in browser.state.source
    assert decode(browser.output.value).shape[2] == 3


def test_browser_refuses_empty_dataset_and_bad_per_page():
    with pytest.raises(ValueError, match="empty"):
        dataset_browser([])
    with pytest.raises(ValueError, match="per_page"):
        dataset_browser(TinyDataset(), per_page=0)


def test_browser_displays_as_its_box_with_a_static_snapshot():
    import base64

    browser = dataset_browser(TinyDataset())
    bundle = browser._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == browser.widget.model_id
    # For viewers without the widget JavaScript (an HTML export read offline).
    assert base64.b64decode(bundle["image/png"]) == browser.output.value
    assert "images 1–16 of 100" in bundle["text/plain"]


def test_browser_on_the_course_cifar_track():
    data = pytest.importorskip("course_lib.data")
    if not hasattr(data, "cifar10"):
        pytest.skip("course_lib.data.cifar10 is not there yet")
    dataset = data.cifar10(fraction=0.02, classes=None, split="train", seed=0)
    browser = dataset_browser(dataset, per_page=16)
    assert browser.state.total == len(dataset)
    assert browser.state.source == str(dataset.source)
    if browser.state.n_pages > 1:
        before = browser.output.value
        browser.controls["page"].value = 2
        assert browser.output.value != before
