"""Real-browser tests: the temperature explorer as a learner meets it, in headless Chromium.

1. Notebook 02 in JupyterLab: open it, Run → Run All Cells, move the temperature slider (End key on
   its handle, then typing into its readout) and check that the figure is redrawn each time.
2. The Voilà app apps/temperature_explorer.ipynb: render it, check the code is hidden, move T, check
   the figure changes.

Servers listen on 127.0.0.1 only, on a free port, behind a random token, and serve a temporary
copy of notebooks/ so no outputs are ever written into the repository. Screenshots go to
artifacts/screenshots/ (git-ignored) for a human to look at. Chromium is found by tests/chromium.py,
the same search `make browser-deps` uses: KDLAB_CHROMIUM, then chromium / chromium-browser /
google-chrome on PATH, then Playwright's own downloaded Chromium.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path

import pytest

from chromium import ChromiumNotFound, find_chromium, launched

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_02 = "02-Soft-Targets-and-Temperature.ipynb"
APP = ROOT / "apps" / "temperature_explorer.ipynb"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

VIEWPORT = {"width": 1440, "height": 1000}

# The machine may be shared and slow: generous waits, but each one names what it waited for.
SERVER_START_S = 120
NOTEBOOK_RUN_S = 180
REDRAW_S = 60


# --- processes ---

def free_port() -> int:
    """A TCP port nobody listens on right now (the server is told not to try others)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return text[-chars:]


def stop(process: subprocess.Popen) -> None:
    """Stop a server we started and every process it started (kernels run in their own sessions)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # servers shut their kernels down on SIGTERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def server(command: list[str], port: int, log: Path, env: dict):
    """Run a Jupyter/Voilà server until the with-block ends; wait until its port accepts connections."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[2]} exited with code {process.returncode} before answering:\n{log_tail(log)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{command[2]} did not answer on port {port} within {SERVER_START_S} s:\n{log_tail(log)}")
            time.sleep(0.5)
        yield process
    finally:
        stop(process)


def lab_command(root: Path, port: int, token: str) -> list[str]:
    """JupyterLab on 127.0.0.1:port behind `token`, serving `root`, no browser of its own, no other port tried."""
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    return command + (["--allow-root"] if os.geteuid() == 0 else [])


def server_env(tmp_path: Path) -> dict:
    """Environment for a server: offline hub, and JupyterLab state kept in tmp_path, never in ~/.jupyter."""
    settings = tmp_path / "lab-settings"
    # No "Would you like to receive official Jupyter news?" toast over the notebook.
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell in the DOM, so the test can see every prompt and output without scrolling.
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),  # the notebook-signing key, not in ~/.local
    }


@pytest.fixture(scope="module")
def teacher_cache():
    """Build the teacher cache before any server starts, so notebook timeouts measure the notebook, not the build."""
    import kdlab

    kdlab.load_teacher_cache(progress=False)


# --- finding Chromium (tests/chromium.py): fast, no browser needed ---

