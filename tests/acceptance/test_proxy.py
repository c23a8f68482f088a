"""Proxy checklist: the public HTTPS address really publishes ComfyUI (redirect, WebSocket, Host, uploads, CORS)."""
from __future__ import annotations

import io
import ipaddress
import socket
import statistics
from urllib.parse import urlsplit

import pytest
from PIL import Image

from comfycheck import hints
from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.uploads import full_upload
from comfycheck.comfy.workflows import load_workflow, make_unique
from comfycheck.config.hosts import is_loopback
from comfycheck.config.targets import paired_overhead, percentile
from comfycheck.config.units import MiB
from comfycheck.judge.foundations import host_kept
from comfycheck.probes.host import sampled
from comfycheck.probes.process import listening_addresses

pytestmark = pytest.mark.acceptance
FOREIGN_ORIGIN = "https://comfycheck-foreign-origin.invalid"


@pytest.mark.smoke
@pytest.mark.needs("public_tls")  # the same proxy: when it does not answer at all, that is the one failure
def test_http_redirects_to_https(profile, deployment, measure):
    pub = profile.public
    if pub is None or pub.http_url is None:
        pytest.skip("the profile declares no plain-HTTP address (public.http_url = \"\")")
    with ComfyClient(pub.http_url, timeout=profile.comfyui.timeout_s) as plain:
        resp = plain.request("GET", "/system_stats?comfycheck=1", expect=())
    location = resp.headers.get("location", "")
    assert resp.status_code in (301, 302, 307, 308), (
        f"{pub.http_url}/system_stats answered {resp.status_code} over plain HTTP instead of redirecting "
        f"to {pub.url}: add an HTTP -> HTTPS redirect rule on the proxy")
    target = urlsplit(location)
    assert target.scheme == "https" and target.hostname == pub.host and (target.port or 443) == pub.port, (
        f"{pub.http_url} redirects to {location!r}, not to {pub.url}")
    assert target.path == "/system_stats" and target.query == "comfycheck=1", (
        f"the redirect drops the path or query: {location!r}")
    measure.info("HTTP redirect", resp.status_code, location=location)


@pytest.mark.smoke
def test_system_stats_through_proxy_match_backend(comfy, public_comfy):
    direct, proxied = comfy.system_stats(), public_comfy.system_stats()
    assert sorted(proxied) == sorted(direct), f"keys differ: proxy {sorted(proxied)}, backend {sorted(direct)}"
    for key in ("comfyui_version", "required_frontend_version", "python_version", "pytorch_version"):
        assert proxied["system"].get(key) == direct["system"].get(key), (
            f"system.{key} through the proxy is {proxied['system'].get(key)!r}, directly "
            f"{direct['system'].get(key)!r}: the proxy is publishing another ComfyUI")
    assert [d["name"] for d in proxied["devices"]] == [d["name"] for d in direct["devices"]]


def test_object_info_through_proxy_matches_backend(comfy, public_comfy):
    direct, proxied = set(comfy.object_info()), set(public_comfy.object_info())
    assert proxied == direct, (
        f"node classes differ through the proxy: only direct {sorted(direct - proxied)[:10]}, "
        f"only proxied {sorted(proxied - direct)[:10]}")


@pytest.mark.smoke
@pytest.mark.foundation("host_origin")
def test_proxy_keeps_host_so_comfyui_accepts_the_page_origin(public_comfy, profile, measure):
    refused = host_kept(public_comfy, profile.public.origin)
    assert refused is None, refused
    measure.info("request with the page's Origin", "accepted by ComfyUI", origin=profile.public.origin)


@pytest.mark.smoke
@pytest.mark.foundation("public_websocket")
def test_websocket_through_proxy_with_browser_origin(public_comfy, measure):
    with public_comfy.websocket() as ws:
        assert ws.sid, f"the greeting through the proxy carries no sid: {ws.greeting}"
        assert "exec_info" in ws.greeting["data"].get("status", {}), ws.greeting
    measure.info("WebSocket through the proxy", "status greeting received", origin=public_comfy.origin)


