"""The set-up itself: pins agree, make and the CLI answer, course_lib installs, the
environment report tells the truth."""
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    """PEP 503 names: ``Scikit_Image`` and ``scikit-image`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines) -> dict[str, str]:
    """``name==version`` lines (comments and blanks ignored) -> {name: version}."""
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        assert match, f"not an exact pin (name==version): {line!r}"
        name = normalise(match.group(1))
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = match.group(3)
    return pins


def requirements() -> dict[str, str]:
    return parse_pins((ROOT / "requirements.txt").read_text().splitlines())


def environment_yml() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_requirements_are_exact_pins_with_the_torch_pair():
    pins = requirements()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for needed in ["jupyterlab", "ipywidgets", "matplotlib", "pytorch-fid", "tqdm",
                   "scikit-image", "nbclient", "nbformat", "pytest"]:
        assert needed in pins, f"requirements.txt does not pin {needed}"


def test_environment_yml_pip_section_equals_requirements():
    env = environment_yml()
    assert env["name"] == "efficient-gans"
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    in_yml, in_txt = parse_pins(pip_sections[0]), requirements()
    only_txt = sorted(set(in_txt) - set(in_yml))
    only_yml = sorted(set(in_yml) - set(in_txt))
    assert not only_txt, f"pinned in requirements.txt but not in environment.yml: {only_txt}"
    assert not only_yml, f"pinned in environment.yml but not in requirements.txt: {only_yml}"
    differ = {n: (in_txt[n], in_yml[n]) for n in in_txt if in_txt[n] != in_yml[n]}
    assert not differ, f"versions differ (requirements.txt, environment.yml): {differ}"


def test_installed_versions_match_the_pins():
    """The venv the tests run in is the pinned one (catches a stale `.venv`)."""
    wrong = {}
    for name, version in requirements().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed: {wrong}; run `make setup`"


def test_make_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for target in ["setup", "lab", "test", "workbook", "student", "grade", "clean"]:
        assert re.search(rf"^{target}\s", out.stdout, re.M), f"`make help` does not list {target}"


def test_course_lib_cli_help():
    out = subprocess.run([sys.executable, "-m", "course_lib", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: python -m course_lib" in out.stdout
    assert "data" in out.stdout


def test_workbook_cli_help():
    out = subprocess.run([sys.executable, "-m", "course_lib.workbook", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--preset" in out.stdout and "--only" in out.stdout


def test_pyproject_makes_course_lib_installable():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "course-lib"
    # Every library dependency is one the course pins, so `pip install -e .` adds nothing new.
    pinned = set(requirements())
    for dep in project["dependencies"]:
        name = normalise(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0])
        assert name in pinned, f"pyproject depends on {name}, which requirements.txt does not pin"
    # The venv has it installed (editable) from this checkout, at the library's version.
    import course_lib
    assert importlib.metadata.version("course-lib") == course_lib.__version__
    assert Path(course_lib.__file__).resolve().parent == ROOT / "course_lib"


@pytest.mark.slow
def test_pip_can_build_course_lib_metadata():
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not in this venv (needed for an offline metadata build)")
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                          "--no-build-isolation", "--no-index", str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Would install course-lib" in out.stdout


def test_environment_report():
    import torch

    from course_lib.environment_check import advice, environment_report, report_table

    report = environment_report()
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["torch"] == torch.__version__.split("+")[0]
    assert report["torchvision"] == requirements()["torchvision"]
    assert report["torch_threads"] == torch.get_num_threads()
    assert report["usable_cpus"] >= 1 and report["cpu_count"] >= report["usable_cpus"]
    assert report["device"] in {"cpu", "cuda", "mps"}
    assert isinstance(report["inception_weights"], bool)
    table = report_table(report)
    assert table.startswith("| item | value |") and "torch threads" in table
    assert all(isinstance(line, str) for line in advice(report))
