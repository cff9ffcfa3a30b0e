"""The four dashboards in a real browser: JupyterLab on 127.0.0.1 driven by Debian's chromium
through Playwright. One notebook, written by the test, builds FeatureDashboard, SteeringPanel,
PatchingView (linked to the FeatureDashboard) and ExpertMap on the zoo models; one page runs
it and every test drives one dashboard the way a person would (keyboard on slider handles,
dropdowns, mouse clicks on heatmap cells and buttons) and asserts on what the page shows:

* nothing is clipped at a 1000 px wide notebook output (scroll widths, and no element
  reaching past the output's right edge);
* the busy line appears after the interaction and before the result (a MutationObserver
  records the sequence of states the dashboard showed);
* replies end at the end-of-text mark (nothing shown after it);
* latent buttons navigate (nearest latents, PatchingView's SAE latents open the latent in the
  FeatureDashboard);
* the positions SteeringPanel's map shows are the trace's patched positions (asked of the
  kernel through a probe cell).

Screenshots go to tests/artifacts/ (git-ignored). The notebooks in notebooks/ are executed
by tests/notebooks; here the dashboards are built small so the whole file stays fast.

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
RUN_TIMEOUT_MS = 300_000
"""Longest wait for all cells of the notebook to finish (a loaded 2-core machine)."""
UPDATE_TIMEOUT_MS = 120_000
"""Longest wait for a dashboard to show the effect of a control."""
OUTPUT_WIDTH = 1000
"""Width (px) of the notebook's output area the dashboards must fit."""
NOTEBOOK = "dashboards.ipynb"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium "
                                                     "(.ci/run installs it)"),
]

# --- the notebook ------------------------------------------------------------------------------
# Each dashboard cell starts with a "# dashboard: NAME" line the tests find it by.
CELLS = {
    "setup": """\
import json, warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)
import pandas as pd
import interp, interp.cache
from interp import moe, resources
from interp.patching import SAEHook, activation_patching, relevance_patching
from interp.patching.protocol import ioi_inputs
from interp.sae import load
from interp.steering import Direction
from interp.tasks import refusal
from interp.widgets import ExpertMap, FeatureDashboard, PatchingView, SteeringPanel

model = interp.load_model("zoo-dense")
HOOK = "blocks.2.hook_resid_pre"
sae = load(resources.sae_path())
store = interp.cache.write(model, HOOK, 4096, "store", progress=False)
probes = []


def probe():
    \"\"\"What the kernel holds, once every dashboard's last request is shown: the test compares
    it with what the page shows.\"\"\"
    for view in (fd, sp, pv, em):
        assert view.wait(120), f"{type(view).__name__} still busy"
    probes.append(len(probes) + 1)
    facts = {"n": probes[-1], "fd_latent": int(fd.latent.value),
             "sp_positions": sp.positions.value, "sp_prompt_lengths": sp.prompt_lengths,
             "sp_patched": [sorted([int(r.layer), int(r.position)] for r in sp.patched_positions(i).itertuples())
                            for i in range(len(sp.prompt_lengths))],
             "pv_selected": list(pv.selected) if pv.selected else None,
             "em_off": sorted(list(p) for p in em.off)}
    print("PROBE " + json.dumps(facts))
""",
    "feature": """\
# dashboard: feature
fd = FeatureDashboard(sae, model, store, n_contexts=4, max_new_tokens=24)
fd
""",
    "steering": """\
# dashboard: steering
direction = Direction.mean_difference(model, [p.prompt for p in refusal.generate(8, "harmful", "train")],
                                      [p.prompt for p in refusal.generate(8, "benign", "train")], layer=2,
                                      name="refusal")
# a benign reply is ~22 tokens then <|endoftext|>: 30 tokens would run past it
sp = SteeringPanel(model, refusal.generate(1, "jailbreak", "heldout") + refusal.generate(1, "benign", "heldout"),
                   direction, max_new_tokens=30)
sp
""",
    "patching": """\
# dashboard: patching
ioi = ioi_inputs(model, n=4, split="train", template=0)
args = (model, ioi.clean, ioi.corrupt, ioi.metric)
sae_hook = SAEHook(sae, HOOK)
components = ("resid_pre", "attn_out", "mlp_out", "head")
scores = pd.concat([activation_patching(*args, components=components),
                    relevance_patching(*args, components=components),
                    relevance_patching(*args, components=("sae",), sae=sae_hook)], ignore_index=True)
pv = PatchingView(scores, *args, sae=sae_hook, method="relp", feature_dashboard=fd)
pv
""",
    "experts": """\
# dashboard: experts
moe_model = interp.load_model("zoo-moe")
train = [p.prompt for kind in ("harmful", "benign") for p in refusal.generate(6, kind, "train")]
expert_scores = moe.score_experts(moe.capture_routing(moe_model, train), [True] * 6 + [False] * 6)
em = ExpertMap(moe_model, expert_scores, [p.prompt for p in refusal.generate(3, "harmful", "heldout")],
               benign=[p.prompt for p in refusal.generate(2, "benign", "heldout")])
em
""",
    "probe": "# probe\nprobe()\n",
}