@pytest.mark.needs("public_websocket")
def test_websocket_through_proxy_survives_the_longest_silent_phase(public_comfy, held_silence, profile, measure):
    """Loading a model, ComfyUI sends nothing for a while; a proxy that drops a silent WebSocket sooner leaves
    the page without progress and 'Reconnecting...', although the prompt runs on. The socket was opened as the
    acceptance layer began and held silent while the other checks ran (tests/acceptance/conftest.py)."""
    idle = profile.public.websocket_idle_s
    silence = held_silence.outcome()
    fix = hints.READ_TIMEOUT
    if not silence.survived and silence.silent_s >= idle:  # never closed, yet no pong: dropped without a word
        pytest.fail(f"after {silence.silent_s:.1f} s of silence the WebSocket through the proxy no longer answers "
                    f"a ping: the proxy dropped it without closing it; {fix}", pytrace=False)
    measure("websocket_idle_s", silence.silent_s,
            name="silence the WebSocket through the proxy survives (public.websocket_idle_s)",
            fix=f"the proxy closed the WebSocket after {silence.silent_s:.1f} s of silence, the profile declares "
                f"silent phases up to {idle:g} s: {fix}",
            held_while_other_checks_ran_s=round(silence.opened_before_judging_s, 1),
            silence_began_after_s=round(silence.quiet_after_s, 1), waited_at_the_end_s=round(silence.waited_s, 1))


@pytest.mark.smoke
@pytest.mark.generation
@pytest.mark.needs("public_websocket")
def test_smoke_generation_through_proxy(public_comfy, profile, measure):
    workflow = make_unique(load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow)))
    result = public_comfy.run(workflow, timeout=profile.comfyui.generation_timeout_s)
    assert result.ok, result.failure_message()
    images = result.images()
    assert images, f"the generation through the proxy produced no image: {result.outputs}"
    png = public_comfy.view(images[0]["filename"], images[0].get("subfolder", ""), images[0].get("type", "output"))
    assert png.startswith(b"\x89PNG"), "GET /view through the proxy did not return a PNG"
    measure.info(f"smoke run of {profile.comfyui.smoke_workflow} (model-free) through the proxy, client wall time",
                 result.client_terminal_ms, "ms")


@pytest.mark.smoke
def test_small_image_upload_through_proxy(public_comfy):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 120, 200)).save(buf, "PNG")
    # a fixed name and content: ComfyUI keeps one copy however often this runs
    answer = public_comfy.upload_image(buf.getvalue(), "comfycheck_proxy_probe.png", overwrite=True)
    assert answer.get("name") == "comfycheck_proxy_probe.png", f"unexpected upload answer: {answer}"


def _proxy_limit(public_comfy, upper: int) -> int | None:
    """The largest upload the proxy takes, to 4 KiB, from its early answers; None if it never answers early."""
    if public_comfy.upload_early_answer(upper) != 413:
        return None
    lo, hi = 0, upper  # lo accepted, hi refused
    while hi - lo > 4096:
        mid = (lo + hi) // 2
        if public_comfy.upload_early_answer(mid) == 413:
            hi = mid
        else:
            lo = mid
    return lo


@pytest.mark.smoke
@pytest.mark.foundation("proxy_upload")
def test_proxy_accepts_the_profile_upload_limit(public_comfy, profile, measure):
    """The proxy's own limit, from its early answers to `Expect: 100-continue`: nothing reaches ComfyUI."""
    required = profile.public.upload_limit_mib
    upper = int(required * MiB) + MiB
    limit = _proxy_limit(public_comfy, upper)
    if limit is None:
        measure.info("proxy upload limit", f"no early refusal up to {upper / MiB:g} MiB", "")
        return
    # One unit throughout, named: MiB (nginx's 100m and ComfyUI's 100 MB default are both 100 x 2^20 bytes)
    measure("proxy_upload_limit_mib", round(limit / MiB, 2), required_by="public.upload_limit_mib",
            fix=f"the proxy refuses uploads above about {limit / MiB:.2f} MiB with 413 before any byte "
                f"reaches ComfyUI: {hints.raise_proxy_body_limit(required)}")


@pytest.mark.needs("backend_upload", "proxy_upload")
def test_upload_just_under_the_limit_passes_through_proxy(public_comfy, profile, measure):
    sent, seconds, problem = full_upload(public_comfy, profile.public.upload_limit_mib, "through the proxy")
    assert problem is None, problem
    measure.info("upload through the proxy", sent, "MiB", seconds=seconds)


