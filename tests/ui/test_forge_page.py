"""The Forge page beside ComfyUI, in a real browser: ready by Forge's own condition, healthy, as before."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError

from comfycheck.probes.browser import navigation_cause

READY = "#txt2img_prompt textarea"  # Forge's own readiness condition (its UI scripts wait on this element)
# ...but Gradio may still be building the rest (a visible "Loading..." where the sliders go) and the fonts may
# not be in yet: only then does the page look as it will, for a person and for the baseline.
BUILT_JS = """() => document.fonts.status === 'loaded' &&
  !Array.from(document.querySelectorAll('.loading, .pending')).some(e => e.offsetParent !== null)"""


@pytest.fixture(scope="module")
def forge_page(module_page, profile, deployment, watch_factory, foundations):
    if not profile.forge_url:
        pytest.skip(f"profile {profile.name!r} has no [forge] table: no Forge page to check")
    watch = watch_factory(module_page)
    t0 = time.monotonic()
    error = _open(module_page, profile)
    foundations.report("forge_page", error)
    return (None if error else time.monotonic() - t0), watch, error


def _open(page, profile) -> str | None:
    url = profile.forge_url + "/"
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=profile.ui.timeout_s * 1000)
    except PlaywrightError as exc:  # it cannot load at all: say why now, not after the deadline
        return f"the Forge page {url} is not ready: {navigation_cause(str(exc), url)}"
    try:
        page.locator(READY).wait_for(state="visible", timeout=profile.ui.timeout_s * 1000)
    except PlaywrightError as exc:  # the UI never built itself
        return f"the Forge page {url} is not ready ({READY} never appeared): {str(exc).splitlines()[0]}"
    try:
        page.wait_for_function(BUILT_JS, timeout=profile.ui.timeout_s * 1000)
    except PlaywrightError as exc:  # a component that never finished loading
        return (f"the Forge page {url} never finished building (a Gradio component still 'Loading...', or its "
                f"fonts not loaded): {str(exc).splitlines()[0]}")
    return None


@pytest.mark.foundation("forge_page")
def test_forge_page_becomes_ready(forge_page, module_page, screenshots, measure):
    ready_s, _, error = forge_page
    screenshots.take(module_page, "forge", required=False)
    if error:
        pytest.fail(error, pytrace=False)
    for selector in ("#tabs", "#txt2img_generate"):
        assert module_page.locator(selector).count() == 1, f"the Forge page has no {selector}"
    measure.info("Forge page ready", round(ready_s, 2), "s")


def test_forge_page_has_no_console_errors_or_failed_requests(forge_page):
    _, watch, error = forge_page
    if error:
        pytest.fail(error, pytrace=False)
    problems = watch.problems()
    assert not problems, "the Forge page is not healthy:\n  " + "\n  ".join(problems)


def test_forge_page_matches_baseline(forge_page, module_page, screenshots, measure):
    _, _, error = forge_page
    if error:
        pytest.fail(error, pytrace=False)
    png, masks = screenshots.take(module_page, "forge-baseline-view")
    screenshots.compare(png, "forge", masks, measure)
