"""What this machine offers the workbook: versions, threads, device, optional extras.

    >>> from course_lib.environment_check import environment_report, report_table
    >>> print(report_table(environment_report()))

``python -m course_lib.environment_check`` prints the same table.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

# Packages whose versions matter when a notebook misbehaves.
PACKAGES = ["torch", "torchvision", "numpy", "ipywidgets", "jupyterlab", "scikit-image", "pytorch-fid"]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (a container or ``taskset`` can allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def best_device() -> str:
    """``cuda`` if a GPU is usable, else ``mps`` (Apple), else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def inception_weights_path() -> Path:
    """Where pytorch-fid looks for its Inception weights (torch hub's checkpoint folder)."""
    import torch

    name = "pt_inception-2015-12-05-6726825d.pth"
    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL
        name = FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    except ImportError:
        pass
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def inception_weights_present() -> bool:
    """True if FID can use the real Inception network offline."""
    # Prefer the data layer's verdict (it also verifies the checksum) when it is there.
    try:
        from course_lib.data import status
        info = status("fid-inception")
        present = info.get("present") if isinstance(info, dict) else getattr(info, "present", None)
        if present is not None:
            return bool(present)
    except Exception:  # the data layer is optional here: fall back to looking for the file
        pass
    return inception_weights_path().is_file()


def environment_report() -> dict:
    """A flat dict describing the machine: versions, threads, device and optional extras."""
    import torch

    device = best_device()
    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for package in PACKAGES:
        report[package] = _version(package) or "not installed"
    import course_lib
    report["course_lib"] = course_lib.__version__
    report.update({
        "cpu_count": os.cpu_count() or 1,
        "usable_cpus": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none",
        "inception_weights": inception_weights_present(),
        "preset_env": os.environ.get("COURSE_PRESET") or "(not set)",
        "executable": sys.executable,
    })
    return report


# What a notebook uses when a registry entry is absent (see course_lib.data.embedded).
EMBEDDED_FALLBACKS = {
    "cifar10": "embedded: 32x32 crops of photographs bundled with scikit-image and scikit-learn",
    "100-shot-obama": "embedded: 100 LFW faces bundled with scikit-image (grayscale, upscaled)",
    "100-shot-grumpy_cat": "embedded: 100 LFW faces bundled with scikit-image (grayscale, upscaled)",
    "100-shot-panda": "embedded: 100 LFW faces bundled with scikit-image (grayscale, upscaled)",
    "AnimalFace-cat": "embedded: 100 LFW faces bundled with scikit-image (grayscale, upscaled)",
    "AnimalFace-dog": "embedded: 100 LFW faces bundled with scikit-image (grayscale, upscaled)",
    "horse2zebra": "embedded: two domains made from scikit-image photographs",
    "cyclegan-horse2zebra-pretrained": "no stand-in: the notebook says what it uses instead",
    "fid-inception": "offline features for FID, labelled as such in every table",
}


def data_rows() -> list[dict]:
    """One row per registry entry: is it here, is it verified, what stands in if not."""
    from course_lib.data import REGISTRY, status

    rows = []
    for name in REGISTRY:
        info = status(name)
        rows.append({
            "name": name,
            "present": bool(info["present"]),
            "check": info["check"],
            "used": "the real one" if info["present"] else EMBEDDED_FALLBACKS.get(name, "no stand-in"),
        })
    return rows


def data_table(rows: list[dict] | None = None) -> str:
    """:func:`data_rows` as a Markdown table."""
    rows = data_rows() if rows is None else rows
    lines = ["| dataset / weights | here? | state | notebooks use |", "|---|---|---|---|"]
    for row in rows:
        here = "✅ yes" if row["present"] else "— no"
        lines.append(f"| `{row['name']}` | {here} | {row['check']} | {row['used']} |")
    return "\n".join(lines) + "\n"


def report_table(report: dict | None = None) -> str:
    """The report as a two-column Markdown table (renders in notebooks and terminals)."""
    report = report if report is not None else environment_report()
    labels = {
        "inception_weights": "Inception weights (real FID; optional)",
        "preset_env": "COURSE_PRESET",
        "torch_threads": "torch threads",
        "usable_cpus": "usable CPUs",
        "cpu_count": "CPU count",
    }
    rows = ["| item | value |", "|---|---|"]
    for key, value in report.items():
        if isinstance(value, bool):
            value = "present" if value else "absent (FID falls back to labelled offline features)"
        rows.append(f"| {labels.get(key, key)} | {value} |")
    return "\n".join(rows) + "\n"


def advice(report: dict) -> list[str]:
    """Short sentences about anything in the report a student should act on."""
    notes = []
    if report.get("torch") == "not installed":
        notes.append("torch is missing: run `make setup` (or `pip install -r requirements.txt`).")
    if report.get("device") == "cpu":
        notes.append("No GPU: fine. The `class` preset is sized for a 2-core laptop CPU.")
    if report.get("torch_threads", 1) > report.get("usable_cpus", 1):
        notes.append("torch uses more threads than usable CPUs; `torch.set_num_threads("
                     f"{report.get('usable_cpus')})` may be faster.")
    if not report.get("inception_weights"):
        notes.append("Inception weights absent: FID is computed with offline features and "
                     "labelled so. `python data_scripts/get_data.py fid-inception` fetches them.")
    return notes


if __name__ == "__main__":
    env = environment_report()
    print(report_table(env))
    for line in advice(env):
        print("-", line)
