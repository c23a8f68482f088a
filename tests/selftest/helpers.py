"""Helpers for the suite's own tests: temporary profiles, pytest runs in a subprocess, what their output says."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from comfycheck.config.paths import PROJECT_ROOT

RECORDINGS = Path(os.environ.get("COMFYCHECK_RECORDINGS", PROJECT_ROOT.parent / "shared" / "reference" / "comfyui"))
SESSION_PROFILE: dict[str, Path] = {}  # run_pytest() without a profile runs against this session's own


def merge(base: dict, extra: dict) -> dict:
    """`extra` merged into `base`, tables into tables; None removes a key (a [forge] table a test does not need)."""
    out = dict(base)
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
            continue
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Below the ephemeral range, outside the profiles' fixed 26xxx-29xxx: a port the kernel hands out (bind to 0) can
# be taken by the local end of some client connection before the server the test starts binds it.
_CANDIDATES = [p for p in range(20000, _ephemeral_low()) if not 26000 <= p < 30000]
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now, never handed out before in this process, and never one the kernel gives a client."""
    for port in random.sample(_CANDIDATES, len(_CANDIDATES)):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def own_ports(public_host: str = "localhost") -> dict:
    """Profile overrides giving an embedded stack ports of its own, beside the session's stack."""
    backend, control, https, http, forge, supervisor = (free_port() for _ in range(6))
    return {"comfyui": {"url": f"http://127.0.0.1:{backend}"},
            "forge": {"url": f"http://127.0.0.1:{forge}"},
            "stack": {"control_url": f"http://127.0.0.1:{control}", "supervisor_url": f"http://127.0.0.1:{supervisor}"},
            "public": {"url": f"https://{public_host}:{https}", "http_url": f"http://{public_host}:{http}",
                       "cors_origins": [f"https://{public_host}:{https}"]}}


def suite_command(*args: str, profile: Path | None = None, env: dict | None = None) -> tuple[list[str], dict]:
    """The suite's own pytest as a subprocess command (no HTML report, no history unless asked) and its env."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rfEs",
           "--no-header", *args]
    if not any(a.startswith("--html") for a in args):
        cmd[3:3] = ["-p", "no:html"]  # the plugin's default report would overwrite the outer run's
    if not any(a.startswith("--history") for a in args):
        cmd.append("--no-history")  # the self-tests' runs, faults and all, stay out of the user's history
    profile = profile or SESSION_PROFILE.get("path")
    if profile:
        cmd.append(f"--profile={profile}")  # the = form: pytest must not take the path for its rootdir
    full_env = {k: v for k, v in os.environ.items() if k != "COMFYCHECK_PROFILE"} | (env or {})
    return cmd, full_env


def run_pytest(*args: str, profile: Path | None = None, timeout: float = 120,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the suite's own pytest in a subprocess, as a user would."""
    cmd, full_env = suite_command(*args, profile=profile, env=env)
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_fails(result, nodeid: str, *phrases: str) -> None:
    """The run failed (exit 1), `nodeid` is among the failures, and its message says each phrase."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, f"expected a test failure (exit 1), got {result.returncode}:\n{out}"
    assert f"FAILED {nodeid}" in out, out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in the failure message:\n{out}"


def red_lines(out: str) -> list[str]:
    """The checks a run reports as failed or in error (its short summary, -rfE)."""
    return [line.split()[1] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def blocked_lines(out: str) -> list[str]:
    """The skip lines of checks blocked by a failed foundation (-rs)."""
    return [line for line in out.splitlines() if line.startswith("SKIPPED") and "blocked: needs" in line]


def recording(name: str):
    path = RECORDINGS / name
    if not path.is_file():
        pytest.skip(f"real-server recordings not found at {RECORDINGS} (set COMFYCHECK_RECORDINGS)")
    return path
