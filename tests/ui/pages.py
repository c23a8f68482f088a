"""The ComfyUI page as the UI checks drive it, after the frontend's own ComfyPage fixture: named locators,
readiness by the app's state (never a fixed delay), and the few actions the checks take. Plus the two waits."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page

from comfycheck.judge.install import SERVED_FRONTEND_JS
from comfycheck.probes.browser import PageWatch, navigation_cause

# What "ready" is made of: the app object, the splash/loading mask gone, the canvas shown, the Run button shown.
READY_JS = """() => {
  const shown = el => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const splash = document.querySelector('#splash-loader');
  const run = document.querySelector('[data-testid=queue-button]')
    || [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Queue Prompt');
  return { app: window.app !== undefined, mask_gone: !shown(splash),
           canvas: shown(document.querySelector('#graph-canvas')), run_button: shown(run) };
}"""
# The canvas's own stats text (FPS, timings) and the minimap change between loads: masked in comparisons.
MASKS_JS = """() => {
  const rects = [];
  const c = document.querySelector('#graph-canvas');
  if (c) { const r = c.getBoundingClientRect(); rects.push([r.left, r.bottom - 110, 220, 110]); }
  const m = document.querySelector('.minimap-canvas');
  if (m) {
    const r = (m.parentElement || m).getBoundingClientRect();
    rects.push([r.left - 10, r.top - 40, r.width + 20, r.height + 90]);
  }
  return rects.map(r => r.map(v => Math.max(0, Math.round(v))));
}"""
# The view (zoom, offset) is left over from the graph shown before; a fixed one draws the graph 1:1, the same
# every time.
RESET_VIEW_JS = """() => { const ds = window.app.canvas.ds; ds.scale = 1; ds.offset = [0, 0];
                          window.app.canvas.setDirty(true, true); }"""
TWO_FRAMES_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
# Every SaveImage node holds its output images, each loaded (the frontend sets node.imgs from /view).
PREVIEWS_LOADED_JS = """() => {
  const saves = window.app.graph._nodes.filter(n => n.type === 'SaveImage');
  return saves.length > 0 && saves.every(n => (n.imgs || []).length > 0 &&
                                              n.imgs.every(img => img.complete && img.naturalWidth > 0));
}"""


def wait_state(page: Page, js: str, timeout_s: float, what: str, arg: Any = None) -> float:
    """Wait until `js` is truthy in the page (Playwright polls it on animation frames); seconds taken."""
    t0 = time.monotonic()
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000)
    except PlaywrightError as exc:  # its TimeoutError, or the page crashed
        raise AssertionError(f"{what}: not reached within {timeout_s:g} s ({type(exc).__name__})") from None
    return time.monotonic() - t0


def pump_until(page: Page, probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `probe` with a deadline while Playwright delivers the page's events (its own 50 ms waits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {timeout_s:g} s")
        page.wait_for_timeout(50)


class ComfyPage:
    """The ComfyUI frontend at `url`, in one Playwright page. `opened_as`: the URL the browser is sent to when it
    differs (a query token on it); only `url` is ever written in a message."""

    def __init__(self, page: Page, url: str, opened_as: str | None = None):
        self.page = page
        self.url = url
        self.opened_as = opened_as or url
        self.ready_s: float | None = None

    # --- locators -------------------------------------------------------------------------------
    @property
    def run_button(self) -> Locator:
        """Run ([data-testid=queue-button]), or "Queue Prompt" in the legacy menu."""
        new_menu = self.page.locator("[data-testid=queue-button]")
        return new_menu if new_menu.count() else self.page.get_by_role("button", name="Queue Prompt")

    @property
    def dialogs(self) -> Locator:
        return self.page.locator(".p-dialog:visible, [role=dialog]:visible")

    # --- state ----------------------------------------------------------------------------------
    def ready_state(self) -> dict[str, bool]:
        """Each part of readiness, by the app's own state; {} while the page's script cannot answer."""
        try:
            return self.page.evaluate(READY_JS) or {}
        except PlaywrightError:  # navigating, or the page crashed: not ready yet
            return {}

    def open(self, watch: PageWatch, timeout_s: float) -> str | None:
        """Open the page and wait until the app is ready; why not, when it is not (at once when the page's own
        requests show it never will be: a 403 from ComfyUI, a 502 from the proxy)."""
        t0 = time.monotonic()
        try:
            self.page.goto(self.opened_as, wait_until="domcontentloaded")
        except PlaywrightError as exc:
            return f"the ComfyUI page did not open: {navigation_cause(str(exc), self.url)}"
        deadline = t0 + timeout_s
        while True:
            state = self.ready_state()
            if state and all(state.values()):
                self.ready_s = time.monotonic() - t0
                return None
            cause = watch.cause(self.url)
            missing = [k for k, v in state.items() if not v] or ["the page's script"]
            if cause:
                return f"the ComfyUI page {self.url} cannot become ready (missing {', '.join(missing)}): {cause}"
            if time.monotonic() >= deadline:
                problems = watch.problems()
                return (f"the ComfyUI page {self.url} was not ready after {timeout_s:g} s: missing "
                        f"{', '.join(missing)}" + (f"; the page saw: {'; '.join(problems[:6])}" if problems else ""))
            self.page.wait_for_timeout(100)  # Playwright delivers the page's events meanwhile

    def frontend_version(self) -> str | None:
        """The frontend's version as the page itself says it (the app sets it as it mounts)."""
        try:
            version = self.page.evaluate(SERVED_FRONTEND_JS)
        except PlaywrightError:
            return None
        return str(version) if version else None

    # --- actions --------------------------------------------------------------------------------
    def close_dialogs(self, rounds: int = 5) -> int:
        """First-visit dialogs (templates, tutorial) are dismissed the way a person would: Escape."""
        closed = 0
        for _ in range(rounds):
            if self.dialogs.count() == 0:
                break
            self.page.keyboard.press("Escape")
            closed += 1
            try:
                self.dialogs.first.wait_for(state="hidden", timeout=2000)
            except PlaywrightError:  # a dialog that Escape does not close: its close button
                self.page.locator(".p-dialog:visible button[aria-label=Close], "
                                  "[role=dialog]:visible button[aria-label=Close]").first.click(timeout=2000)
        return closed

    def load_workflow(self, workflow: dict, name: str) -> None:
        """Load an API-format workflow into the graph, as the frontend's own loader does."""
        self.page.evaluate("([wf, name]) => window.app.loadApiJson(wf, name)", [workflow, name])

    def reset_view(self) -> None:
        self.page.evaluate(RESET_VIEW_JS)

    def next_frames(self) -> None:
        """Two animation frames: what was set is drawn."""
        self.page.evaluate(TWO_FRAMES_JS)

    def masks(self) -> list:
        return self.page.evaluate(MASKS_JS)

    def wait_for_nodes(self, count: int, timeout_s: float) -> float:
        return wait_state(self.page, f"() => window.app.graph && window.app.graph._nodes.length === {count}",
                          timeout_s, f"the workflow's {count} nodes drawn on the canvas")

    def wait_for_previews(self, timeout_s: float) -> None:
        """execution_success comes before the frontend has fetched and drawn the output: wait for that state."""
        self.page.wait_for_function(PREVIEWS_LOADED_JS, timeout=timeout_s * 1000)
        self.next_frames()