def fake_browser(folder: Path, name: str, executable: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def no_playwright() -> None:
    return None


def test_kdlab_chromium_wins_over_path(tmp_path, monkeypatch):
    chosen = fake_browser(tmp_path / "mine", "my-chrome")
    fake_browser(tmp_path / "bin", "chromium")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_chromium({"KDLAB_CHROMIUM": str(chosen)}, playwright_path=no_playwright) == str(chosen)


def test_a_wrong_kdlab_chromium_is_reported_not_replaced(tmp_path, monkeypatch):
    fake_browser(tmp_path / "bin", "chromium")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    for wrong in (tmp_path / "missing", fake_browser(tmp_path / "mine", "not-executable", executable=False)):
        with pytest.raises(ChromiumNotFound, match="KDLAB_CHROMIUM=.* is not an executable file"):
            find_chromium({"KDLAB_CHROMIUM": str(wrong)}, playwright_path=no_playwright)


@pytest.mark.parametrize("present, expected", [
    (["chromium", "chromium-browser", "google-chrome"], "chromium"),
    (["chromium-browser", "google-chrome"], "chromium-browser"),  # Ubuntu's name
    (["google-chrome"], "google-chrome"),
])
def test_path_is_searched_in_order(tmp_path, monkeypatch, present, expected):
    for name in present:
        fake_browser(tmp_path / "bin", name)
    fake_browser(tmp_path / "early", "chromium", executable=False)  # earlier on PATH but not executable: skipped
    monkeypatch.setenv("PATH", f"{tmp_path / 'early'}{os.pathsep}{tmp_path / 'bin'}")
    assert find_chromium({}, playwright_path=no_playwright) == str(tmp_path / "bin" / expected)


def test_playwright_browser_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    downloaded = fake_browser(tmp_path / "ms-playwright" / "chromium-1" / "chrome-linux64", "chrome")
    assert find_chromium({}, playwright_path=lambda: str(downloaded)) == str(downloaded)
    # Playwright names its path even before `playwright install chromium` has downloaded anything.
    with pytest.raises(ChromiumNotFound):
        find_chromium({}, playwright_path=lambda: str(tmp_path / "not-downloaded" / "chrome"))


def test_no_chromium_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ChromiumNotFound) as missing:
        find_chromium({}, playwright_path=no_playwright)
    message = str(missing.value)
    assert "\n" not in message
    for hint in ("apt-get install chromium", "python -m playwright install chromium", "KDLAB_CHROMIUM"):
        assert hint in message


def test_the_search_runs_as_a_script_for_the_makefile(tmp_path):
    script = ROOT / "tests" / "chromium.py"
    browser = fake_browser(tmp_path / "mine", "chrome")
    found = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env={**os.environ, "KDLAB_CHROMIUM": str(browser)})
    assert (found.returncode, found.stdout.strip()) == (0, str(browser))
    missing = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env={**os.environ, "KDLAB_CHROMIUM": str(tmp_path / "missing")})
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1 and "KDLAB_CHROMIUM" in missing.stderr


def test_makefile_and_browser_test_share_the_search():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^browser-deps:.*\n((?:\t.*\n|\s+.*\\\n)+)", makefile, re.M)
    assert recipe and "tests/chromium.py" in recipe.group(1), "make browser-deps must find Chromium with tests/chromium.py"
    assert "command -v chromium" not in makefile, "the Makefile must not search for Chromium a second, different way"
    here = Path(__file__).read_text()
    assert "executable = find_chromium()" in here and "/usr/bin/" + "chromium" not in here


# --- browser ---

@pytest.fixture(scope="module")
def chromium(teacher_cache):
    """Headless Chromium driven by Playwright; a missing browser is a failure, not a skip."""
    try:
        executable = find_chromium()
    except ChromiumNotFound as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401 - a clear failure when the package is missing
    except ImportError:
        pytest.fail("The browser tests need the playwright package: `.venv/bin/pip install -r requirements.txt`.",
                    pytrace=False)
    with launched(executable) as browser:
        yield browser


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot_folder(name: str) -> Path:
    folder = SCREENSHOTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def temperature_controls(page, scope_selector: str):
    """The explorer (outermost widget box holding a slider labelled 'T:'), its T slider and its figure."""
    label = page.locator(".widget-label", has_text=re.compile(r"^\s*T:\s*$"))
    explorer = page.locator(f"{scope_selector} .widget-vbox").filter(has=label).first
    slider = explorer.locator(".widget-hslider").filter(has=label).first
    return explorer, slider, explorer.locator(".widget-output img").first


def wait_for_redraw(page, explorer, figure, readout, old_src: str, expected: str, what: str) -> str:
    """Wait until the readout and the kernel's summary line show the new T and a different picture has arrived.

    The kernel writes the summary line, then draws the figure (one update per value change), so once both
    have changed after a single change, the picture on screen is the one for the new T.
    """
    deadline = time.monotonic() + REDRAW_S
    while time.monotonic() < deadline:
        src = figure.get_attribute("src") or ""
        if (readout.inner_text().strip() == expected and f"at T = {expected}" in explorer.inner_text()
                and src and src != old_src):
            return src
        page.wait_for_timeout(250)
    pytest.fail(f"after {what}, expected T = {expected} and a new figure within {REDRAW_S} s; readout is "
                f"{readout.inner_text().strip()!r}, figure changed: {figure.get_attribute('src') != old_src}; "
                f"explorer says: {explorer.inner_text()[:500]!r}")


