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


def run_pytest(*args: str, profile: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the suite's own pytest in a subprocess (no HTML report), as a user would."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rfEs",
           "--no-header", *args]
    if profile:
        cmd += ["--profile", str(profile)]
    env = {k: v for k, v in os.environ.items() if k != "COMFYCHECK_PROFILE"}
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def recording(name: str):
    path = RECORDINGS / name
    if not path.is_file():
        pytest.skip(f"real-server recordings not found at {RECORDINGS} (set COMFYCHECK_RECORDINGS)")
    return path
