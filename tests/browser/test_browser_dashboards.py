"""The dashboards in a real browser: JupyterLab on 127.0.0.1 driven by Debian's chromium
through Playwright. Each dashboard notebook is opened, all its cells are run, one control of
its dashboard is moved, and the test waits until the page shows the update. Screenshots go
to tests/artifacts/ (git-ignored).

Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and playwright;
skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 240_000
"""Longest wait for all cells of one notebook to finish."""
UPDATE_TIMEOUT_MS = 60_000
"""Longest wait for a dashboard to show the effect of a control."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium "
                                                     "(.ci/run installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """URL of a JupyterLab serving a copy of notebooks/ (running cells must not write outputs
    into the repository's notebooks); the server and its kernels are stopped by PID at the end."""
    root = tmp_path_factory.mktemp("lab")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copy(path, root / path.name)
    # the notebooks' "python3" kernel is this interpreter, whatever kernels the machine has
    spec = root / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    port = _free_port()
    log = open(root / "jupyterlab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.disable_check_xsrf=True",  # lets the tests shut kernels down through the REST API
         f"--ServerApp.root_dir={root}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
        env=dict(os.environ, JUPYTER_PATH=str(root / "jupyter")))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own session: the server and its kernels
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser_context():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 1100})
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def one_kernel_at_a_time(lab):
    """Shut down every kernel after each test: a finished notebook's kernel (and any work its
    dashboard still does) must not compete with the next notebook for the CPU."""
    yield
    sessions = json.loads(urllib.request.urlopen(f"{lab}/api/sessions", timeout=10).read())
    for session in sessions:
        request = urllib.request.Request(f"{lab}/api/sessions/{session['id']}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).read()


def open_and_run_all(context, lab: str, notebook: str):
    """A page with `notebook` open, alone, in a fresh JupyterLab workspace, after Run > Run All
    Cells has finished."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    # the kernel is connected when the status bar reads "Python 3 (ipykernel) | Idle"
    _wait(page, notebook, "() => /\\(ipykernel\\) \\| Idle/.test(document.body.innerText)", 90_000)
    started = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                         .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""
    for attempt in range(3):  # a click that lands while the kernel is still settling is lost: retry
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=20_000)
            break
        except Exception:
            if attempt == 2:
                snapshot(page, f"{Path(notebook).stem}-not-started")
                raise
            page.keyboard.press("Escape")
    _wait(page, notebook, """() => {
             const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
             return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
           }""", RUN_TIMEOUT_MS)
    return page


def _wait(page, name: str, condition: str, timeout_ms: int, arg=None) -> None:
    """Wait for the JS `condition`; on a timeout, save a screenshot `<name>-timeout.png` first."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_ms)
    except Exception:
        snapshot(page, f"{Path(name).stem}-timeout")
        raise


def error_outputs(page) -> list[str]:
    """Text of the error (traceback) outputs on the page."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.textContent).filter(t => /Traceback|Error/.test(t))")


def snapshot(page, name: str, element=None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if element is not None:
        element.screenshot(path=str(ARTIFACTS / f"{name}-widget.png"))


def test_feature_dashboard_in_jupyterlab(lab, browser_context):
    page = open_and_run_all(browser_context, lab, "02_feature_dashboard.ipynb")
    assert error_outputs(page) == []
    dashboard = page.locator(".interp-feature-dashboard").first
    dashboard.wait_for(state="visible")
    dashboard.scroll_into_view_if_needed()
    stats = dashboard.locator("b", has_text="latent ").first
    before = stats.text_content()
    snapshot(page, "feature_dashboard-before", dashboard)

    latent_box = dashboard.locator("input[type=number]").first
    latent_box.fill("17")
    latent_box.press("Enter")
    _wait(page, "feature_dashboard", """() => {
             const d = document.querySelector('.interp-feature-dashboard');
             return d.querySelector('b') && d.querySelector('b').textContent === 'latent 17' &&
                    d.textContent.includes('activation histogram of latent 17');
           }""", UPDATE_TIMEOUT_MS)
    assert before != "latent 17"
    assert dashboard.locator(".interp-row").count() > 0
    snapshot(page, "feature_dashboard-after", dashboard)

    # the steering slider to its maximum (10 x the latent's max activation): the steered continuation
    # departs from the unsteered one; it is generated on the kernel's worker thread, newest request first
    handle = dashboard.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("End")
    _wait(page, "feature_dashboard-steering", """() => {
             const d = document.querySelector('.interp-feature-dashboard');
             const steered = d.querySelector('.interp-steered'), plain = d.querySelector('.interp-unsteered');
             return steered && plain && d.textContent.includes('latent 17 \u00d7 10 max') &&
                    steered.textContent !== plain.textContent;
           }""", UPDATE_TIMEOUT_MS)
    snapshot(page, "feature_dashboard-steered", dashboard)
    page.close()


OTHER_DASHBOARDS = ["03_steering.ipynb", "04_relevance_patching.ipynb", "05_moe_experts.ipynb"]


@pytest.mark.parametrize("notebook", OTHER_DASHBOARDS)
def test_other_dashboards_follow_their_first_control(lab, browser_context, notebook):
    """The other dashboards' notebooks, when present: moving the first ipywidgets slider of the
    notebook (its handle, by keyboard), or else picking another option of its first dropdown,
    must change what the dashboards display (text of HTML widgets and plotly figures)."""
    if not (REPO / "notebooks" / notebook).exists():
        pytest.skip(f"notebooks/{notebook} does not exist yet")
    name = Path(notebook).stem
    page = open_and_run_all(browser_context, lab, notebook)
    assert error_outputs(page) == []
    # what the dashboards display (HTML widgets and plotly figures), not the controls' own labels
    outputs = ("() => [...document.querySelectorAll('.jp-OutputArea-output .widget-html-content, "
               ".jp-OutputArea-output .js-plotly-plot')].map(e => e.textContent).join('|')")
    handle = page.locator(".jp-OutputArea-output .widget-slider .noUi-handle").first
    dropdown = page.locator(".jp-OutputArea-output .widget-dropdown select").first
    if handle.count():
        handle.scroll_into_view_if_needed()
        before = page.evaluate(outputs)
        snapshot(page, f"{name}-before")
        handle.focus()
        for _ in range(3):
            handle.press("ArrowRight")
    elif dropdown.count():
        dropdown.scroll_into_view_if_needed()
        before = page.evaluate(outputs)
        snapshot(page, f"{name}-before")
        options = dropdown.evaluate("s => [...s.options].map(o => o.value)")
        current = dropdown.evaluate("s => s.value")
        assert len(options) > 1, f"{notebook}: its first dropdown has one option"
        dropdown.select_option(next(o for o in options if o != current))
    else:
        pytest.fail(f"{notebook} shows no ipywidgets slider or dropdown to drive")
    _wait(page, notebook, f"(before) => ({outputs})() !== before", UPDATE_TIMEOUT_MS, arg=before)
    snapshot(page, f"{name}-after")
    page.close()