def move_temperature(page, explorer, slider, figure, shots: Path) -> list[str]:
    """Screenshot at T = 1, press End on the slider's handle (T = 50), type 4 into the readout; return the three srcs."""
    readout = slider.locator(".widget-readout")
    figure.wait_for(state="visible", timeout=REDRAW_S * 1000)
    start = readout.inner_text().strip()
    assert start == "1.00", f"the explorer should open at T = 1.00, its readout says {start!r}"
    srcs = [figure.get_attribute("src")]
    explorer.screenshot(path=shots / f"1-T1.00.png")

    # Keyboard on the slider's handle: End jumps to the largest T. One key press = one value change = one redraw,
    # so "the picture changed" below can only be the picture for the new T.
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    handle.press("End")
    srcs.append(wait_for_redraw(page, explorer, figure, readout, srcs[-1], "50.00", "End on the T slider's handle"))
    explorer.screenshot(path=shots / f"2-T50.00-keyboard.png")

    # Typing into the readout, as a learner who wants exactly T = 4 would.
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    page.keyboard.press("Enter")
    srcs.append(wait_for_redraw(page, explorer, figure, readout, srcs[-1], "4.00", "typing 4 into the T readout"))
    explorer.screenshot(path=shots / f"3-T4.00-typed.png")
    assert len(set(srcs)) == 3, "each temperature should give a different picture"
    return srcs


# --- 1. notebook 02 in JupyterLab ---

def wait_for_kernel(page) -> None:
    """Wait until the status bar says the kernel is idle (the toolbar's indicator says 'idle' before any kernel)."""
    statusbar = page.locator("#jp-main-statusbar")
    deadline = time.monotonic() + SERVER_START_S
    while not re.search(r"\|\s*Idle\b", text := statusbar.inner_text()) or "No Kernel" in text:
        if time.monotonic() > deadline:
            pytest.fail(f"the kernel did not become idle within {SERVER_START_S} s; status bar: {text!r}")
        page.wait_for_timeout(250)


