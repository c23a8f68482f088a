"""Helpers for the suite's own tests: temporary profiles, pytest runs in a subprocess, what their output says."""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.stack.ports import free_port

try:
    from playwright._impl import _assertions as _playwright_assertions
except ImportError:  # Playwright is a dependency; without it the UI checks say so themselves
    _playwright_assertions = None  # type: ignore[assignment]

RECORDINGS = Path(os.environ.get("COMFYCHECK_RECORDINGS", PROJECT_ROOT.parent / "shared" / "reference" / "comfyui"))
SESSION_PROFILE: dict[str, Path] = {}  # run_pytest() without a profile runs against this session's own
RUNNING: dict[str, pytest.FixtureRequest] = {}  # the running self-test's request: run_pytest() runs in its process


def merge(base: dict, extra: dict) -> dict:
    """`extra` merged into `base`, tables into tables; None removes a key (a [forge] table a test does not need)."""
    out = dict(base)
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
            continue
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def own_ports(public_host: str = "localhost") -> dict:
    """Profile overrides giving an embedded stack ports of its own, beside the session's stack."""
    backend, control, https, http, forge, supervisor = (free_port() for _ in range(6))  # this process's own
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
    # a serial run of its own: not the outer run's profile, nor a pytest-xdist worker (it has its ports' share)
    full_env = {k: v for k, v in os.environ.items()
                if k != "COMFYCHECK_PROFILE" and not k.startswith("PYTEST_XDIST_")} | (env or {})
    return cmd, full_env


def run_pytest(*args: str, profile: Path | None = None, timeout: float = 120, env: dict | None = None,
               in_subprocess: bool = False) -> subprocess.CompletedProcess:
    """Run the suite's own pytest on `args`, as a user would, and say what it said: in this process (which spares
    a second or two of start-up every run), or in a subprocess where the process is itself what is tested. Either
    way the run has the profile, the environment, the folder and the time bound given here."""
    cmd, full_env = suite_command(*args, profile=profile, env=env)
    request = RUNNING.get("request")
    # Playwright's sync API runs its event loop in the thread that started it: where this process already holds a
    # browser (the UI checks of this very run), a run that starts one of its own runs in a process of its own
    if in_subprocess or request is None or asyncio_loop_running():
        return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)
    basetemp = request.getfixturevalue("tmp_path_factory").mktemp("inner-run")
    return _in_process(cmd, full_env, timeout, basetemp)


def _in_process(cmd: list[str], env: dict, timeout: float, basetemp: Path) -> subprocess.CompletedProcess:
    """pytest.main() in this process, as pytester's runpytest_inprocess does, but keeping the modules it imports:
    every run here runs this checkout's own test modules, and NumPy cannot be imported twice in one process."""
    args = [*cmd[cmd.index("pytest") + 1:], f"--basetemp={basetemp}"]  # its tmp_path apart from the outer run's
    saved_profile, saved_running = dict(SESSION_PROFILE), dict(RUNNING)  # a run of self-tests sets both
    modules_before = set(sys.modules)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(PROJECT_ROOT)
        mp.setattr(sys, "path", list(sys.path))
        for name in set(os.environ) - set(env):
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        if _playwright_assertions is not None:  # pytest-playwright holds each test in one soft-assertion scope a
            mp.setattr(_playwright_assertions, "_soft_errors", None)  # process: the inner run's tests get theirs
        deadline = _Deadline(timeout)
        try:
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = pytest.main(args)
            finally:
                deadline.finish()
        except KeyboardInterrupt:  # the deadline's interrupt, outside the session (pytest.main handles it inside)
            code = pytest.ExitCode.INTERRUPTED
        finally:
            SESSION_PROFILE.clear()
            SESSION_PROFILE.update(saved_profile)
            RUNNING.clear()
            RUNNING.update(saved_running)
            _forget_outside_modules(modules_before)
    if deadline.fired:
        raise subprocess.TimeoutExpired(cmd, timeout, out.getvalue(), err.getvalue())
    return subprocess.CompletedProcess(cmd, int(code), out.getvalue(), err.getvalue())


def asyncio_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _forget_outside_modules(before: set[str]) -> None:
    """The modules an in-process run imported from outside this checkout and Python itself (a self-test's own
    test file in its tmp_path, test_checks.py say) are forgotten, so the next run's file of that name is its own."""
    keep = (str(PROJECT_ROOT), sys.base_prefix, sys.prefix)
    for name in set(sys.modules) - before:
        path = getattr(sys.modules[name], "__file__", None) or ""
        if path and not path.startswith(keep):
            del sys.modules[name]


class _Deadline:
    """An in-process run's time bound: past it, the run is interrupted as Ctrl-C would interrupt it (its fixtures
    still tear down), and run_pytest raises TimeoutExpired as subprocess.run does."""

    def __init__(self, seconds: float):
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def finish(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def assert_fails(result, nodeid: str, *phrases: str) -> None:
    """The run failed (exit 1), `nodeid` is among the failures, and its message says each phrase."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, f"expected a test failure (exit 1), got {result.returncode}:\n{out}"
    assert f"FAILED {nodeid}" in out, out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in the failure message:\n{out}"


def measured(folder: Path) -> dict[str, dict]:
    """The figures a run with --html=<folder>/report.html wrote to measurements.json, by name."""
    return {m["name"]: m for m in json.loads((folder / "measurements.json").read_text())}


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
