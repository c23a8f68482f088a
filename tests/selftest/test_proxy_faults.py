"""Proxy and certificate faults injected into the embedded stack's nginx: each fails its named test, clearly."""
from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from comfycheck.config.paths import PKI_DIR
from tests.selftest.helpers import assert_fails, free_port, merge, own_ports, red_lines, run_pytest

pytestmark = pytest.mark.selftest
PROXY = "tests/acceptance/test_proxy.py"
BACKEND = "tests/acceptance/test_backend.py"
TLS = "tests/acceptance/test_tls.py"

CASES: list[tuple[dict[str, Any], str, list[str]]] = [
    # (proxy faults, test that must fail, phrases its message must carry)
    ({"ws_upgrade_blocked": True}, f"{PROXY}::test_websocket_through_proxy_with_browser_origin",
     ["refused: HTTP 400", "the proxy does not pass WebSocket upgrades"]),
    ({"host_rewritten": True}, f"{PROXY}::test_smoke_generation_through_proxy",
     ["HTTP 403", "is a proxy rewriting Host?"]),
    ({"host_rewritten": True}, f"{PROXY}::test_websocket_through_proxy_with_browser_origin",
     ["refused: HTTP 403", "is a proxy rewriting Host?"]),
    ({"upload_limit_mib": 30}, f"{PROXY}::test_proxy_accepts_the_profile_upload_limit",
     ["proxy upload limit: measured 30.00 MiB, target >= 100 MiB", "the proxy refuses uploads above about 30.00 MiB",
      "nginx client_max_body_size"]),
    ({"upload_limit_mib": 30}, f"{PROXY}::test_upload_just_under_the_limit_passes_through_proxy",
     ["the proxy refused it (HTTP 413: its own error page, 'Request Entity Too Large')",
      "raise the proxy's body limit to at least 100 MiB"]),
    ({"host_rewritten": True}, f"{PROXY}::test_upload_just_under_the_limit_passes_through_proxy",
     ["ComfyUI refused it (HTTP 403: its Host/Origin guard", "nginx proxy_set_header Host $http_host"]),
    ({"no_https_redirect": True}, f"{PROXY}::test_http_redirects_to_https",
     ["answered 200 over plain HTTP instead of redirecting"]),
    ({"cert": "expired"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["does not verify against", "CN={host} expired on"]),
    ({"cert": "expired"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["days left on the certificate that expires first: measured -2", "target > 30 days",
      "CN={host} expires"]),
    ({"cert": "not_yet_valid"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["CN={host} is not valid yet"]),
    ({"cert": "wrong_host"}, f"{TLS}::test_hostname_matches_certificate",
     ["is for comfycheck-other-host.example.net, not for {host}"]),
    ({"cert": "untrusted"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["does not verify against", "not sign it"]),
    ({"cert": "leaf_only"}, f"{TLS}::test_certificate_chain_verifies_to_trust_store",
     ["the server sends 1 certificate; the issuer CN=comfycheck Intermediate E1,O=comfycheck embedded stack of "
      "CN={host} is missing from what it sends", "configure the full chain on the proxy"]),
    ({"cert": "expiring_5d"}, f"{TLS}::test_certificate_renewal_point_not_passed",
     ["days left on the certificate that expires first: measured 5.0 days", "CN={host} expires",
      "(renewal point: a third of its 90-day lifetime)",
      "target > 30 days"]),
    ({"legacy_tls": True}, f"{TLS}::test_legacy_tls_refused", ["accepts TLSv1 and TLSv1.1: disable TLS 1.0 and 1.1"]),
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


def test_comfyui_own_upload_limit_is_named_as_comfyuis_not_the_proxys(make_profile, profile):
    """ComfyUI started with --max-upload-size 10 behind a proxy that takes 100 MiB: ComfyUI is the layer to fix."""
    ports = own_ports(profile.public.host)
    ports["forge"] = None  # not part of this check (None drops the table from the profile)
    args = [*profile.stack.comfyui_args, "--max-upload-size", "10"]
    own = make_profile(merge(ports, {"stack": {"comfyui_args": args}}))
    limit = f"{BACKEND}::test_backend_accepts_the_profile_upload_limit"
    direct = f"{BACKEND}::test_upload_just_under_the_limit_reaches_comfyui"
    early = f"{PROXY}::test_proxy_accepts_the_profile_upload_limit"
    proxied = f"{PROXY}::test_upload_just_under_the_limit_passes_through_proxy"
    result = run_pytest(limit, direct, early, proxied, profile=own, timeout=180)
    out = result.stdout + result.stderr
    assert_fails(result, limit, "ComfyUI's own upload limit (/features max_upload_size): measured 10.00 MiB, "
                 "target >= 100 MiB", "start ComfyUI with --max-upload-size 100")
    assert red_lines(out) == [limit], out  # one fault, one red line
    for nodeid in (direct, proxied):  # the full-size uploads are blocked by it, not failed again
        assert f"{nodeid.split('::')[0]}" in out and f"blocked: needs 'ComfyUI takes uploads of 100 MiB', which " \
            f"failed in {limit}" in out, out
    assert "nginx" not in out, out  # the proxy is not blamed
    # without the limit check in the run, the full-size upload says which layer refused, and why
    alone = run_pytest(proxied, profile=own, timeout=180)
    assert_fails(alone, proxied, "ComfyUI refused it (HTTP 413: its own body limit, 10.00 MiB: "
                 "'Maximum request body size 10485760 exceeded'", "start ComfyUI with --max-upload-size 100")


def test_intermediate_in_the_ca_bundle_does_not_hide_a_missing_chain(proxy_faults, make_profile, tmp_path):
    """The fix the old message invited (add the intermediate to ca_bundle) must not turn the check green."""
    proxy_faults(cert="leaf_only")
    bundle = tmp_path / "root-and-intermediate.pem"
    bundle.write_bytes((PKI_DIR / "ca.pem").read_bytes() + (PKI_DIR / "intermediate.pem").read_bytes())
    nodeid = f"{TLS}::test_certificate_chain_verifies_to_trust_store"
    assert_fails(run_pytest(nodeid, profile=make_profile({"public": {"ca_bundle": str(bundle)}})), nodeid,
                 "the chain verifies only because the trust store holds CN=comfycheck Intermediate E1",
                 "that the server does not send", "configure the full chain on the proxy")


def test_hsts_shorter_than_the_profile_minimum_fails(proxy_faults, make_profile):
    profile = make_profile({"targets": {"hsts_max_age_s": 63072000}})
    nodeid = f"{TLS}::test_hsts_header_present"
    assert_fails(run_pytest(nodeid, profile=profile), nodeid,
                 "HSTS max-age: measured 31536000 s, target >= 63072000 s")


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
        result = run_pytest(nodeid, "-p", "comfycheck_connect_tracer", profile=profile,  # it patches the process
                            env={"PYTHONPATH": str(tmp_path)}, in_subprocess=True)
        out = result.stdout + result.stderr
        assert result.returncode == 0 and "1 passed" in out, out
        assert not log.exists(), f"the check connected to {log.read_text().split()}"
    finally:
        server.close()


def test_legacy_tls_is_not_called_refused_by_a_client_that_cannot_offer_it(deployment, tmp_path):
    # a system policy (as RHEL's crypto policies or a hardened OPENSSL_CONF set) forbids TLS 1.0 and 1.1 to every
    # client of this host: no handshake is even tried, so the proxy's answer is unknown, not a refusal
    policy = tmp_path / "openssl.cnf"
    policy.write_text("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n"
                      "[tls]\nProtocol = ALL, -TLSv1, -TLSv1.1\n")
    result = run_pytest(f"{TLS}::test_legacy_tls_refused", "-rs", env={"OPENSSL_CONF": str(policy)},
                        in_subprocess=True)  # OpenSSL reads its configuration once, as a process starts
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "1 skipped" in out, out
    assert "not tested: this host's TLS library cannot offer TLSv1 or TLSv1.1" in out, out
    assert "NO_PROTOCOLS_AVAILABLE" in out, out
