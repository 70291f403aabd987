"""Browse a dataset page by page: a slider over pages, an image grid, a caption.

    browser = dataset_browser(cifar10(fraction=0.1), per_page=16)
    browser          # displays: slider, "images 17–32 of 100 · source: ...", grid
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from course_lib.plotting import image_grid
from course_lib.widgets.core import CourseWidget, display_scale, png_bytes


@dataclass
class BrowserState:
    """What the browser shows: page ``page`` of ``n_pages`` (1-based), that is images
    ``start`` to ``stop - 1`` (0-based) of ``total``."""
    page: int
    n_pages: int
    start: int
    stop: int
    total: int
    source: str
    caption: str


# --- pure functions (the tests call these directly) -----------------------------------

def n_pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def page_bounds(page: int, per_page: int, total: int) -> tuple[int, int]:
    """0-based [start, stop) of 1-based ``page``; the last page may be short."""
    if not 1 <= page <= n_pages(total, per_page):
        raise ValueError(f"page {page} is out of range 1..{n_pages(total, per_page)}")
    start = (page - 1) * per_page
    return start, min(start + per_page, total)


def page_caption(start: int, stop: int, total: int, source: str) -> str:
    """E.g. ``images 17–32 of 100 · source: CIFAR-10 (torchvision)`` (1-based, inclusive)."""
    return f"images {start + 1}–{stop} of {total} · source: {source}"


def dataset_source(dataset) -> str:
    """The dataset's ``.source`` description, or a plain fallback."""
    return str(getattr(dataset, "source", None) or "unknown (no .source attribute)")


def page_images(dataset, start: int, stop: int) -> torch.Tensor:
    """Images ``start..stop-1`` of ``dataset`` as one tensor [N, C, H, W] in [-1, 1].

    Items may be images or (image, label) pairs, as the course's datasets yield.
    """
    images = []
    for i in range(start, stop):
        item = dataset[i]
        if isinstance(item, (tuple, list)):
            item = item[0]
        images.append(torch.as_tensor(item))
    return torch.stack(images)


def render_page(dataset, page: int, per_page: int) -> tuple[bytes, int, int]:
    """PNG bytes of one page's grid, and the grid's (width, height) in pixels as shown.

    The grid always has room for ``per_page`` images so it keeps its size while paging.
    """
    start, stop = page_bounds(page, per_page, len(dataset))
    images = page_images(dataset, start, stop)
    if len(images) < per_page:  # pad a short last page with white so the grid keeps its size
        blank = torch.ones((per_page - len(images), *images.shape[1:]), dtype=images.dtype)
        images = torch.cat([images, blank])
    nrow = max(1, math.ceil(math.sqrt(per_page)))
    grid = image_grid(images, nrow=nrow)
    scale = display_scale(grid.shape[1])
    return png_bytes(grid, scale=scale), grid.shape[1] * scale, grid.shape[0] * scale


# --- the widget --------------------------------------------------------------------------

class DatasetBrowser(CourseWidget):
    """A page slider, a caption and an image grid over ``dataset``; see :func:`dataset_browser`."""

    def __init__(self, dataset, per_page: int = 16, title: str | None = None):
        import ipywidgets as W

        total = len(dataset)
        if total == 0:
            raise ValueError("dataset_browser: the dataset is empty, there is nothing to show")
        if per_page < 1:
            raise ValueError(f"dataset_browser: per_page must be at least 1, got {per_page}")
        self.dataset, self.per_page = dataset, int(per_page)
        pages = n_pages(total, self.per_page)
        self.controls = {
            "page": W.IntSlider(value=1, min=1, max=pages, step=1, description="page",
                                continuous_update=False,  # render once the handle stops
                                layout=W.Layout(width="420px")),
        }
        self.caption = W.HTML()
        self.output = W.Image(format="png")
        self.state = None
        parts = [W.HTML(f"<b>{title}</b>")] if title else []
        self.widget = W.VBox(parts + [self.controls["page"], self.caption, self.output])
        self.controls["page"].observe(self.update, names="value")
        self.update()

    def update(self, *_):
        page = self.controls["page"].value
        start, stop = page_bounds(page, self.per_page, len(self.dataset))
        source = dataset_source(self.dataset)
        caption = page_caption(start, stop, len(self.dataset), source)
        png, width, height = render_page(self.dataset, page, self.per_page)
        self.state = BrowserState(page, n_pages(len(self.dataset), self.per_page), start, stop,
                                  len(self.dataset), source, caption)
        self.caption.value = caption
        self.output.value = png
        self.output.width, self.output.height = str(width), str(height)


    def snapshot(self) -> dict:
        import base64

        return {"image/png": base64.b64encode(self.output.value).decode("ascii"),
                "text/plain": f"dataset browser, page {self.state.page} of {self.state.n_pages}: "
                              f"{self.state.caption}"}


def dataset_browser(dataset, per_page: int = 16, title: str | None = None) -> DatasetBrowser:
    """A slider over pages of ``dataset``, showing ``per_page`` images at a time.

    ``dataset``: anything with ``len`` and indexing that yields images [C, H, W] in [-1, 1]
    (or (image, label) pairs); its ``.source`` is shown in the caption.
    Returns a :class:`DatasetBrowser`; display it (or its ``.widget``) in a cell.
    """
    return DatasetBrowser(dataset, per_page=per_page, title=title)
