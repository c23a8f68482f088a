"""The ComfyUI page, through the public HTTPS address, in a real browser: ready, healthy, connected, as before."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError

from comfycheck.comfy.expected import predict
from comfycheck.probes.browser import COMFYUI_EXPECTED_404, COMFYUI_EXPECTED_CONSOLE, navigation_cause
from comfycheck.comfy.workflows import load_workflow, make_unique
from conftest import pump_until, wait_state

READY_JS = """() => {
  const shown = el => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const splash = document.querySelector('#splash-loader');
  const run = document.querySelector('[data-testid=queue-button]')
    || [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Queue Prompt');
  return { app: window.app !== undefined, mask_gone: !shown(splash), canvas: shown(document.querySelector('#graph-canvas')),
           run_button: shown(run) };
}"""
READY_ALL_JS = f"() => {{ const s = ({READY_JS})(); return s.app && s.mask_gone && s.canvas && s.run_button; }}"
# The canvas's own stats text (FPS, timings) and the minimap change between loads: masked in comparisons.
MASKS_JS = """() => {
  const rects = [];
  const c = document.querySelector('#graph-canvas');
  if (c) { const r = c.getBoundingClientRect(); rects.push([r.left, r.bottom - 110, 220, 110]); }
  const m = document.querySelector('.minimap-canvas');
  if (m) { const r = (m.parentElement || m).getBoundingClientRect(); rects.push([r.left - 10, r.top - 40, r.width + 20, r.height + 90]); }
  return rects.map(r => r.map(v => Math.max(0, Math.round(v))));
}"""
DIALOG = ".p-dialog:visible, [role=dialog]:visible"


class Load:
    """What one visit of the page showed: readiness, timings, problems, its WebSockets."""

    def __init__(self):
        self.error: str | None = None
        self.ready_s: float | None = None
        self.dialogs_closed = 0
        self.watch = None


@pytest.fixture(scope="module")
def comfy_page(module_page, profile, deployment, watch_factory, foundations):
    if profile.public_url is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: the page is checked through the proxy")
    load = Load()
    load.watch = watch_factory(module_page, COMFYUI_EXPECTED_404, COMFYUI_EXPECTED_CONSOLE)
    load.error = _open(module_page, profile, load)
    foundations.report("comfyui_page", load.error)
    if load.error is None:
        load.dialogs_closed = _close_dialogs(module_page)
    return load


def _open(page, profile, load) -> str | None:
    """Open the page and wait for the app to be ready, or for a cause that means it never will be."""
    url = profile.public_url + "/"
    t0 = time.monotonic()
    try:
        page.goto(url, wait_until="domcontentloaded")
    except PlaywrightError as exc:
        return f"the ComfyUI page did not open: {navigation_cause(str(exc), url)}"
    deadline = t0 + profile.ui.timeout_s
    while True:
        state = _safe_eval(page, READY_JS) or {}
        if state and all(state.values()):
            load.ready_s = time.monotonic() - t0
            return None
        cause = load.watch.cause(url)
        missing = [k for k, v in state.items() if not v] or ["the page's script"]
        if cause:
            return f"the ComfyUI page {url} cannot become ready (missing {', '.join(missing)}): {cause}"
        if time.monotonic() >= deadline:
            problems = load.watch.problems()
            return (f"the ComfyUI page {url} was not ready after {profile.ui.timeout_s:g} s: missing "
                    f"{', '.join(missing)}" + (f"; the page saw: {'; '.join(problems[:6])}" if problems else ""))
        page.wait_for_timeout(100)  # Playwright delivers the page's events meanwhile


def _safe_eval(page, js):
    try:
        return page.evaluate(js)
    except Exception:  # noqa: BLE001
        return None


def _close_dialogs(page, rounds: int = 5) -> int:
    """First-visit dialogs (templates, tutorial) are dismissed the way a person would: Escape."""
    closed = 0
    for _ in range(rounds):
        if page.locator(DIALOG).count() == 0:
            break
        page.keyboard.press("Escape")
        closed += 1
        try:
            page.locator(DIALOG).first.wait_for(state="hidden", timeout=2000)
        except Exception:  # noqa: BLE001 - a dialog that Escape does not close: try its close button
            page.locator(f"{DIALOG} button[aria-label=Close]").first.click(timeout=2000)
    return closed


def _ready(load):
    if load.error:
        pytest.fail(load.error, pytrace=False)


@pytest.mark.foundation("comfyui_page")
def test_comfyui_page_becomes_ready(comfy_page, module_page, screenshots, measure):
    png, _ = screenshots.take(module_page, "comfyui", required=False)
    _ready(comfy_page)
    measure.info("ComfyUI page ready", round(comfy_page.ready_s, 2), "s", dialogs_closed=comfy_page.dialogs_closed,
                 title=module_page.title())


def test_comfyui_page_has_no_console_errors_or_failed_requests(comfy_page, measure):
    _ready(comfy_page)
    w = comfy_page.watch
    measure.info("tolerated (known frontend behaviour)", len(w.tolerated), details=w.tolerated)
    measure.info("blocked requests outside the profile's hosts", len(w.blocked), urls=sorted(set(w.blocked)))
    problems = w.problems()
    assert not problems, "the ComfyUI page is not healthy:\n  " + "\n  ".join(problems)


@pytest.mark.needs("public_websocket")
def test_comfyui_page_websocket_receives_status(comfy_page, module_page, profile):
    _ready(comfy_page)
    watch = comfy_page.watch
    try:
        pump_until(module_page, lambda: watch.websocket_state()[0] != "pending", 10,
                   "the page's WebSocket to /ws greeted or refused")
    except AssertionError:
        pytest.fail("the page opened no WebSocket to /ws within 10 s: the frontend falls back to polling and "
                    "shows 'Reconnecting...'", pytrace=False)
    state, detail = watch.websocket_state()
    assert state == "greeted", (
        f"the page's WebSocket to /ws was refused, it never received `status`: {detail}; the frontend falls back "
        "to polling and shows 'Reconnecting...'")


def test_comfyui_page_matches_baseline(comfy_page, module_page, profile, screenshots, measure):
    _ready(comfy_page)
    # A first visit shows an empty graph, later ones the default graph: compare a fixed workflow instead.
    workflow = load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow))
    module_page.evaluate("(wf) => window.app.loadApiJson(wf, 'comfycheck-baseline')", workflow)
    wait_state(module_page, f"() => window.app.graph && window.app.graph._nodes.length === {len(workflow)}", 10,
               "the baseline workflow drawn on the canvas")
    # the view (zoom, offset) is left over from the graph shown before; a fixed one makes the picture stable
    module_page.evaluate("""() => { const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [0, 0];
                                   window.app.canvas.setDirty(true, true); }""")
    module_page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    png, masks = screenshots.take(module_page, "comfyui-baseline-view", masks_js=MASKS_JS)
    screenshots.compare(png, "comfyui", masks, measure)


# Every SaveImage node holds its output images, each loaded (the frontend sets node.imgs from /view).
PREVIEWS_LOADED_JS = """() => {
  const saves = window.app.graph._nodes.filter(n => n.type === 'SaveImage');
  return saves.length > 0 && saves.every(n => (n.imgs || []).length > 0 &&
                                              n.imgs.every(img => img.complete && img.naturalWidth > 0));
}"""


@pytest.mark.generation
@pytest.mark.needs("public_websocket")
def test_comfyui_run_button_runs_smoke_workflow(comfy_page, module_page, profile, screenshots, measure):
    if not profile.ui.run_workflow:
        pytest.skip("the profile says not to run a workflow from the page ([ui] run_workflow = false)")
    _ready(comfy_page)
    workflow = make_unique(load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow)))
    module_page.evaluate("(wf) => window.app.loadApiJson(wf, 'comfycheck-smoke')", workflow)
    module_page.evaluate("""() => { const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [0, 0];
                                   window.app.canvas.setDirty(true, true); }""")  # the output drawn 1:1
    run = module_page.locator("[data-testid=queue-button]")
    if run.count() == 0:
        run = module_page.get_by_role("button", name="Queue Prompt")
    t0 = time.monotonic()
    with module_page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/prompt")) as posted:
        run.first.click()
    answer = posted.value
    assert answer.status == 200, f"clicking Run: POST /prompt answered {answer.status}: {answer.text()[:300]}"
    prompt_id = answer.json()["prompt_id"]

    def finished():
        state, detail = comfy_page.watch.websocket_state()
        if state == "refused":  # the page cannot hear the end of the run: no use waiting for it
            raise AssertionError(f"the run of prompt {prompt_id} cannot be followed on the page: its WebSocket "
                                 f"was refused: {detail}")
        for ws in comfy_page.watch.websockets:
            for m in ws["received"]:
                data = m.get("data") or {}
                if data.get("prompt_id") == prompt_id and m.get("type") in ("execution_success", "execution_error"):
                    return m
        return None

    end = pump_until(module_page, finished, profile.comfyui.generation_timeout_s,
                     f"the end of prompt {prompt_id} on the page's WebSocket")
    assert end["type"] == "execution_success", f"the run started from the page failed: {json.dumps(end['data'])[:400]}"
    measure.info("Run clicked -> execution_success on the page's WebSocket", round(time.monotonic() - t0, 2), "s",
                 prompt_id=prompt_id)
    # execution_success comes before the frontend has fetched and drawn the output: wait for that state
    try:
        module_page.wait_for_function(PREVIEWS_LOADED_JS, timeout=profile.ui.timeout_s * 1000)
        module_page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    except PlaywrightError as exc:
        pytest.fail(f"the run succeeded but the page never showed its output image: {str(exc).splitlines()[0]}",
                    pytrace=False)
    measure.info("Run clicked -> output image drawn on the page", round(time.monotonic() - t0, 2), "s")
    png, _ = screenshots.take(module_page, "comfyui-after-run")
    (want,) = predict(workflow)  # the output's colour, as ComfyUI computes it
    shown = int((np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) == np.array(want.rgb, np.uint8)).all(axis=2).sum())
    assert shown >= 0.9 * want.size[0] * want.size[1], (
        f"the page does not show the {want.describe()} output after the run ({shown} pixels of that colour)")