def _notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": name, "metadata": {}, "execution_count": None, "outputs": [],
                       "source": source} for name, source in CELLS.items()]}


# --- JupyterLab and the browser -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """URL of a JupyterLab serving a directory with the test's notebook; the server and its
    kernels are stopped by PID at the end."""
    root = tmp_path_factory.mktemp("lab")
    (root / NOTEBOOK).write_text(json.dumps(_notebook()))
    # the notebook's "python3" kernel is this interpreter, whatever kernels the machine has
    spec = root / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    # every cell stays in the DOM (no windowing), so the page can be measured and searched whole
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # and no news pop-up over the dashboards (offline anyway)
    (settings.parent / "apputils-extension").mkdir()
    (settings.parent / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    log = open(root / "jupyterlab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
        env=dict(os.environ, JUPYTER_PATH=str(root / "jupyter"), JUPYTERLAB_SETTINGS_DIR=str(root / "settings")))
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
                time.sleep(0.5)  # polling the server's status, bounded by the deadline
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
def page(lab):
    """One chromium page with the notebook open after Run All Cells, its output area
    OUTPUT_WIDTH px wide."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            run_all(page, lab)
            assert error_outputs(page) == []
            fit_output_width(page)
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def run_all(page, lab: str) -> None:
    """Open the notebook alone in a fresh workspace and wait until Run > Run All Cells is done."""
    page.goto(f"{lab}/lab/workspaces/dashboards/tree/{NOTEBOOK}?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    # the kernel is connected when the status bar reads "Python 3 (ipykernel) | Idle"
    wait(page, "notebook", "() => /\\(ipykernel\\) \\| Idle/.test(document.body.innerText)", 90_000)
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
                snapshot(page, "notebook-not-started")
                raise
            page.keyboard.press("Escape")
    wait(page, "notebook", f"""() => {{
             const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
             return prompts.length === {len(CELLS)} && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
           }}""", RUN_TIMEOUT_MS)


def fit_output_width(page) -> None:
    """Resize the viewport until the notebook's output areas are OUTPUT_WIDTH px wide."""
    width = "() => document.querySelector('.jp-CodeCell .jp-OutputArea-output').getBoundingClientRect().width"
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"] + OUTPUT_WIDTH - round(page.evaluate(width)),
                            "height": viewport["height"]})
    wait(page, "viewport", f"() => Math.abs(({width})() - {OUTPUT_WIDTH}) <= 2", 10_000)