@pytest.mark.smoke
def test_cors_preflight_and_headers(public_comfy, profile, measure):
    expected = profile.public.cors_origins
    for origin in expected:
        pre = public_comfy.request("OPTIONS", "/prompt", expect=(), headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        allow = pre.headers.get("access-control-allow-origin")
        assert pre.status_code in (200, 204), f"CORS preflight for {origin} answered {pre.status_code}"
        assert allow in (origin, "*"), (
            f"CORS preflight from {origin}: Access-Control-Allow-Origin is {allow!r}, expected {origin!r}")
        methods = pre.headers.get("access-control-allow-methods", "").upper()
        assert "POST" in methods, f"CORS preflight from {origin}: POST not in Access-Control-Allow-Methods {methods!r}"
        headers = pre.headers.get("access-control-allow-headers", "").lower()
        assert "content-type" in headers or headers == "*", (
            f"CORS preflight from {origin}: Content-Type not in Access-Control-Allow-Headers {headers!r}")
        got = public_comfy.request("GET", "/system_stats", headers={"Origin": origin}, expect=())
        assert got.headers.get("access-control-allow-origin") in (origin, "*"), (
            f"GET /system_stats from {origin} lacks Access-Control-Allow-Origin")
        if got.status_code == 403 and origin != profile.public.origin:
            # ComfyUI refuses cross-origin requests whose Host resolves to loopback. With a public name that
            # is not loopback, that means the proxy passed the backend's own address as Host.
            assert _resolves_to_loopback(profile.public.host), (
                f"ComfyUI refuses GET /system_stats from allowed origin {origin} with 403: the proxy passes a "
                f"loopback Host; {hints.KEEP_HOST}")
            measure.info(f"cross-origin GET from {origin}", "403 from ComfyUI (public name is loopback)")
    if "*" not in expected:
        foreign = public_comfy.request("GET", "/system_stats", headers={"Origin": FOREIGN_ORIGIN}, expect=())
        granted = foreign.headers.get("access-control-allow-origin")
        assert granted is None, (
            f"the proxy grants CORS to an origin the profile does not list ({FOREIGN_ORIGIN}): "
            f"Access-Control-Allow-Origin {granted!r}")
    measure.info("CORS origins allowed", ", ".join(expected) or "(none)")


@pytest.mark.smoke
@pytest.mark.timing
def test_proxy_latency_overhead_within_target(comfy, public_comfy, profile, measure):
    for client in (comfy, public_comfy):
        for _ in range(3):
            client.timed_get("/system_stats")
    target = profile.targets["latency_proxy_ms"]
    # interleaved, so both see the same conditions
    timed = sampled(lambda: (comfy.timed_get("/system_stats") * 1000, public_comfy.timed_get("/system_stats") * 1000),
                    profile.comfyui.latency_samples,
                    missed=lambda pairs: not target.met_by(percentile([p for _, p in pairs], 95)))
    if not timed.complete:
        measure.not_assessed("latency_proxy_ms", timed.note())
        return
    direct, proxied = [d for d, _ in timed.values], [p for _, p in timed.values]
    overhead_p50, overhead_p95 = paired_overhead(direct, proxied)
    measure.info("proxy overhead p50 (paired)", round(overhead_p50, 2), "ms")
    measure.info("proxy overhead p95 (paired)", round(overhead_p95, 2), "ms")
    measure("latency_proxy_ms", percentile(proxied, 95), p50_ms=round(statistics.median(proxied), 2),
            direct_p95_ms=round(percentile(direct, 95), 2), samples=len(proxied), path="/system_stats",
            note=timed.note())


# --- security -----------------------------------------------------------------------------------
def _resolves_to_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@pytest.mark.smoke
def test_backend_port_not_public(profile, deployment, measure):
    if not profile.comfyui.must_not_be_public:
        pytest.skip("the profile does not require the backend to be private (comfyui.must_not_be_public)")
    port = urlsplit(profile.comfyui.url).port or 80
    fix = (f"it must only be reachable through the proxy (start ComfyUI with --listen 127.0.0.1, or firewall "
           f"port {port})")
    if is_loopback(profile.comfyui.url):
        # On this host the listening socket says where it can be reached; nothing is sent to other addresses.
        bound = listening_addresses(port)
        if bound is None:
            pytest.skip(f"this user may not read the host's sockets: which address port {port} is bound to is unknown")
        assert bound, f"nothing listens on port {port} of this host (the backend URL is {profile.comfyui.url})"
        measure.info("backend port bound to", ", ".join(_endpoint(ip, port) for ip in bound))
        exposed = [ip for ip in bound if not ipaddress.ip_address(ip.split("%")[0]).is_loopback]
        assert not exposed, (f"ComfyUI's port {port} is bound to {', '.join(_endpoint(ip, port) for ip in exposed)}, "
                             f"so other hosts can reach it: {fix}")
        return
    if profile.public is None:
        pytest.skip("the backend is remote and the profile has no public host to try its port on")
    host = profile.public.host  # the only other host this suite may contact
    measure.info("backend port tried on", f"{host}:{port}")
    assert not _open(host, port), f"ComfyUI's port {port} answers on the public host {host}: {fix}"