def run_all_cells(page, notebook_name: str) -> None:
    """Run → Run All Cells from the menu bar, then wait until every code cell has an execution count."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline = time.monotonic() + NOTEBOOK_RUN_S
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    while True:
        prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            return
        outputs = "\n".join(notebook.locator(".jp-OutputArea-output").all_inner_texts())
        if "Traceback (most recent call last)" in outputs:  # Run All stops at an error: no point waiting
            start = max(outputs.find("Traceback (most recent call last)") - 300, 0)
            pytest.fail(f"{notebook_name} raised while running all cells:\n{outputs[start:start + 3000]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{notebook_name}: not every cell finished within {NOTEBOOK_RUN_S} s; prompts: {prompts}")
        page.wait_for_timeout(500)


@pytest.mark.browser
def test_notebook_02_temperature_explorer_redraws_in_jupyterlab(page, tmp_path):
    assert (NOTEBOOKS / NOTEBOOK_02).is_file(), f"notebooks/{NOTEBOOK_02} is missing"
    root = tmp_path / "notebooks"  # a copy: autosave and outputs never touch the repository
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    command = lab_command(root, port, token)
    shots = screenshot_folder("jupyterlab-02")
    log = tmp_path / "jupyterlab.log"

    with server(command, port, log, server_env(tmp_path)):
        try:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK_02}?token={token}", timeout=SERVER_START_S * 1000)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=SERVER_START_S * 1000)
            # A "Select Kernel" dialog appears only if the notebook's kernel is unknown here: take the default.
            dialog = page.locator(".jp-Dialog")
            with contextlib.suppress(Exception):
                dialog.wait_for(timeout=3000)
                dialog.locator(".jp-mod-accept").click()
            wait_for_kernel(page)
            run_all_cells(page, NOTEBOOK_02)
            page.screenshot(path=shots / "0-after-run-all.png")

            explorer, slider, figure = temperature_controls(page, ".jp-NotebookPanel .jp-OutputArea-output")
            explorer.scroll_into_view_if_needed()
            move_temperature(page, explorer, slider, figure, shots)
            page.screenshot(path=shots / "4-page-at-T4.png")
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=shots / "failure.png")
            print(f"--- JupyterLab log ---\n{log_tail(log)}")
            raise


def test_the_chinese_link_opens_notebook_00_in_chinese_jupyterlab(page, tmp_path):
    """README.zh-CN's Binder link and `make lab-zh` go to /kdlab/language/zh-CN (kdlab_jupyter): JupyterLab's own
    menus in Chinese (the language pack), the Chinese notebook 00 open, and the choice kept in the user settings."""
    root = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    command = lab_command(root, port, token)
    env = server_env(tmp_path)
    shots = screenshot_folder("jupyterlab-zh")
    log = tmp_path / "jupyterlab.log"
    with server(command, port, log, env):
        try:
            missing = page.request.get(f"http://127.0.0.1:{port}/kdlab/language/fr?token={token}")
            assert missing.status == 404
            page.goto(f"http://127.0.0.1:{port}/kdlab/language/zh-CN?token={token}", timeout=SERVER_START_S * 1000)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=SERVER_START_S * 1000)
            assert page.url.split("?")[0].endswith("/lab/tree/zh-CN/00-Welcome.ipynb"), page.url
            menu = page.locator("#jp-menu-panel, .lm-MenuBar").first
            menu.get_by_text("文件", exact=True).wait_for(timeout=60_000)  # "File", from the language pack
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            page.locator(".jp-NotebookPanel .jp-MarkdownOutput h1", has_text="欢迎").first.wait_for(timeout=60_000)
            page.screenshot(path=shots / "0-chinese-lab.png")
            setting = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
            assert json.loads(setting.read_text())["locale"] == "zh_CN"
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=shots / "failure.png")
            print(f"--- JupyterLab log ---\n{log_tail(log)}")
            raise


# --- 2. the Voilà app ---

def test_app_is_committed_without_outputs():
    cells = json.loads(APP.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{APP.name}: cells {dirty} carry outputs; strip them before committing"


@pytest.mark.browser
def test_voila_app_renders_and_redraws(page, tmp_path):
    try:
        import voila  # noqa: F401
    except ImportError:
        pytest.fail("The Voilà test needs voila (pinned in requirements.txt): `.venv/bin/pip install -r requirements.txt`.",
                    pytrace=False)
    app_dir = tmp_path / "apps"  # a copy, for the same reason as above
    app_dir.mkdir()
    shutil.copy(APP, app_dir / APP.name)
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "voila", str(app_dir / APP.name), "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", f"--token={token}"]
    shots = screenshot_folder("voila-app")
    log = tmp_path / "voila.log"

    with server(command, port, log, server_env(tmp_path)):
        try:
            page.goto(f"http://127.0.0.1:{port}/?token={token}", timeout=SERVER_START_S * 1000)
            explorer, slider, figure = temperature_controls(page, "body")
            figure.wait_for(state="visible", timeout=NOTEBOOK_RUN_S * 1000)
            page.screenshot(path=shots / "0-page.png")
            body = page.locator("body").inner_text()
            assert "How sure is the teacher?" in body, "the app's title should be shown"
            assert "load_teacher_cache" not in body, "Voilà should hide the code cells"
            assert "Traceback" not in body, f"the app raised:\n{body[:3000]}"
            move_temperature(page, explorer, slider, figure, shots)
            page.screenshot(path=shots / "4-page-at-T4.png")
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=shots / "failure.png")
            print(f"--- Voilà log ---\n{log_tail(log)}")
            raise