def wait(page, name: str, condition: str, timeout_ms: int, arg=None) -> None:
    """Wait for the JS `condition`; on a timeout, save a screenshot `<name>-timeout.png` first."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_ms)
    except Exception:
        snapshot(page, f"{name}-timeout")
        raise


def error_outputs(page) -> list[str]:
    """Text of the error (traceback) outputs on the page."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent).filter(t => /Traceback|Error/.test(t))")


def snapshot(page, name: str, element=None) -> None:
    """A screenshot of `element` (else of the page) into tests/artifacts/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if element is not None:
        # a viewport taller than the element, so that JupyterLab's bars never cover part of it;
        # the width (hence the layout) stays as it is
        viewport = page.viewport_size
        height = element.evaluate("e => e.getBoundingClientRect().height")
        page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height) + 400)})
        try:
            element.scroll_into_view_if_needed()
            element.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        finally:
            page.set_viewport_size(viewport)
    else:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# --- what a person sees ---------------------------------------------------------------------------
def dashboard(page, name: str):
    """The output area of the cell that shows dashboard `name` (its widget's root inside)."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text=f"# dashboard: {name}"))
    # the output that holds the widget (a warning may be printed before it)
    out = cell.locator(".jp-OutputArea-output", has=page.locator(".widget-vbox")).first
    out.wait_for(state="visible")
    out.scroll_into_view_if_needed()
    return out


CLIPPED = """(out) => {
    // what does not fit: the output area or the widget's root scrolling sideways, or any visible
    // element reaching past the output's right edge (hidden by an overflow somewhere above it)
    const root = out.querySelector('.widget-vbox');
    const bad = [];
    for (const [what, el] of [['output area', out], ['widget root', root]])
        if (el.scrollWidth > el.clientWidth + 1) bad.push(`${what}: scrollWidth ${el.scrollWidth} > ${el.clientWidth}`);
    const right = out.getBoundingClientRect().right;
    for (const el of root.querySelectorAll('*')) {
        const r = el.getBoundingClientRect(), end = r.right + (parseFloat(getComputedStyle(el).marginRight) || 0);
        if (r.width === 0 || r.height === 0 || el.closest('.interp-row')) continue;
        const name = `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`;
        if (end > right + 1)
            bad.push(`${name} ends at ${Math.round(end)} (with its margin) > ${Math.round(right)}`);
        // text cut off inside its own box (a label's ellipsis), plotly's own drawing aside
        const overflow = getComputedStyle(el).overflowX;
        if ((overflow === 'hidden' || overflow === 'clip') && el.scrollWidth > el.clientWidth &&
                !el.closest('.js-plotly-plot'))
            bad.push(`${name} "${el.textContent.slice(0, 40)}" is cut: scrollWidth ${el.scrollWidth} > ${el.clientWidth}`);
    }
    return bad.slice(0, 10);
}"""


def assert_not_clipped(out, name: str) -> None:
    assert out.evaluate("o => o.getBoundingClientRect().width") == pytest.approx(OUTPUT_WIDTH, abs=2)
    bad = out.evaluate(CLIPPED)
    if bad:
        snapshot(out.page, f"{name}-clipped", out)
    assert bad == [], f"{name} does not fit a {OUTPUT_WIDTH} px output: {bad}"


def watch(out, result: str) -> None:
    """Record, from now on, each change of what `out` shows: "busy" (a .interp-busy element),
    "result" (the JS predicate `result(out)` holds) or "other"."""
    out.evaluate("""(out, result) => {
        const judge = new Function('out', `return (${result})(out)`);
        const state = () => out.querySelector('.interp-busy') ? 'busy' : (judge(out) ? 'result' : 'other');
        if (out.__observer) out.__observer.disconnect();
        out.__states = [state()];
        out.__observer = new MutationObserver(() => {
            const s = state();
            if (s !== out.__states[out.__states.length - 1]) out.__states.push(s);
        });
        out.__observer.observe(out, {subtree: true, childList: true, characterData: true, attributes: true});
    }""", result)


def wait_busy_then_result(out, name: str) -> list[str]:
    """Wait until `watch`'s result shows; assert the busy state showed before it. Returns the states."""
    # the dashboard may show an older result when watching starts: wait for busy, then a result
    wait(out.page, name, "(out) => out.__states.includes('busy') && out.__states[out.__states.length - 1] === 'result'",
         UPDATE_TIMEOUT_MS, arg=out.element_handle())
    states = out.evaluate("out => { out.__observer.disconnect(); return out.__states; }")
    assert states.index("busy") < len(states) - 1, f"{name}: states shown: {states}"
    return states


REPLIES_END_AT_EOS = """(out, selector) => [...out.querySelectorAll(selector)].map(cell => {
    // a reply cell: its text, whether it ended at the end-of-text mark, and anything after the mark
    const mark = cell.querySelector('.interp-eos');
    let after = '';
    for (let n = mark && mark.nextSibling; n; n = n.nextSibling) after += n.textContent;
    return {text: cell.textContent, ended: !!mark, after};
})"""


def assert_replies_end_at_eos(out, selector: str, name: str) -> list[dict]:
    cells = out.evaluate(REPLIES_END_AT_EOS, selector)
    assert cells, f"{name}: no reply cells ({selector}) shown"
    for cell in cells:
        assert "<|endoftext|>" not in cell["text"] and "User:" not in cell["text"], cell
        assert cell["after"] == "", f"{name}: a reply continues past its end-of-text mark: {cell}"
    return cells


def click_heatmap_cell(page, plot, row: int, col: int) -> None:
    """A mouse click on the cell (row, column index) of the heatmap in the plotly div `plot`."""
    x, y = plot.evaluate("""(gd, [row, col]) => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
        const trace = gd.data[0];
        const xv = trace.x && trace.x.length ? trace.x[col] : col, yv = trace.y && trace.y.length ? trace.y[row] : row;
        return [box.left + xa._offset + xa.l2p(xa.d2l(xv)), box.top + ya._offset + ya.l2p(ya.d2l(yv))];
    }""", [row, col])
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def run_probe(page) -> dict:
    """Run the probe cell (the kernel's facts, once the dashboards are idle) and return them."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text="# probe"))
    before = cell.locator(".jp-OutputArea-output").first.text_content() if cell.locator(
        ".jp-OutputArea-output").count() else ""
    n = json.loads(before.split("PROBE ", 1)[1])["n"] if "PROBE " in before else 0
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    out = cell.locator(".jp-OutputArea-output").first
    wait(page, "probe", """([cell, n]) => {
             const t = cell.querySelector('.jp-OutputArea-output');
             return t && t.textContent.includes('PROBE {"n": ' + (n + 1) + ',');
           }""", UPDATE_TIMEOUT_MS, arg=[cell.element_handle(), n])
    return json.loads(out.text_content().split("PROBE ", 1)[1])


def plot_titled(out, title: str):
    """The plotly div in `out` whose title starts with `title`."""
    plots = out.locator(".js-plotly-plot")
    for i in range(plots.count()):
        if plots.nth(i).evaluate("gd => (gd.layout.title && (gd.layout.title.text || gd.layout.title)) || ''") \
                .startswith(title):
            return plots.nth(i)
    raise AssertionError(f"no figure titled {title!r}")


# --- the dashboards ---------------------------------------------------------------------------------
def test_feature_dashboard(page):
    out = dashboard(page, "feature")
    assert_not_clipped(out, "feature_dashboard")
    stats = "out => out.querySelector('.interp-feature-dashboard b').textContent"
    first = out.evaluate(stats)

    # a nearest latent (decoder cosine) button opens that latent: every view follows
    link = out.locator(".widget-hbox", has_text="nearest latents by decoder cosine").locator(
        ".interp-latent-link").first
    target = int(link.text_content().split(" ")[0])
    assert f"latent {target}" != first
    link.scroll_into_view_if_needed()
    link.click()
    wait(page, "feature_dashboard-nearest", f"""(out) => ({stats})(out) === 'latent {target}' &&
             out.textContent.includes('activation histogram of latent {target}') &&
             out.textContent.includes('logit effects of latent {target}')""", UPDATE_TIMEOUT_MS,
         arg=out.element_handle())
    assert out.locator(".interp-row").count() > 0
    assert_not_clipped(out, "feature_dashboard")

    # the steering slider to its maximum: busy at once, then the steered continuation
    watch(out, f"""o => !!o.querySelector('.interp-steered') &&
                       o.textContent.includes('latent {target} \u00d7 10 max')""")
    handle = out.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("End")
    wait_busy_then_result(out, "feature_dashboard-steering")
    cells = assert_replies_end_at_eos(out, ".interp-unsteered, .interp-steered", "feature_dashboard")
    assert cells[0]["ended"], f"the unsteered continuation ends at end of text within 24 tokens: {cells[0]}"
    assert cells[0]["text"] != cells[1]["text"]
    assert_not_clipped(out, "feature_dashboard")
    snapshot(page, "feature_dashboard", out)


def test_steering_panel(page):
    out = dashboard(page, "steering")
    assert_not_clipped(out, "steering_panel")
    positions = out.locator(".widget-dropdown", has_text="positions").locator("select")
    prompt_choice = out.locator(".widget-dropdown", has_text="map of").locator("select")

    def shown_positions() -> list[list[int]]:
        """(layer, position) of every coloured cell of the map on the page."""
        return sorted(out.locator(".js-plotly-plot").first.evaluate(
            "gd => gd.data[0].z.flatMap((row, layer) => row.map((v, t) => v === null ? null : [layer, t]))"
            ".filter(c => c !== null)"))

    # layer 1's slider to its maximum: busy at once, then the replies and the map
    watch(out, "o => o.textContent.includes('replies changed') && !!o.querySelector('.interp-steered')")
    handle = out.locator(".widget-slider .noUi-handle").nth(1)
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("End")
    wait_busy_then_result(out, "steering_panel-slider")
    cells = assert_replies_end_at_eos(out, ".interp-unsteered, .interp-steered", "steering_panel")
    assert any(c["ended"] for c in cells), f"a reply of 30 tokens that reaches end of text shows the mark: {cells}"
    assert_not_clipped(out, "steering_panel")
    snapshot(page, "steering_panel-generated", out)

    for setting in ("generated", "last_prompt"):
        if setting != positions.input_value():
            watch(out, "o => o.textContent.includes('replies changed')")
            positions.select_option(setting)
            wait_busy_then_result(out, f"steering_panel-{setting}")
        facts = run_probe(page)
        assert facts["sp_positions"] == setting
        for i, patched in enumerate(facts["sp_patched"]):
            if prompt_choice.evaluate("s => s.selectedIndex") != i:
                prompt_choice.select_option(index=i)
            wait(page, "steering_panel-map", f"(out) => out.textContent.includes('prompt {i} (')", UPDATE_TIMEOUT_MS,
                 arg=out.element_handle())
            shown = shown_positions()
            assert shown == patched, f"{setting}, prompt {i}: the map shows {shown}, the trace patched {patched}"
            length = facts["sp_prompt_lengths"][i]
            if setting == "last_prompt":
                assert shown == [[1, length - 1]]
            else:  # from the last prompt token to the last token fed
                assert [t for _, t in shown][0] == length - 1
            assert f"patched at {len(shown)} position(s)" in out.text_content()
    snapshot(page, "steering_panel", out)


def test_patching_view_and_its_link_to_the_feature_dashboard(page):
    out = dashboard(page, "patching")
    assert_not_clipped(out, "patching_view")
    method = out.locator(".widget-dropdown", has_text="method").locator("select")
    correlation = out.locator(".widget-html", has_text="Pearson r with ap").text_content()
    assert "resid_pre" in correlation and "nan" not in correlation  # no r where the reference scored nothing

    # SAE latents were scored by RelP alone: under exact patching their map says so
    method.select_option(label="activation patching (exact)")
    wait(page, "patching_view-method", "(out) => out.textContent.includes('sae — no activation patching')",
         UPDATE_TIMEOUT_MS, arg=out.element_handle())
    assert error_outputs(page) == []
    method.select_option(label="relevance patching (RelP)")
    wait(page, "patching_view-method", "(out) => out.textContent.includes('sae — relevance patching')",
         UPDATE_TIMEOUT_MS, arg=out.element_handle())

    # a click on a residual cell: busy at once, then its exact verification beside the score
    resid = plot_titled(out, "resid_pre")
    resid.scroll_into_view_if_needed()
    watch(out, "o => o.textContent.includes('exact activation patching') && o.textContent.includes('error')")
    click_heatmap_cell(page, resid, 1, 0)
    wait_busy_then_result(out, "patching_view-click")
    assert resid.evaluate("gd => gd.data[1].x.length") == 1  # the clicked cell is outlined

    # an SAE cell lists its latents as buttons; one opens the latent in the FeatureDashboard
    sae_map = plot_titled(out, "sae")
    sae_map.scroll_into_view_if_needed()
    row, col = sae_map.evaluate("""gd => {
        let best = [0, 0], top = -1;
        gd.data[0].z.forEach((r, i) => r.forEach((v, j) => { if (Math.abs(v) > top) { top = Math.abs(v); best = [i, j]; } }));
        return best; }""")
    click_heatmap_cell(page, sae_map, row, col)
    links = out.locator(".interp-latent-link")
    links.first.wait_for(state="visible", timeout=UPDATE_TIMEOUT_MS)
    assert "click one to verify it and open it" in out.text_content()
    button = links.nth(1) if links.count() > 1 else links.first
    latent = int(button.text_content().split(" ")[1])
    watch(out, f"o => o.textContent.includes('.U{latent}.') && o.textContent.includes('exact activation patching')")
    button.click()
    wait_busy_then_result(out, "patching_view-latent")
    feature = dashboard(page, "feature")
    wait(page, "patching_view-opens-feature", f"""(out) =>
             out.querySelector('.interp-feature-dashboard b').textContent === 'latent {latent}'""",
         UPDATE_TIMEOUT_MS, arg=feature.element_handle())
    assert run_probe(page)["fd_latent"] == latent
    snapshot(page, "feature_dashboard-opened-from-patching_view", feature)
    out.scroll_into_view_if_needed()
    assert_not_clipped(out, "patching_view")
    snapshot(page, "patching_view", out)


def test_expert_map(page):
    out = dashboard(page, "experts")
    wait(page, "expert_map", "(out) => out.textContent.includes('refusal rate')", UPDATE_TIMEOUT_MS,
         arg=out.element_handle())
    assert_not_clipped(out, "expert_map")
    base = out.locator("b", has_text="refusal rate").first.text_content()

    # a click on the planted refusal expert (layer 2, expert 5) switches it off: busy, then the re-run
    watch(out, "o => o.textContent.includes('off (renormalize): [(2, 5)]') && "
               "o.textContent.includes('refusal rate')")
    click_heatmap_cell(page, out.locator(".js-plotly-plot").first, 2, 5)
    wait_busy_then_result(out, "expert_map-click")
    assert run_probe(page)["em_off"] == [[2, 5]]
    assert out.locator("b", has_text="refusal rate").first.text_content() != base
    assert "false refusals" in out.text_content()
    assert_replies_end_at_eos(out, ".interp-expert-replies td:nth-child(3)", "expert_map")
    assert_not_clipped(out, "expert_map")
    snapshot(page, "expert_map", out)
    assert error_outputs(page) == []
