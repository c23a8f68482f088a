"""The Forge page beside ComfyUI, in a real browser: ready by Forge's own condition, healthy, as before."""
from __future__ import annotations

import time

import pytest

READY = "#txt2img_prompt textarea"  # Forge's own readiness condition (its UI scripts wait on this element)
# ...but Gradio may still be building the rest (a visible "Loading..." where the sliders go) and the fonts may
# not be in yet: only then does the page look as it will, for a person and for the baseline.
BUILT_JS = """() => document.fonts.status === 'loaded' &&
  !Array.from(document.querySelectorAll('.loading, .pending')).some(e => e.offsetParent !== null)"""


@pytest.fixture(scope="module")
def forge_page(module_page, profile, deployment, watch_factory):
    if not profile.forge_url:
        pytest.skip(f"profile {profile.name!r} has no [forge] table: no Forge page to check")
    watch = watch_factory(module_page)
    t0 = time.monotonic()
    try:
        module_page.goto(profile.forge_url + "/", wait_until="domcontentloaded", timeout=profile.ui.timeout_s * 1000)
        module_page.locator(READY).wait_for(state="visible", timeout=profile.ui.timeout_s * 1000)
    except Exception as exc:  # noqa: BLE001 - connection refused, or the UI never built itself
        reason = str(exc).splitlines()[0]
        return None, watch, f"the Forge page {profile.forge_url}/ is not ready ({READY} never appeared): {reason}"
    try:
        module_page.wait_for_function(BUILT_JS, timeout=profile.ui.timeout_s * 1000)
    except Exception as exc:  # noqa: BLE001 - a component that never finished loading
        reason = str(exc).splitlines()[0]
        return None, watch, (f"the Forge page {profile.forge_url}/ never finished building (a Gradio component "
                             f"still 'Loading...', or its fonts not loaded): {reason}")
    return time.monotonic() - t0, watch, None


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
