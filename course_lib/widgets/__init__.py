"""Interactive widgets for the notebooks (ipywidgets).

Every widget follows one pattern (see :mod:`course_lib.widgets.core`): a factory builds
an object with ``.controls`` (a dict of ipywidgets controls), ``.state`` (a small
dataclass holding what is shown), ``.output`` (the ipywidgets ``Image`` or ``Output``
showing it) and ``.widget`` (the assembled box to display). Callbacks only call pure
functions and then update ``state`` and ``output``, so tests can drive a widget by
setting ``.value`` on its controls, with no browser.

Add a widget by adding a module here and exporting its factory below.
"""
from course_lib.widgets.augment import augment_explorer, live_run
from course_lib.widgets.browse import BrowserState, DatasetBrowser, dataset_browser
from course_lib.widgets.core import CourseWidget, png_bytes
from course_lib.widgets.latent import latent_explorer, rerun_panel
from course_lib.widgets.overfitting import live_training, recorded_runs_explorer
from course_lib.widgets.ptq import compression_explorer

__all__ = [
    "CourseWidget", "png_bytes", "DatasetBrowser", "BrowserState",
    # one factory per widget, by notebook: 00, 02, 03, 04, 09
    "dataset_browser",
    "recorded_runs_explorer", "live_training",
    "augment_explorer", "live_run",
    "latent_explorer", "rerun_panel",
    "compression_explorer",
]
