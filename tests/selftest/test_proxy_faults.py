"""Proxy and certificate faults injected into the embedded stack's nginx: each fails its named test, clearly."""
from __future__ import annotations

import socket
import threading

import pytest

from conftest import assert_fails, free_port, run_pytest

pytestmark = pytest.mark.selftest
PROXY = "tests/acceptance/test_proxy.py"
TLS = "tests/acceptance/test_tls.py"
TOKEN_ENV = "COMFYCHECK_SELFTEST_PUBLIC_TOKEN"
TOKEN = "cc-selftest-7f3a9b1e5d2c4086"

CASES = [
    # (proxy faults, test that must fail, phrases its message must carry)
    ({"ws_upgrade_blocked": True}, f"{PROXY}::test_websocket_through_proxy_with_browser_origin",
     ["refused: HTTP 400", "the proxy does not pass WebSocket upgrades"]),
    ({"host_rewritten": True}, f"{PROXY}::test_smoke_generation_through_proxy",
     ["HTTP 403", "is a proxy rewriting Host?"]),
    ({"host_rewritten": True}, f"{PROXY}::test_websocket_through_proxy_with_browser_origin",
     ["refused: HTTP 403", "is a proxy rewriting Host?"]),
    ({"upload_limit_mb": 30}, f"{PROXY}::test_proxy_upload_limit_not_stricter_than_backend",
     ["the proxy refuses a 99.9 MiB upload (413) but the backend accepts up to 100 MiB", "about 30.00 MiB"]),
    ({"upload_limit_mb": 30}, f"{PROXY}::test_upload_just_under_the_limit_passes_through_proxy",
     ["got HTTP 413", "the proxy refused it"]),
    ({"no_https_redirect": True}, f"{PROXY}::test_http_redirects_to_https",
     ["answered 200 over plain HTTP instead of redirecting"]),
    ({"cert": "expired"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["does not verify against", "CN={host} expired on"]),
    ({"cert": "expired"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["days left on CN={host} (expires", "measured -2", "target > 30 days"]),
    ({"cert": "not_yet_valid"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["CN={host} is not valid yet"]),
    ({"cert": "wrong_host"}, f"{TLS}::test_hostname_matches_certificate",
     ["is for comfycheck-other-host.example.net, not for {host}"]),
    ({"cert": "untrusted"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["does not verify against", "not sign it"]),
    ({"cert": "expiring_5d"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["days left on CN={host}", "renewal point: a third of its 90-day lifetime): measured 5 days",
      "target > 30 days"]),
    ({"legacy_tls": True}, f"{TLS}::test_legacy_tls_refused[TLSv1]", ["accepts TLSv1: disable TLS 1.0 and 1.1"]),
    ({"legacy_tls": True}, f"{TLS}::test_legacy_tls_refused[TLSv1.1]", ["accepts TLSv1.1"]),
    ({"no_hsts": True}, f"{TLS}::test_hsts_header_present", ["sends no Strict-Transport-Security header"]),
]


def test_healthy_proxy_passes_every_proxy_and_tls_check(proxy_faults):
    result = run_pytest(PROXY, TLS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("faults, nodeid, phrases", CASES,
                         ids=[f"{next(iter(f))}={next(iter(f.values()))}->{n.rsplit('::', 1)[1]}"
                              for f, n, _ in CASES])
def test_proxy_fault_fails_its_check(proxy_faults, profile, faults, nodeid, phrases):
    proxy_faults(**faults)
    assert_fails(run_pytest(nodeid), nodeid, *(p.format(host=profile.public.host) for p in phrases))


def test_hsts_shorter_than_the_profile_minimum_fails(proxy_faults, make_profile):
    profile = make_profile({"public": {"hsts_min_age_s": 63072000}})
    nodeid = f"{TLS}::test_hsts_header_present"
    assert_fails(run_pytest(nodeid, profile=profile), nodeid,
                 "HSTS max-age: measured 31536000 s, target >= 63072000 s")


def test_open_public_endpoint_fails_when_a_token_is_expected(proxy_faults, make_profile):
    profile = make_profile({"public": {"token_env": TOKEN_ENV}})
    nodeid = f"{PROXY}::test_public_endpoint_refuses_requests_without_token"
    assert_fails(run_pytest(nodeid, profile=profile, env={TOKEN_ENV: TOKEN}), nodeid,
                 "answered 200 without a token: the public endpoint is open")


def test_token_protected_endpoint_passes_and_the_token_stays_out_of_reports(proxy_faults, make_profile, tmp_path):
    proxy_faults(require_token=TOKEN)
    profile = make_profile({"public": {"token_env": TOKEN_ENV}})
    report = tmp_path / "report.html"
    result = run_pytest(PROXY, TLS, f"--html={report}", "--self-contained-html",
                        profile=profile, env={TOKEN_ENV: TOKEN})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 skipped" not in out.splitlines()[-1], "the token check was skipped"
    for path in (report, tmp_path / "measurements.json"):
        assert path.is_file() and TOKEN not in path.read_text(), f"the token leaked into {path}"
    assert TOKEN not in out


def test_token_in_a_failure_message_is_redacted(make_profile, tmp_path):
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(
        "def test_leaks(profile):\n"
        "    print('token is', profile.public.token)\n"
        "    assert profile.public.token == 'something else', f'got {profile.public.token}'\n")
    profile = make_profile({"public": {"token_env": TOKEN_ENV}})
    report = tmp_path / "report.html"
    result = run_pytest("-p", "comfycheck.pytest_plugin", str(leaky), f"--html={report}", "--self-contained-html",
                        profile=profile, env={TOKEN_ENV: TOKEN})
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "token is ***" in out, out
    assert TOKEN not in out, "the token appears in the terminal output"
    assert TOKEN not in report.read_text(), "the token appears in the HTML report"


def test_backend_listening_on_every_interface_is_reported(make_profile):
    port = free_port()
    server = socket.create_server(("0.0.0.0", port))
    def accept_forever():
        try:
            while True:
                server.accept()[0].close()
        except OSError:
            return  # closed at the end of the test
    threading.Thread(target=accept_forever, daemon=True).start()
    try:
        profile = make_profile({"comfyui": {"url": f"http://127.0.0.1:{port}"}, "stack": {"embedded": False}})
        nodeid = f"{PROXY}::test_backend_port_not_public"
        assert_fails(run_pytest(nodeid, profile=profile), nodeid,
                     f"ComfyUI's port {port} is bound to 0.0.0.0:{port}, so other hosts can reach it",
                     "--listen 127.0.0.1")
    finally:
        server.close()


def test_backend_on_loopback_passes_without_contacting_other_addresses(make_profile, tmp_path):
    """The check reads the socket table: a traced socket.connect shows it contacts nothing at all."""
    port = free_port()
    server = socket.create_server(("127.0.0.1", port))
    log = tmp_path / "connects.log"
    (tmp_path / "comfycheck_connect_tracer.py").write_text(
        f"import socket\nreal = socket.socket.connect\n"
        f"socket.socket.connect = lambda s, a: (open({str(log)!r}, 'a').write(f'{{a}}\\n'), real(s, a))[1]\n")
    try:
        profile = make_profile({"comfyui": {"url": f"http://127.0.0.1:{port}"}, "stack": {"embedded": False}})
        nodeid = f"{PROXY}::test_backend_port_not_public"
        result = run_pytest(nodeid, "-p", "comfycheck_connect_tracer", profile=profile,
                            env={"PYTHONPATH": str(tmp_path)})
        out = result.stdout + result.stderr
        assert result.returncode == 0 and "1 passed" in out, out
        assert not log.exists(), f"the check connected to {log.read_text().split()}"
    finally:
        server.close()
