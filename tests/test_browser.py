"""A real browser: JupyterLab + headless Debian Chromium driven by Playwright.

What a student does in class, done by a test: open the welcome notebook and a content
notebook, Run All (with ``COURSE_PRESET=ci``), check nothing raised, move the dataset
browser's slider and see the image change. Screenshots go to ``build/browser/``.

Never downloads a browser: it uses ``/usr/bin/chromium`` (``apt-get install chromium``).
Without it the test skips, unless ``REQUIRE_BROWSER=1`` (set by ``.ci/run``), where it fails.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT = 150  # seconds per notebook: the ci preset runs in seconds, a kernel start in ~5
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def require_browser():
    """Skip (or fail under CI) when Chromium or Playwright is missing."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the Python package playwright is not installed (see requirements.txt)"
    if problem:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def stop(process: subprocess.Popen):
    """Stop a server we started in its own session: SIGTERM its group, then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def lab_settings(settings_dir: Path):
    """User settings that keep the test deterministic and offline."""
    settings = {
        # Render every cell (no virtual scrolling), so the test can see every prompt.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # No "fetch news?" toast over the notebook, no network.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def lab_env(tmp: Path) -> dict:
    """The server's (and so the kernel's) environment: ci preset, everything in ``tmp``."""
    settings = tmp / "lab-settings"
    lab_settings(settings)
    return {
        **os.environ,
        "COURSE_PRESET": "ci",
        "COURSE_CACHE": os.environ.get("COURSE_CACHE") or str(tmp / "cache"),
        "COURSE_RESULTS_DIR": str(tmp / "results"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1:<free port> with a token, serving a temp copy of notebooks/."""
    require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
               "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if IS_ROOT:
        command.append("--allow-root")
    log = open(tmp / "lab.log", "w")
    process = subprocess.Popen(command, cwd=root, env=lab_env(tmp), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited ({process.returncode}):\n{(tmp / 'lab.log').read_text()[-3000:]}")
            try:
                if http_get(f"{base}/api/status?token={token}", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer within 90 s:\n{(tmp / 'lab.log').read_text()[-3000:]}")
        yield {"base": base, "token": token, "root": root, "tmp": tmp}
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def browser_context(lab):
    """Headless Debian Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(lab["tmp"] / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


# --- driving JupyterLab -------------------------------------------------------------------

PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'))
    .map(e => e.textContent.trim())"""


def open_notebook(page, lab, name: str):
    """Open ``name`` as a student does: JupyterLab's file browser, double-click.

    A workspace of its own keeps other tests' open tabs out; waiting for the launcher's
    kernel card first makes sure the kernel specs are loaded, so JupyterLab starts the
    notebook's kernel without asking which one.
    """
    page.goto(f"{lab['base']}/lab/workspaces/{Path(name).stem}?reset&token={lab['token']}")
    page.locator(".jp-LauncherCard", has_text="Python 3").first.wait_for(timeout=60_000)
    page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # Should JupyterLab still ask for a kernel, take the preselected Python 3.
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count() and dialog.first.is_visible():
            dialog.locator(".jp-mod-accept").first.click()
        # The page's indicator reads "idle" even before a kernel exists, so also ask the
        # server whether the notebook's session has a live, idle kernel.
        if kernel_status(page) == "idle" and server_kernel_state(lab, name) == "idle":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: the kernel did not start within 60 s (status {kernel_status(page)!r})")


def server_kernel_state(lab, name: str) -> str | None:
    """The execution state the server reports for the kernel of notebook ``name``."""
    status, body = http_get(f"{lab['base']}/api/sessions?token={lab['token']}")
    for session in json.loads(body) if status == 200 else []:
        if session.get("path") == name and session.get("kernel"):
            return session["kernel"].get("execution_state")
    return None


def kernel_status(page) -> str | None:
    indicator = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")
    return indicator.first.get_attribute("data-status") if indicator.count() else None


def run_all_cells(page):
    """Run > Run All Cells, through the menu bar as a student would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()


def wait_all_executed(page, timeout: float) -> list[str]:
    """Wait until Run All has finished: no cell queued or running (``[*]``) and the kernel
    idle for a few seconds. Returns the prompts (``[3]:``; ``[ ]:`` for cells never run,
    as after an error)."""
    deadline = time.monotonic() + timeout
    prompts, settled_since = [], None
    while time.monotonic() < deadline:
        prompts = page.evaluate(PROMPTS_JS)
        all_done = prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        quiet = prompts and "[*]:" not in prompts and kernel_status(page) == "idle"
        if all_done and quiet:
            return prompts
        # Stopped early (an error stops Run All): quiet for 3 s with cells not run.
        settled_since = (settled_since or time.monotonic()) if quiet else None
        if settled_since and time.monotonic() - settled_since > 3:
            return prompts
        time.sleep(0.5)
    raise AssertionError(f"Run All did not finish within {timeout:.0f} s; prompts: {prompts}")


def save_and_read(page, lab, name: str) -> nbformat.NotebookNode:
    """Save the notebook (the temp copy) and read it back, outputs and all."""
    path = lab["root"] / name
    before = path.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the contents API finish writing
    return nbformat.read(path, as_version=4)


def error_outputs(nb) -> list[str]:
    """``cell i: Ename: evalue`` for every error output, except the expected stub messages."""
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") != "NotImplementedError":
                errors.append(f"cell {index}: {output['ename']}: {output['evalue']}")
    return errors


def dataset_browser_box(page):
    """The first dataset browser on the page: the widget box holding its caption."""
    caption = page.locator(".widget-html", has_text=re.compile(r"images 1–\d+ of"))
    page.locator(".jp-OutputArea-output").locator(caption).first.wait_for(timeout=30_000)
    # The innermost box holding both the caption and the image grid.
    box = page.locator(".jp-OutputArea-output .widget-vbox", has=caption).filter(
        has=page.locator("img"))
    return box.last


def run_notebook_in_browser(page, lab, name: str) -> nbformat.NotebookNode:
    open_notebook(page, lab, name)
    run_all_cells(page)
    n_code = sum(c.cell_type == "code" for c in nbformat.read(lab["root"] / name, as_version=4).cells)
    prompts = wait_all_executed(page, RUN_ALL_TIMEOUT)
    assert len(prompts) == n_code, f"{name}: the page shows {len(prompts)} code cells, the file has {n_code}"
    page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}.png"))
    nb = save_and_read(page, lab, name)
    errors = error_outputs(nb)
    assert not errors, f"{name}: Run All raised:\n" + "\n".join(errors)
    not_run = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not c.get("execution_count")]
    assert not not_run, f"{name}: cells {not_run} have no execution count after Run All"
    return nb


def content_notebook(root: Path) -> str | None:
    """The highest-numbered notebook other than the welcome one, if any."""
    others = sorted(p.name for p in root.glob("[0-9]*.ipynb") if p.name != "00_welcome.ipynb")
    return others[-1] if others else None


# --- the tests ----------------------------------------------------------------------------

def test_welcome_notebook_runs_and_its_slider_changes_the_image(lab, browser_context):
    started = time.monotonic()
    page = browser_context.new_page()
    run_notebook_in_browser(page, lab, "00_welcome.ipynb")

    # Hold the elements themselves: the box's caption changes once the slider moves.
    box = dataset_browser_box(page).element_handle()
    box.scroll_into_view_if_needed()
    image = box.query_selector("img")
    caption = box.query_selector_all(".widget-html")[-1]
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    src_before, caption_before = image.get_attribute("src"), caption.inner_text()
    pixels_before = image.screenshot()
    box.screenshot(path=str(SCREENSHOTS / "dataset_browser_page1.png"))

    # Move the slider one page right with the keyboard on its handle, as a student can.
    handle = box.query_selector(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[image, src_before], timeout=30_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    first_page_end = int(re.match(r"images 1–(\d+) of", caption_before).group(1))
    assert caption.inner_text().startswith(f"images {first_page_end + 1}–"), \
        f"after one step right the caption reads {caption.inner_text()!r} (was {caption_before!r})"
    assert image.screenshot() != pixels_before, "the slider moved but the picture did not change"
    box.screenshot(path=str(SCREENSHOTS / "dataset_browser_page2.png"))
    page.close()
    print(f"welcome notebook in the browser: {time.monotonic() - started:.1f} s")


def test_content_notebook_runs_all(lab, browser_context):
    name = content_notebook(lab["root"])
    if name is None:
        pytest.skip("notebooks/ holds only the welcome notebook so far")
    started = time.monotonic()
    page = browser_context.new_page()
    run_notebook_in_browser(page, lab, name)
    page.close()
    print(f"{name} in the browser: {time.monotonic() - started:.1f} s")


def test_make_lab_serves_the_notebooks(tmp_path):
    """`make lab` starts JupyterLab on 127.0.0.1 with a token and prints a URL that works."""
    env = lab_env(tmp_path)
    process = subprocess.Popen(["make", "-s", "lab"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        url = None
        deadline = time.monotonic() + 600  # the first `make lab` may still install the venv
        os.set_blocking(process.stdout.fileno(), False)
        while url is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            if not line:
                time.sleep(0.2)
                continue
            lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]+)", line)
            url = match.group(1) if match else None
        assert url, "`make lab` printed no http://127.0.0.1:PORT/lab?token=... URL:\n" + "".join(lines[-40:])
        base, token = url.split("/lab?token=")
        status, html = http_get(url, timeout=30)
        assert status == 200 and "JupyterLab" in html, f"/lab answered {status}"
        assert http_get(f"{base}/api/contents")[0] in (401, 403), "the API answered without the token"
        status, body = http_get(f"{base}/api/contents?token={token}", timeout=30)
        assert status == 200
        names = {item["name"] for item in json.loads(body)["content"]}
        expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert expected <= names, f"`make lab` serves {sorted(names)}, expected the notebooks/ folder"
    finally:
        stop(process)
