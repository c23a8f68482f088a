"""Units of the diagnoses: which layer refused an upload, what a browser error means, foundations and blocking."""
from __future__ import annotations

import pytest

from comfycheck.comfy.uploads import who_refused
from comfycheck.judge.dependants import Dependants
from comfycheck.judge.foundations import Foundation, Foundations
from comfycheck.outputs.report import Outcome, headline
from comfycheck.probes.browser import navigation_cause, websocket_hint

pytestmark = pytest.mark.selftest
NGINX_413 = ("<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 "
             "Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@pytest.mark.parametrize("status, content_type, body, layer, phrase", [
    # as recorded from real ComfyUI 0.33.0 (aiohttp 3.14) started with --max-upload-size 10
    (413, "text/plain; charset=utf-8", "Maximum request body size 10485760 exceeded.", "ComfyUI",
     "--max-upload-size 100"),
    (403, "", "", "ComfyUI", "proxy_set_header Host $http_host"),
    (413, "text/html", NGINX_413, "the proxy", "nginx client_max_body_size"),
    (404, "text/html", "<html><h3>HTTP Error 404.13 - Not Found</h3> Content Length Too Large</html>", "the proxy",
     "maxAllowedContentLength"),
    (502, "text/html", "<html><title>502 Bad Gateway</title></html>", "an unknown layer", "502 Bad Gateway"),
    (400, "text/html", "<html><title>400 Bad Request</title></html>", "an unknown layer", "400 Bad Request"),
])
def test_an_upload_refusal_is_told_by_what_the_layer_answered(status, content_type, body, layer, phrase):
    refusal = who_refused(status, content_type, body, required_mib=100)
    assert refusal is not None and refusal.layer == layer, refusal
    assert phrase in refusal.describe()


def test_comfyuis_own_answers_to_a_whole_upload_are_no_refusal():
    assert who_refused(400, "", "", required_mib=100) is None  # it read the body: no `image` field
    assert who_refused(200, "application/json", '{"name": "x.png"}', required_mib=100) is None


def test_comfyuis_413_states_its_limit():
    refusal = who_refused(413, "text/plain", "Maximum request body size 10485760 exceeded.", required_mib=100)
    assert refusal is not None and refusal.limit_bytes == 10485760 and "10.00 MiB" in refusal.describe()


@pytest.mark.parametrize("error, phrase", [
    ("net::ERR_CERT_AUTHORITY_INVALID at https://x/", "the browser refuses the certificate of https://x/"),
    ("Page.goto: net::ERR_CONNECTION_REFUSED at https://x/", "the browser cannot reach https://x/"),
    ("Page.goto: something else\nCall log:", "could not open https://x/: Page.goto: something else"),
])
def test_navigation_errors_name_their_cause(error, phrase):
    assert phrase in navigation_cause(error, "https://x/")


def test_websocket_errors_use_the_api_checks_words():
    assert "the proxy does not pass WebSocket upgrades" in websocket_hint("Unexpected response code: 400")
    assert "Host and Origin differ" in websocket_hint("Unexpected response code: 403")


def _foundations(calls: list, failing: dict):
    defs = [Foundation("a", "A holds"), Foundation("b", "B holds", ("a",)), Foundation("page", "page", ("b",))]

    def probe(key):
        def run():
            calls.append(key)
            return failing.get(key)
        return run
    return Foundations(defs, {"a": probe("a"), "b": probe("b")})


def test_a_foundation_is_probed_once_and_blames_the_one_below_it():
    calls: list = []
    f = _foundations(calls, {"a": "A is down"})
    assert f.failure("b").key == "a" and f.failure("b").message == "A is down"
    assert f.failure("a").key == "a"
    assert calls == ["a"]  # b is never probed: it cannot be told without a


def test_a_reported_foundation_is_blocked_by_what_it_stands_on():
    f = _foundations([], {"b": "B is down"})
    assert f.failure("page", probe=False) is None  # not known until the page was loaded
    f.report("page", "the page did not load")
    assert f.failure("page").key == "b"
    healthy = _foundations([], {})
    healthy.report("page", "the page did not load")
    assert healthy.failure("page").key == "page"
    healthy.report("page", None)
    assert healthy.failure("page") is None


class _Check:
    """What Dependants reads of a collected check: its id and its marks."""

    def __init__(self, nodeid: str, foundation: str | None = None):
        self.nodeid = nodeid
        self._mark = pytest.mark.foundation(foundation).mark if foundation else None

    def get_closest_marker(self, name: str):
        return self._mark if name == "foundation" else None


def test_a_foundations_check_runs_after_the_checks_of_what_it_stands_on():
    checks = [_Check("auth::own", "b"), _Check("auth::other"), _Check("page::own", "page"),
              _Check("backend::own", "a"), _Check("backend::other")]
    ordered = Dependants(_foundations([], {})).in_foundation_order(checks)  # type: ignore[arg-type]
    assert [c.nodeid for c in ordered] == ["backend::own", "auth::own", "auth::other", "page::own",
                                           "backend::other"]


def test_the_headline_counts_what_was_blocked():
    outcomes = [Outcome("t::root", "failed", "the certificate expired"),
                Outcome("t::a", "skipped", "blocked: needs 'x', which failed in t::root"),
                Outcome("t::b", "skipped", "blocked: needs 'x', which failed in t::root"),
                Outcome("t::c", "skipped", "the profile has no token"), Outcome("t::d", "passed")]
    text = headline(outcomes, [])
    assert "FAILED: 1 of 5 checks did not pass; 2 more blocked by it" in text
    assert "3 skipped (2 blocked)" in text
