"""The browser for the UI checks: which Chromium, trusting the profile's CA, watched pages, screenshots."""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from comfycheck.extras import lacking

if why := lacking("ui", "the browser checks"):
    pytest.skip(why, allow_module_level=True)
from playwright.sync_api import Error as PlaywrightError

from comfycheck.comfy.operations import PAGE_ROUTES
from comfycheck.config.paths import SCREENSHOTS_DIR, baselines_for
from comfycheck.probes.browser import (
    CHROMIUM_ARGS,
    PageWatch,
    UIError,
    browser_executable,
    compare_to_baseline,
    nss_home,
)


def pytest_itemcollected(item):  # called for the items of this folder only (its conftest's scope)
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
def module_page(browser, browser_context_args, profile):
    """One page per module: a page load is seconds, and each module's checks read the same load. The context
    carries the public address's credentials the way a student's browser does (basic auth typed in once, the
    portal's session cookie); a query token goes on the page's URL (ComfyPage)."""
    creds = profile.public_credentials
    context = browser.new_context(**browser_context_args, **creds.browser_context())
    if profile.public_url and creds.browser_cookies(profile.public_url):
        context.add_cookies(creds.browser_cookies(profile.public_url))
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


class Screenshots:
    """Takes a screenshot, keeps it under reports/, embeds it in the HTML report and compares it to its baseline."""

    def __init__(self, request, profile, extras):
        self.request, self.profile, self.extras = request, profile, extras
        self.update = request.config.getoption("--update-baselines")

    def take(self, page, name: str, *, masks: Callable[[], list] | None = None,
             required: bool = True) -> tuple[bytes | None, list]:
        """The screenshot and its masks. A picture that only illustrates the report (required=False) may fail
        to be taken (Chromium cannot capture its own error page, say) without hiding the test's verdict."""
        try:
            rects = masks() if masks else []
            png = page.screenshot(full_page=False, animations="disabled", caret="hide")
        except PlaywrightError as exc:
            why = str(exc).splitlines()[0]
            if required:
                pytest.fail(f"could not take the {name} screenshot of {page.url}: {why}", pytrace=False)
            self._note(f"{name}: no screenshot ({why})")
            return None, []
        out = SCREENSHOTS_DIR / self.profile.name / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
        self._attach(png, f"{name} (screenshot)")
        return png, [tuple(int(v) for v in m) for m in rects]

    def compare(self, png: bytes, name: str, masks: list, measure, *, instead_of_update: str = "") -> None:
        """`instead_of_update`: why refreshing the baseline is not the fix now (the page is not the frontend
        ComfyUI requires), said in place of the advice to run --update-baselines."""
        folder = self.profile.resolve(self.profile.ui.baselines_dir) if self.profile.ui.baselines_dir \
            else baselines_for(_safe(self.profile.name))
        baseline = folder / f"{name}.png"
        result = compare_to_baseline(png, baseline, masks=masks,
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
            f"(tolerance {self.profile.ui.baseline_tolerance_pct:g} %, baseline {baseline}); "
            + (instead_of_update or "if the change is intended, run with --update-baselines"))

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
        watch = PageWatch(allowed_hosts(profile), tuple(expected_404) + profile.ui.expected_404,
                          tuple(expected_console), refused_by_design=tuple(
                              r for r in PAGE_ROUTES if profile.public and profile.public.must_refuse(r.operation)))
        watch.attach(page)
        return watch
    return make

