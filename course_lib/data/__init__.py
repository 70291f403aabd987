"""Datasets, downloads and embedded fallbacks.

Real data when the user has fetched it (``python data_scripts/get_data.py NAME``), real
photographs bundled in pip packages when not, and any folder of the user's own images.

Modules, one idea each:

- ``downloads`` atomic, verified, retried downloads (:func:`download`)
- ``archive``   zip/tar extraction that refuses escaping members (:func:`extract_archive`)
- ``registry``  what can be fetched, from where, and its state (:func:`fetch`, :func:`status`)
- ``images``    a folder of arbitrary image files -> clean tensors (:func:`load_image_folder`)
- ``embedded``  the fallback images built from scikit-image / scikit-learn photographs
- ``loaders``   :func:`cifar10`, :func:`few_shot`, :func:`unpaired`, :func:`get_dataset`
- ``banner``    :func:`source_banner`, :func:`print_summary`
- ``cli``       ``python -m course_lib data list|fetch|verify``
"""
from course_lib.data.archive import extract_archive
from course_lib.data.banner import print_summary, source_banner
from course_lib.data.base import ImageDataset, UnpairedDataset
from course_lib.data.downloads import download
from course_lib.data.errors import DataError
from course_lib.data.images import ImageFolderDataset, load_image_folder
from course_lib.data.loaders import (FEW_SHOT_NAMES, cifar10, few_shot, get_dataset,
                                     unpaired)
from course_lib.data.paths import data_root, torch_home
from course_lib.data.registry import (REGISTRY, Entry, entry_path, fetch, is_present,
                                      status, verify)

__all__ = [
    "DataError", "data_root", "torch_home", "download", "extract_archive",
    "REGISTRY", "Entry", "fetch", "status", "is_present", "verify", "entry_path",
    "load_image_folder", "ImageFolderDataset", "ImageDataset", "UnpairedDataset",
    "cifar10", "few_shot", "unpaired", "get_dataset", "FEW_SHOT_NAMES",
    "source_banner", "print_summary",
]
