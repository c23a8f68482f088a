"""UI faults in the embedded stack: each fails its named browser check with a clear message."""
from __future__ import annotations

import pytest

from comfycheck.stack import EmbeddedStack
from tests.selftest.helpers import assert_fails, blocked_lines, red_lines, run_pytest

pytestmark = pytest.mark.selftest
PAGE = "tests/ui/test_comfyui_page.py"
FORGE_PAGE = "tests/ui/test_forge_page.py"
FORGE_API = "tests/acceptance/test_forge.py"
HEALTH = f"{PAGE}::test_comfyui_page_has_no_console_errors_or_failed_requests[chromium]"


def test_healthy_pages_pass_every_ui_check(deployment):
    result = run_pytest("tests/ui", FORGE_API, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def test_frontend_asset_404_is_a_failed_request(fault_switch, profile):
    fault_switch.set(asset_404="materialdesignicons.min.css")
    assert_fails(run_pytest(HEALTH), HEALTH, "the ComfyUI page is not healthy",
                 f"failed request: 404 GET {profile.public.url}/materialdesignicons.min.css")


def test_console_error_in_the_page_is_reported(fault_switch):
    fault_switch.set(console_error="comfycheck-selftest: extension crashed while loading")
    assert_fails(run_pytest(HEALTH), HEALTH, "console error: comfycheck-selftest: extension crashed while loading")


def test_websocket_blocked_at_the_proxy_is_caught(proxy_faults, profile):
    proxy_faults(ws_upgrade_blocked=True)
    nodeid = f"{PAGE}::test_comfyui_page_websocket_receives_status[chromium]"
    assert_fails(run_pytest(nodeid), nodeid, "the page's WebSocket to /ws was refused, it never received `status`",
                 f"{profile.public.url.replace('https://', 'wss://', 1)}/ws",
                 "the proxy does not pass WebSocket upgrades",
                 "the frontend falls back to polling")


def test_page_changed_against_its_baseline_fails(fault_switch):
    fault_switch.set(user_css="body { filter: invert(1) hue-rotate(90deg) }")
    nodeid = f"{PAGE}::test_comfyui_page_matches_baseline[chromium]"
    assert_fails(run_pytest(nodeid), nodeid, "comfyui looks different from its baseline", "% of the pixels changed",
                 "--update-baselines")


def test_missing_baseline_is_written_and_reported_then_compared(make_profile, tmp_path):
    profile = make_profile({"ui": {"baselines_dir": str(tmp_path / "baselines")}})
    nodeid = f"{FORGE_PAGE}::test_forge_page_matches_baseline[chromium]"
    first = run_pytest(nodeid, "-rA", profile=profile)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "baselines" / "forge.png").is_file()
    second = run_pytest(nodeid, profile=profile)
    assert second.returncode == 0, second.stdout + second.stderr
    stamp = (tmp_path / "baselines" / "forge.png").stat().st_mtime_ns
    third = run_pytest(nodeid, "--update-baselines", profile=profile)
    assert third.returncode == 0 and (tmp_path / "baselines" / "forge.png").stat().st_mtime_ns != stamp


@pytest.fixture
def forge_down(profile, deployment):
    stack = EmbeddedStack(profile)
    stack.stop_forge()
    yield
    stack.start_forge()


def test_forge_down_is_one_red_line_and_the_page_says_why_alone(forge_down, profile):
    api = f"{FORGE_API}::test_forge_answers_ping"
    page = f"{FORGE_PAGE}::test_forge_page_becomes_ready[chromium]"
    result = run_pytest(FORGE_API, FORGE_PAGE)
    out = result.stdout + result.stderr
    assert_fails(result, api, f"Forge at {profile.forge_url} does not answer /internal/ping: ConnectError")
    assert red_lines(out) == [api], out
    assert len(blocked_lines(out)) >= 4 and f"which failed in {api}" in out, out
    alone = run_pytest(FORGE_PAGE)  # without the API check in the run, the page check names the cause itself
    assert_fails(alone, page, f"the Forge page {profile.forge_url}/ is not ready",
                 f"the browser cannot reach {profile.forge_url}/ (net::ERR_CONNECTION_REFUSED)")
    assert red_lines(alone.stdout) == [page], alone.stdout
