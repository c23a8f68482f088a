"""No check can hang: a backend that accepts connections and never answers, directly and behind nginx with TLS.

Every affected check must fail within 2 x timeout_s, naming the URL and what it waited for, and the run must end;
the checks that stand on the backend are reported blocked before they wait, so the run waits one timeout in all.
"""
from __future__ import annotations

import socket
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from comfycheck.comfy.client import ComfyClient, ComfyUnreachable
from comfycheck.config.paths import PKI_DIR
from comfycheck.stack import certs
from comfycheck.stack.proxy import NginxProxy, ProxyConfig
from tests.selftest.helpers import blocked_lines, free_port, red_lines, run_pytest

pytestmark = pytest.mark.selftest
TIMEOUT_S = 2.0


class SilentServer:
    """Accepts TCP connections and holds them open; never reads a byte, never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def silent_behind_nginx(silent, tmp_path):
    """The embedded stack's nginx (TLS from the stack's CA, WebSocket upgrades passed) in front of the silent server."""
    https, http = free_port(), free_port()
    proxy = NginxProxy(tmp_path / "nginx")
    files = certs.mint(PKI_DIR, tmp_path / "tls", ["localhost", "127.0.0.1"])
    proxy.write_config(ProxyConfig(backend=silent.url, https_port=https, http_port=http), files)
    pid = proxy.start([https, http])
    yield f"https://localhost:{https}", f"http://localhost:{http}"
    NginxProxy.stop(pid)


def _profile(make_profile, backend: str, public: tuple[str, str] | None):
    overrides = {"name": "silent", "stack": None, "forge": None, "public": None, "gpus": None,
                 "comfyui": {"url": backend, "timeout_s": TIMEOUT_S, "generation_timeout_s": 10.0}}
    if public:
        overrides["public"] = {"url": public[0], "http_url": public[1], "ca_bundle": str(PKI_DIR / "ca.pem"),
                               "cors_origins": []}
    return make_profile(overrides)


def _run_smoke(profile, tmp_path) -> tuple[str, dict[str, float], float]:
    junit = tmp_path / "junit.xml"
    t0 = time.monotonic()
    result = run_pytest("-m", "smoke", f"--junitxml={junit}", profile=profile, timeout=300)
    elapsed = time.monotonic() - t0
    out = result.stdout + result.stderr
    assert result.returncode == 1, f"a silent backend must fail the run (exit 1), got {result.returncode}:\n{out}"
    times = {f"{case.get('classname')}::{case.get('name')}": float(case.get("time") or "nan")
             for case in ET.parse(junit).getroot().iter("testcase")}
    return out, times, elapsed


def _assert_bounded(times: dict[str, float]) -> None:
    slow = {name: round(t, 2) for name, t in times.items() if t > 2 * TIMEOUT_S}
    assert not slow, f"checks that waited longer than 2 x timeout_s ({2 * TIMEOUT_S:g} s): {slow}"


def test_websocket_to_a_silent_server_ends_at_its_timeout(silent):
    client = ComfyClient(silent.url, timeout=TIMEOUT_S)
    t0 = time.monotonic()
    with pytest.raises(ComfyUnreachable, match=r"no handshake response \(HTTP 101\) within 2 s"):
        with client.websocket():
            pass
    assert time.monotonic() - t0 < TIMEOUT_S + 0.5


def test_websocket_through_tls_proxy_to_a_silent_server_ends_at_its_timeout(silent_behind_nginx):
    client = ComfyClient(silent_behind_nginx[0], timeout=TIMEOUT_S, ca_bundle=PKI_DIR / "ca.pem")
    t0 = time.monotonic()
    with pytest.raises(ComfyUnreachable, match=r"wss://localhost:\d+/ws\?clientId=\w+: no handshake response"):
        with client.websocket():
            pass
    assert time.monotonic() - t0 < TIMEOUT_S + 0.5


BACKEND_CHECK = "tests/acceptance/test_backend.py::test_backend_answers_system_stats"


def _waited_a_timeout(times: dict[str, float]) -> list[str]:
    """The checks that waited about one timeout_s or more (the rest were judged, or blocked, at once)."""
    return [name for name, t in times.items() if t >= 0.9 * TIMEOUT_S]


def test_smoke_against_a_silent_backend_fails_fast_naming_the_url(silent, make_profile, tmp_path):
    """One red line, and one wait: the backend's own check times out once; nothing probes it again."""
    out, times, elapsed = _run_smoke(_profile(make_profile, silent.url, None), tmp_path)
    assert f"GET {silent.url}/system_stats: no answer within 2 s" in out, out
    assert red_lines(out) == [BACKEND_CHECK], out
    _assert_bounded(times)
    assert _waited_a_timeout(times) == ["tests.acceptance.test_backend::test_backend_answers_system_stats"], times
    assert elapsed < 60, f"the whole smoke run took {elapsed:.0f} s"


def test_smoke_through_the_proxy_to_a_silent_backend_fails_fast(silent, silent_behind_nginx, make_profile, tmp_path):
    """The proxied checks are reported as blocked by the backend before they wait on it: one fault, one wait."""
    out, times, elapsed = _run_smoke(_profile(make_profile, silent.url, silent_behind_nginx), tmp_path)
    assert red_lines(out) == [BACKEND_CHECK], out
    blocked = [line for line in blocked_lines(out) if "test_proxy.py" in line]
    assert blocked and all(f"needs 'ComfyUI at {silent.url} answers', which failed in {BACKEND_CHECK}" in line
                           for line in blocked), out
    assert any(name.startswith("tests.acceptance.test_proxy") for name in times), times
    _assert_bounded(times)
    assert _waited_a_timeout(times) == ["tests.acceptance.test_backend::test_backend_answers_system_stats"], times
    assert elapsed < 60, f"the whole smoke run took {elapsed:.0f} s"
