"""One fault, one red line: the check that reports the fault fails with the fix, the checks that stand on it are
reported as blocked by it, and the page checks say the cause at once. Proxy faults only, so this module runs on
the stand-in and on real ComfyUI alike."""
from __future__ import annotations

import html
import re
import select
import socket
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from comfycheck.stack import FaultSwitch
from tests.selftest.helpers import assert_fails, blocked_lines, merge, own_ports, red_lines, run_pytest

pytestmark = pytest.mark.selftest
PROXY = "tests/acceptance/test_proxy.py"
TLS = "tests/acceptance/test_tls.py"
PAGE = "tests/ui/test_comfyui_page.py"
# every check a proxy fault can break; the speeds (timing) are judged where nothing else moves them (a real
# ComfyUI started beside the rest of a parallel run takes longer than its startup target)
EVERY_CHECK = ["-m", "(acceptance or ui) and not destructive and not load and not timing"]

CASES: list[tuple[dict[str, Any], str, list[str], int]] = [
    # (proxy faults, the one check that fails, phrases of its message, at least this many blocked)
    ({"cert": "expired"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["CN={host} expired on"], 12),
    ({"cert": "leaf_only"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["the server sends 1 certificate", "configure the full chain on the proxy"], 12),
    ({"cert": "wrong_host"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["the certificate is for comfycheck-other-host.example.net, not for {host}"], 12),
    ({"host_rewritten": True}, f"{PROXY}::test_proxy_keeps_host_so_comfyui_accepts_the_page_origin",
     ["HTTP 403 from ComfyUI", "the proxy rewrites Host", "proxy_set_header Host $http_host"], 6),
    ({"ws_upgrade_blocked": True}, f"{PROXY}::test_websocket_through_proxy_with_browser_origin",
     ["the proxy does not pass WebSocket upgrades"], 3),
    ({"upload_limit_mib": 30}, f"{PROXY}::test_proxy_accepts_the_profile_upload_limit",
     ["the proxy refuses uploads above about 30.00 MiB"], 1),
]


@pytest.mark.parametrize("faults, root, phrases, blocked", CASES,
                         ids=[f"{next(iter(f))}={next(iter(f.values()))}" for f, *_ in CASES])
def test_one_fault_makes_one_red_line(proxy_faults, profile, faults, root, phrases, blocked):
    proxy_faults(**faults)
    result = run_pytest(*EVERY_CHECK, timeout=300)
    out = result.stdout + result.stderr
    assert_fails(result, root, *(p.format(host=profile.public.host) for p in phrases))
    assert red_lines(out) == [root], f"expected {root} as the only failure:\n{out}"
    assert len(blocked_lines(out)) >= blocked, out
    assert all(f"which failed in {root}" in line for line in blocked_lines(out)), out


def test_host_rewritten_fails_the_page_once_with_its_cause(proxy_faults, profile):
    """The UI layer alone (no API check in the run): the page names the Host/Origin cause at once, and its other
    checks are blocked by it instead of waiting for a page that will never be ready."""
    proxy_faults(host_rewritten=True)
    ready = f"{PAGE}::test_comfyui_page_becomes_ready[chromium]"
    result = run_pytest(PAGE, timeout=120)
    out = result.stdout + result.stderr
    assert_fails(result, ready, "cannot become ready", "the page's own request", "HTTP 403 from ComfyUI",
                 "pass the original Host header")
    assert "not ready after" not in out, out  # it did not wait for the deadline
    assert red_lines(out) == [ready], out
    assert len(blocked_lines(out)) >= 3, out


def test_certificate_error_in_the_browser_is_named_as_such(proxy_faults):
    proxy_faults(cert="untrusted")
    ready = f"{PAGE}::test_comfyui_page_becomes_ready[chromium]"
    result = run_pytest(PAGE, timeout=120)
    assert_fails(result, ready, "the browser refuses the certificate of", "net::ERR_CERT_")
    assert red_lines(result.stdout) == [ready], result.stdout


# The silence the client times before the proxy's close is nginx's timeout plus the client's wait for a CPU: these
# two run where no other work of the suite takes the CPUs (timing: last and alone in a parallel run)
@pytest.mark.timing
@pytest.mark.exclusive
def test_proxy_idle_timeout_shorter_than_the_silent_phase_is_measured(proxy_faults, make_profile):
    proxy_faults(read_timeout_s=1)
    nodeid = f"{PROXY}::test_websocket_through_proxy_survives_the_longest_silent_phase"
    result = run_pytest(nodeid, profile=make_profile({"public": {"websocket_idle_s": 3}}))
    assert_fails(result, nodeid, "measured 1", "target >= 3 s",
                 "the proxy closed the WebSocket after 1.0 s of silence", "nginx proxy_read_timeout")


@pytest.mark.timing
@pytest.mark.exclusive
def test_websocket_dropped_mid_prompt_says_the_prompt_finished_on_the_server(proxy_faults, profile, make_profile):
    """A generation whose one node works 3 s in silence, behind a proxy that drops a WebSocket silent for 1 s."""
    proxy_faults(read_timeout_s=1)
    if profile.stack.real:  # real ComfyUI: a 2048x2048 blur is about 3 s of CPU work in one node
        overrides = {"comfyui": {"smoke_workflow": "cpu_load_modelfree.json"}}
    else:
        overrides = {}
        FaultSwitch(profile.stack.control_url).set(slow_generation_s=3.0)
    nodeid = f"{PROXY}::test_smoke_generation_through_proxy"
    try:
        result = run_pytest(nodeid, profile=make_profile(overrides))
    finally:
        if not profile.stack.real:
            FaultSwitch(profile.stack.control_url).reset()
    assert_fails(result, nodeid, "s of silence while prompt",
                 "the prompt kept running and finished on the server (success)", "proxy read timeout?")
    # the client counts silence from the last message it received, nginx from its last read upstream (a little
    # earlier): 1 s of nginx's can show as 0.9 s
    closed = re.search(r"the proxy closed the WebSocket after (\d+\.\d) s of silence", result.stdout)
    assert closed, result.stdout
    silent = float(closed.group(1))
    assert 0.8 <= silent < 2.5, result.stdout


def test_the_report_headline_names_the_root_failure_once(proxy_faults, tmp_path):
    proxy_faults(cert="expired")
    report = tmp_path / "report.html"
    result = run_pytest(*EVERY_CHECK, f"--html={report}", "--self-contained-html", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    page = html.unescape(report.read_text())
    verdict = page[page.index('class="comfycheck-verdict"'):]
    verdict = verdict[:verdict.index("</div>")]
    assert re.search(r"FAILED: 1 of \d+ checks did not pass; \d+ more blocked by it", verdict), verdict
    assert verdict.count("<li>") == 1 and "test_certificate_chain_verifies_to_trust_store" in verdict, verdict
    assert "expired on" in verdict and "CERTIFICATE_VERIFY_FAILED" not in verdict, verdict


def test_a_stack_that_cannot_start_is_the_one_cause_of_every_check_that_needs_it(make_profile, tmp_path):
    """Real ComfyUI pointed at a folder that holds none: the stack's start is the one red line, and every check
    that needs the stack (the private-port check too) is blocked by it, not red on its own."""
    missing = tmp_path / "no-comfyui-here"
    profile = make_profile(merge(own_ports(), {"stack": {"comfyui": "real", "comfyui_dir": str(missing)}}))
    junit = tmp_path / "junit.xml"
    result = run_pytest("-m", "smoke", f"--junitxml={junit}", profile=profile, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    red = red_lines(out)
    assert len(red) == 1, f"expected the stack's start as the only failure:\n{out}"
    assert str(missing) in out, out
    blocked = blocked_lines(out)
    assert blocked and all(f"which failed in {red[0]}" in line and "the embedded stack of profile" in line
                           for line in blocked), out
    private = next(case for case in ET.parse(junit).getroot().iter("testcase")
                   if case.get("name") == "test_backend_port_not_public")
    skipped = private.find("skipped")
    assert skipped is not None and "blocked: needs 'the embedded stack" in (skipped.get("message") or ""), (
        ET.tostring(private, encoding="unicode"))


class StallingRelay:
    """A TCP relay in front of the proxy that, once a connection has been quiet for `stall_after_s`, stops
    carrying its bytes without closing it: a middlebox that drops an idle flow silently."""

    def __init__(self, upstream_port: int, stall_after_s: float):
        self.upstream_port = upstream_port
        self.stall_after_s = stall_after_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()  # the proxy is not there: the client sees the connection end
                continue
            self.held += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        last = time.monotonic()
        try:
            while time.monotonic() - last < self.stall_after_s:
                ready, _, _ = select.select([a, b], [], [], 0.05)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
                    last = time.monotonic()
        except (OSError, ValueError):
            return  # close() ended the connection under it
        # stalled: both ends stay open, nothing more is carried

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_websocket_dropped_silently_by_a_middlebox_is_named_as_such(profile, deployment, make_profile):
    """The proxy (or a box before it) stops carrying an idle WebSocket without closing it: the ping after the
    silence gets no pong, and the check says the socket was dropped without a word."""
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table to put the relay in front of")
    relay = StallingRelay(profile.public.port, stall_after_s=1.0)
    try:
        url = f"https://{profile.public.host}:{relay.port}"
        nodeid = f"{PROXY}::test_websocket_through_proxy_survives_the_longest_silent_phase"
        result = run_pytest(nodeid, profile=make_profile(
            {"public": {"url": url, "cors_origins": [url], "websocket_idle_s": 2}}), timeout=120)
    finally:
        relay.close()
    assert_fails(result, nodeid, "of silence the WebSocket through the proxy no longer answers a ping",
                 "the proxy dropped it without closing it", "nginx proxy_read_timeout")
