"""The page watch's verdicts on what ComfyUI's own page requested: a request the profile says the proxy must refuse
is told with what the page loses; any other refusal is a failed request."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from comfycheck.comfy.operations import OPERATIONS, PAGE_ROUTES
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.probes.browser import PageWatch
from comfycheck.stack.proxy_refusals import render_refusals

pytestmark = pytest.mark.selftest
HOST = "https://comfy.example"
DOCS = PROJECT_ROOT / "docs" / "opening-to-users.md"  # the rules the operator is given


@dataclass
class _Request:
    method: str
    url: str


@dataclass
class _Response:
    status: int
    request: _Request

    @property
    def url(self) -> str:
        return self.request.url


def _watch(profile) -> PageWatch:
    pub = profile.public
    return PageWatch({"comfy.example"}, refused_by_design=tuple(
        r for r in PAGE_ROUTES if pub is not None and pub.must_refuse(r.operation)))


@pytest.mark.parametrize("audience", ["shared", "operator"])
def test_a_page_request_the_profile_says_is_refused_is_told_not_failed(make_profile, audience):
    watch = _watch(load_profile(make_profile({"public": {"audience": audience}})))
    for method, path, status in (("GET", "/internal/logs/raw", 403), ("GET", "/api/history?max_items=64", 403),
                                 ("POST", "/api/userdata/workflows%2Fa.json", 403), ("GET", "/api/prompt", 403),
                                 ("GET", "/internal/files/input", 502)):
        watch._response(_Response(status, _Request(method, HOST + path)))
    if audience == "operator":  # nothing is meant to be refused: every refusal is the page failing
        assert len(watch.failed) == 5 and not watch.told, watch
        return
    assert [t.split(": refused")[0] for t in watch.told] == [
        f"403 GET {HOST}/internal/logs/raw", f"403 GET {HOST}/api/history?max_items=64",
        f"403 POST {HOST}/api/userdata/workflows%2Fa.json"], watch.told
    assert "internal_logs: the page does without the server log panel" in watch.told[0]
    # /prompt is no operation on everyone, and a 502 is the backend down, not a refusal by design
    assert watch.failed == [f"403 GET {HOST}/api/prompt", f"502 GET {HOST}/internal/files/input"], watch.failed


def test_a_prompts_own_history_stays_a_page_request_like_any_other(make_profile):
    watch = _watch(load_profile(make_profile({"public": {"audience": "shared"}})))
    watch._response(_Response(403, _Request("GET", HOST + "/api/history/4f1c")))
    assert watch.failed == [f"403 GET {HOST}/api/history/4f1c"] and not watch.told


def test_the_pages_own_internal_routes_are_not_the_logs_the_rule_refuses(make_profile, tmp_path):
    """One rule for ComfyUI's internal routes, in the check, the docs and the embedded proxy: /internal/logs only.
    The page reads /internal/folder_paths on every visit: a proxy refusing that breaks the page, and is told so."""
    watch = _watch(load_profile(make_profile({"public": {"audience": "shared"}})))
    watch._response(_Response(403, _Request("GET", HOST + "/internal/folder_paths")))
    assert watch.failed == [f"403 GET {HOST}/internal/folder_paths"] and not watch.told
    (logs,) = [op for op in OPERATIONS if op.key == "internal_logs"]
    assert logs.nginx.startswith("location ^~ /internal/logs {") and logs.iis.endswith("/internal/logs"), logs
    _, _, locations = render_refusals({"internal_logs"}, tmp_path, "proxy_pass http://comfy;")
    assert "location ^~ /internal/logs {" in locations and "location ^~ /internal/ {" not in locations, locations
    assert "`location ^~ /internal/logs { return 403; }`" in DOCS.read_text()
