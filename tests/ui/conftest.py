"""The browser for the UI checks: which Chromium, trusting the profile's CA, watched pages, screenshots."""
from __future__ import annotations

import base64
import html
import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.probes.browser import CHROMIUM_ARGS, PageWatch, UIError, browser_executable, compare_to_baseline, nss_home

BASELINES = PROJECT_ROOT / "fixtures" / "baselines"
SCREENSHOTS = PROJECT_ROOT / "reports" / "screenshots"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/ui/" in item.nodeid:
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, profile, pytestconfig, tmp_path_factory):
    try:
        executable = browser_executable(pytestconfig.getoption("--browser-path") or profile.ui.browser_path)
        args = dict(browser_type_launch_args, args=[*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS])
        if executable:
            args["executable_path"] = executable
        if profile.ca_bundle:
            if not profile.ca_bundle.is_file():
                raise UIError(f"CA bundle {profile.ca_bundle} (public.ca_bundle) does not exist")
            home = nss_home(profile.ca_bundle, tmp_path_factory.mktemp("browser-home"))
            args["env"] = {"HOME": str(home)}
    except UIError as exc:
        pytest.fail(str(exc), pytrace=False)
    return args


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args, profile):
    width, height = profile.ui.viewport
    return {**browser_context_args, "viewport": {"width": width, "height": height}, "ignore_https_errors": False}


def allowed_hosts(profile) -> set[str]:
    hosts = {"localhost", "127.0.0.1", "::1"}
    for url in (profile.comfyui.url, profile.public_url, profile.forge_url):
        if url:
            hosts.add(urlsplit(url).hostname)
    return hosts


@pytest.fixture(scope="module")
def module_page(browser, browser_context_args):
    """One page per module: a page load is seconds, and each module's checks read the same load."""
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def wait_state(page, js: str, timeout_s: float, what: str, arg=None) -> float:
    """Wait until `js` is truthy in the page (Playwright polls it on animation frames); seconds taken."""
    t0 = time.monotonic()
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000)
    except Exception as exc:  # Playwright's TimeoutError, or the page crashed
        raise AssertionError(f"{what}: not reached within {timeout_s:g} s ({type(exc).__name__})") from None
    return time.monotonic() - t0


def pump_until(page, probe, timeout_s: float, what: str):
    """Poll `probe` with a deadline while Playwright delivers the page's events (its own 50 ms waits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {timeout_s:g} s")
        page.wait_for_timeout(50)


class Screenshots:
    """Takes a screenshot, keeps it under reports/, embeds it in the HTML report and compares it to its baseline."""

    def __init__(self, request, profile, extras):
        self.request, self.profile, self.extras = request, profile, extras
        self.update = request.config.getoption("--update-baselines")

    def take(self, page, name: str, *, masks_js: str | None = None, required: bool = True) -> tuple[bytes | None, list]:
        """The screenshot and its masks. A picture that only illustrates the report (required=False) may fail
        to be taken (Chromium cannot capture its own error page, say) without hiding the test's verdict."""
        try:
            masks = page.evaluate(masks_js) if masks_js else []
            png = page.screenshot(full_page=False, animations="disabled", caret="hide")
        except PlaywrightError as exc:
            why = str(exc).splitlines()[0]
            if required:
                pytest.fail(f"could not take the {name} screenshot of {page.url}: {why}", pytrace=False)
            self._note(f"{name}: no screenshot ({why})")
            return None, []
        out = SCREENSHOTS / self.profile.name / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
        self._attach(png, f"{name} (screenshot)")
        return png, [tuple(int(v) for v in m) for m in masks]

    def compare(self, png: bytes, name: str, masks: list, measure) -> None:
        folder = self.profile.resolve(self.profile.ui.baselines_dir) if self.profile.ui.baselines_dir \
            else BASELINES / _safe(self.profile.name)
        baseline = folder / f"{name}.png"
        result = compare_to_baseline(png, baseline, masks=masks, tolerance_pct=self.profile.ui.baseline_tolerance_pct,
                                     update=self.update)
        if result.written:
            why = "--update-baselines" if self.update else "there was none"
            measure.info(f"{name} baseline", f"written ({why})", path=str(baseline))
            return
        if result.diff_png:
            self._attach(result.diff_png, f"{name} (changed pixels in red)")
        assert not result.size_changed, f"{name} screenshot size changed against its baseline: {result.size_changed}"
        measure.info(f"{name} changed against baseline", result.changed_pct, "%",
                     tolerance_pct=self.profile.ui.baseline_tolerance_pct, masks=len(masks),
                     anti_aliased_pixels_ignored=result.anti_aliased)
        assert result.changed_pct <= self.profile.ui.baseline_tolerance_pct, (
            f"{name} looks different from its baseline: {result.changed_pct:.2f} % of the pixels changed "
            f"(tolerance {self.profile.ui.baseline_tolerance_pct:g} %, baseline {baseline}); if the change is "
            "intended, run with --update-baselines")

    def _note(self, text: str) -> None:
        try:
            from pytest_html import extras
        except ImportError:
            return
        self.extras.append(extras.html(f"<p>{html.escape(text)}</p>"))

    def _attach(self, png: bytes, name: str) -> None:
        try:
            from pytest_html import extras
        except ImportError:
            return
        self.extras.append(extras.png(base64.b64encode(png).decode(), name))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@pytest.fixture
def screenshots(request, profile, extras):
    return Screenshots(request, profile, extras)


@pytest.fixture(scope="module")
def watch_factory(profile):
    def make(page, expected_404=(), expected_console=()) -> PageWatch:
        watch = PageWatch(allowed_hosts(profile), tuple(expected_404) + profile.ui.expected_404, tuple(expected_console))
        watch.attach(page)
        return watch
    return make

