"""The HTML report never looks green for a failed run, and a failure's message comes before its traceback."""
from __future__ import annotations

import concurrent.futures
import html

import pytest

from tests.selftest.helpers import run_pytest

pytestmark = pytest.mark.selftest

CHECKS = '''
import pytest

def test_green_figure(measure):
    measure("latency_local_ms", 1.0)

def test_skipped_for_a_reason():
    pytest.skip("no Forge in this profile")

def test_fails_before_recording_anything():
    status = 502
    assert status == 200, "ComfyUI answered 502 through the proxy: is the backend down?"
'''


@pytest.fixture
def report_of_failed_run(tmp_path):
    checks = tmp_path / "test_checks.py"
    checks.write_text(CHECKS)
    report = tmp_path / "report.html"
    result = run_pytest(str(checks), f"--html={report}", "--self-contained-html")
    assert result.returncode == 1, result.stdout + result.stderr
    return html.unescape(report.read_text()), result.stdout


def test_headline_says_failed_with_the_failing_checks_message(report_of_failed_run):
    page, _ = report_of_failed_run
    assert "FAILED: 1 of 3 checks did not pass" in page
    assert "3 checks in " in page and "1 passed · 1 failed · 0 errors · 1 skipped" in page
    assert "targets missed: 0 of 1" in page
    head = page[page.index("comfycheck-verdict"):page.index("comfycheck-targets")]
    assert "test_fails_before_recording_anything" in head
    assert "ComfyUI answered 502 through the proxy: is the backend down?" in head


def test_failure_message_comes_before_its_traceback(report_of_failed_run, tmp_path):
    """As a reader sees it: rendered in Chromium, the message sits above the failure's log."""
    from playwright.sync_api import sync_playwright

    from comfycheck.probes.browser import CHROMIUM_ARGS, browser_executable

    _, terminal = report_of_failed_run

    def read_in_chromium() -> None:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_executable(None), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto((tmp_path / "report.html").as_uri())
                banner = page.locator(".comfycheck-failure").first
                banner.wait_for(timeout=10_000)
                assert "ComfyUI answered 502 through the proxy" in banner.inner_text()
                log = page.locator("tr.extras-row:has(.comfycheck-failure) .logwrapper").first
                above, below = banner.bounding_box(), log.bounding_box()
                assert above and below and above["y"] < below["y"], "the message sits below the traceback"
                # pytest-html's own "N tests took" leaves skips out (it would say 2 of these 3): hidden, ours shown
                assert not page.locator(".run-count").is_visible()
                assert "3 checks in " in page.locator(".comfycheck-verdict").inner_text()
            finally:
                browser.close()

    # in a thread of its own: this process may hold the UI checks' browser already (Playwright's sync API runs
    # one event loop a thread)
    with concurrent.futures.ThreadPoolExecutor(1) as reader:
        reader.submit(read_in_chromium).result(timeout=120)
    # short tracebacks: the failing line, not the whole function's source
    assert "assert status == 200" in terminal and "status = 502" not in terminal, terminal


TOGETHER = '''
def test_three_times(measure):
    with measure.together():
        measure("restart_s", 45.0, name="back after the kill", fix="look at the watchdog")
        measure("startup_s", 5.0, name="startup of the new process")
        measure("restart_s", 50.0, name="back through the proxy")
    raise AssertionError("not reached: together() fails at the end of its block")
'''


def test_a_check_records_all_its_figures_then_fails_once(tmp_path):
    from comfycheck.judge.measurements import read_json

    checks = tmp_path / "test_together.py"
    checks.write_text(TOGETHER)
    result = run_pytest(str(checks), f"--html={tmp_path / 'report.html'}")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert out.count("FAILED") == 1, out
    assert ("back after the kill: measured 45.0 s, target < 30 s (target 'restart_s'): look at the watchdog; "
            "back through the proxy: measured 50.0 s, target < 30 s (target 'restart_s')") in out, out
    assert "not reached" not in out, out
    recorded = read_json(tmp_path / "measurements.json")
    assert [(m.name, m.verdict) for m in recorded] == [
        ("back after the kill", "FAIL"), ("startup of the new process", "pass"), ("back through the proxy", "FAIL")]
