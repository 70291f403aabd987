"""The plumbing every widget shares: PNG encoding and a small base class.

A widget here is a plain object (not an ipywidgets subclass) with four attributes:

- ``controls``: dict name -> ipywidgets control (sliders, dropdowns, buttons);
- ``state``:    a small dataclass describing what is shown right now;
- ``output``:   the ipywidgets ``Image`` (or ``Output``) that shows it;
- ``widget``:   the assembled box to display.

Keeping the math in pure functions and the widget thin means a test can set
``controls["page"].value = 3`` and then check ``state`` and ``output.value``.
"""
from __future__ import annotations

import io

import numpy as np


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """Encode an image array as PNG bytes (for ``ipywidgets.Image(format="png")``).

    ``array``: uint8 [H, W, 3] (RGB) or [H, W] (gray); floats are taken to be in [0, 1].
    ``scale``: integer upscaling with nearest neighbour, so small (32x32) images stay
    crisp in the browser instead of being blurred by its smooth resampling.
    """
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    if array.ndim not in (2, 3):
        raise ValueError(f"png_bytes expects [H, W] or [H, W, 3], got shape {array.shape}")
    if scale > 1:
        array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")
    return buffer.getvalue()


def side_by_side(pngs: list[bytes], gap: int = 8) -> bytes:
    """Several PNG images in one, left to right on white, tops aligned."""
    from PIL import Image

    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(im.height for im in images)), "white")
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    buffer = io.BytesIO()
    canvas.save(buffer, format="png")
    return buffer.getvalue()


def note_png(text: str, width: int = 640) -> bytes:
    """A small grey PNG holding ``text``: the stand-in of a widget that has drawn nothing."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, 36), (238, 238, 238))
    ImageDraw.Draw(canvas).text((10, 12), text, fill=(60, 60, 60))
    buffer = io.BytesIO()
    canvas.save(buffer, format="png")
    return buffer.getvalue()


def display_scale(width: int, target: int = 384, largest: int = 8) -> int:
    """The integer upscale that brings an image ``width`` pixels wide near ``target``."""
    return int(max(1, min(largest, target // max(width, 1))))


class CourseWidget:
    """Base of every widget: holds the four attributes and displays as ``widget``.

    Subclasses build their controls in ``__init__`` and call ``self.update()`` from
    their callbacks. Displaying the object (the last expression of a cell) shows the box.
    """

    controls: dict
    state: object
    output: object
    widget: object

    def update(self, *_):  # pragma: no cover - every widget overrides it
        raise NotImplementedError

    def snapshot(self) -> dict:
        """Static stand-ins for the live widget, as extra MIME data: ``image/png`` (every
        ``ipywidgets.Image`` the widget holds, side by side, as they are now; a short note
        in an image when none has been drawn yet) and ``text/plain``.

        JupyterLab shows the live widget; a notebook viewed without a kernel or the
        widget JavaScript (an HTML export read offline, ``make workbook``) falls back to these.
        """
        import base64

        shown = [image.value for image in self._images() if image.value]
        png = side_by_side(shown) if shown else note_png(
            f"{type(self).__name__}: nothing drawn yet; run the notebook in Jupyter to use it")
        return {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": repr(self)}

    def _images(self) -> list:
        """The widget's ``ipywidgets.Image`` attributes, in the order they were set."""
        import ipywidgets as W

        return [value for value in vars(self).values() if isinstance(value, W.Image)]

    def _repr_mimebundle_(self, **kwargs):
        # Jupyter asks the object how to show itself: the assembled box, plus snapshots.
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle.update(self.snapshot())
        return bundle

    def __repr__(self):
        return f"{type(self).__name__}({self.state!r})"
