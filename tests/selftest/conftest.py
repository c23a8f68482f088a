"""Helpers for the suite's own tests: temporary profiles and pytest runs in a subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from comfycheck.profile import DEFAULT_PROFILE, PROJECT_ROOT

RECORDINGS = Path(os.environ.get("COMFYCHECK_RECORDINGS", PROJECT_ROOT.parent / "shared" / "reference" / "comfyui"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "selftest" in item.nodeid:
            item.add_marker(pytest.mark.selftest)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if v is None:  # None removes the key (e.g. a [forge] table a test does not need)
            out.pop(k, None)
            continue
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def make_profile(tmp_path):
    """Write a profile: profiles/local.toml with `overrides` merged in (nested tables as dicts)."""
    def make(overrides: dict | None = None, *, raw: str | None = None, name: str = "profile.toml") -> Path:
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw)
        else:
            base = tomllib.loads(DEFAULT_PROFILE.read_text())
            path.write_text(tomli_w.dumps(_merge(base, overrides or {})))
        return path
    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_ports() -> dict:
    """Profile overrides giving an embedded stack ports of its own, beside the session's stack."""
    backend, control, https, http, forge, supervisor = (free_port() for _ in range(6))
    return {"comfyui": {"url": f"http://127.0.0.1:{backend}"},
            "forge": {"url": f"http://127.0.0.1:{forge}"},
            "stack": {"control_url": f"http://127.0.0.1:{control}", "supervisor_url": f"http://127.0.0.1:{supervisor}"},
            "public": {"url": f"https://localhost:{https}", "http_url": f"http://localhost:{http}",
                       "cors_origins": [f"https://localhost:{https}"]}}


def run_pytest(*args: str, profile: Path | None = None, timeout: float = 120,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the suite's own pytest in a subprocess (no HTML report unless asked), as a user would."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rfEs",
           "--no-header", *args]
    if not any(a.startswith("--html") for a in args):
        cmd[3:3] = ["-p", "no:html"]  # the plugin's default report would overwrite the outer run's
    if profile:
        cmd += ["--profile", str(profile)]
    full_env = {k: v for k, v in os.environ.items() if k != "COMFYCHECK_PROFILE"} | (env or {})
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_fails(result, nodeid: str, *phrases: str) -> None:
    """The run failed (exit 1), `nodeid` is among the failures, and its message says each phrase."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, f"expected a test failure (exit 1), got {result.returncode}:\n{out}"
    assert f"FAILED {nodeid}" in out, out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in the failure message:\n{out}"


def recording(name: str):
    path = RECORDINGS / name
    if not path.is_file():
        pytest.skip(f"real-server recordings not found at {RECORDINGS} (set COMFYCHECK_RECORDINGS)")
    return path
