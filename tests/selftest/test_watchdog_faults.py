"""The kill test against watchdogs that fail, and its guardrail."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from comfycheck.config.paths import DEFAULT_PROFILE
from comfycheck.probes.process import ProcessId
from comfycheck.watchdog import Killer, kill_and_watch
from tests.selftest.helpers import assert_fails, merge, own_ports, run_pytest

pytestmark = pytest.mark.selftest
KILL = "tests/acceptance/test_watchdog.py::test_watchdog_restarts_comfyui_after_a_kill"


def _own_stack(profile, **overrides) -> dict:
    ports = own_ports(profile.public.host if profile.public else "localhost")
    ports["forge"] = None  # no Forge: it is not part of this check (None drops the table from the profile)
    return merge(ports, overrides)


def test_watchdog_that_never_restarts_fails_at_the_deadline(make_profile, profile):
    profile = make_profile(_own_stack(profile, stack={"autorestart": False}, watchdog={"deadline_s": 3}))
    result = run_pytest(KILL, profile=profile, timeout=90)
    assert_fails(result, KILL, "ComfyUI did not come back within 3 s after the kill (SIGKILL to pid",
                 "no new process appeared (the watchdog did not restart ComfyUI)",
                 "/system_stats never answered 200 again")


def test_restart_slower_than_the_target_fails_with_the_time(make_profile, profile):
    # the stand-in waits startup_delay_s before it listens; real ComfyUI needs several seconds of its own
    profile = make_profile(_own_stack(profile, stack={"startup_delay_s": 1.5}, targets={"restart_s": 1.0}))
    result = run_pytest(KILL, profile=profile, timeout=90)
    assert_fails(result, KILL, "ComfyUI back after the kill (direct /system_stats 200): measured",
                 "target < 1 s (target 'restart_s')")


def test_guardrail_skips_the_kill_where_the_profile_forbids_it(make_profile, profile):
    forbidding = make_profile({"allow_destructive": False})
    result = run_pytest(KILL, profile=forbidding)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "1 skipped" in out, out
    assert f"destructive test: profile {profile.name!r} does not allow it (allow_destructive = false); " \
           "pass --allow-destructive to run it anyway" in out


def test_guardrail_skips_before_contacting_a_production_profile():
    result = run_pytest(KILL, profile=DEFAULT_PROFILE.with_name("production.example.toml"), timeout=30)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "1 skipped" in out and "'production' does not allow it" in out, out


@pytest.mark.parametrize("watchdog", [
    {"kill": "local"},
    {"kill": "supervisor"},
    {"kill": "command", "kill_command": "kill -9 {pid}"},
], ids=["local", "supervisor", "command"])
def test_each_kill_strategy_measures_a_recovery(deployment, make_profile, watchdog, tmp_path):
    # What is under test is the strategy: its kill, the new process, both recoveries measured. The speed is judged
    # with the machine to itself (the speeds run): real ComfyUI's restart beside the suite's other workers on two
    # cores was once 30.7 s, so the targets here are the deadline. --allow-destructive overrides a forbidding profile.
    deadline = {"restart_s": 120, "startup_s": 120}
    profile = make_profile({"allow_destructive": False, "watchdog": watchdog, "targets": deadline})
    report = tmp_path / "report.html"
    result = run_pytest(KILL, "--allow-destructive", f"--html={report}", "--self-contained-html", profile=profile,
                        timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    measured = {m["name"]: m for m in json.loads((tmp_path / "measurements.json").read_text())}
    for figure in ("new ComfyUI process after the kill", "ComfyUI back after the kill (direct /system_stats 200)",
                   "ComfyUI back through the proxy after the kill",
                   "startup of the new process (to /system_stats 200)"):
        assert figure in measured and measured[figure]["value"] >= 0, f"{watchdog['kill']}: {figure!r} not measured"


class _LateReportingWatchdog(Killer):
    """Spawns the new process at the kill but reports it only `startsecs` later, as supervisord does (RUNNING)."""

    name = "supervisor"

    def __init__(self, startsecs: float):
        self.startsecs, self.spawned = startsecs, 0.0
        self.child: subprocess.Popen | None = None

    def current(self):
        if self.child is None:
            return ProcessId(os.getpid(), 0.0)
        return ProcessId(self.child.pid, 0.0) if time.monotonic() - self.spawned >= self.startsecs else None

    def kill(self, target):
        self.child, self.spawned = subprocess.Popen(["sleep", "5"]), time.monotonic()
        return "spawned a replacement"


def test_new_process_is_timed_from_its_spawn_not_from_the_watchdogs_report(comfy):
    watchdog = _LateReportingWatchdog(startsecs=1.0)
    try:
        rec = kill_and_watch(watchdog, comfy, None, deadline_s=10)
    finally:
        if watchdog.child is not None:
            watchdog.child.kill()
            watchdog.child.wait()
    assert watchdog.child is not None and rec.new is not None and rec.new.pid == watchdog.child.pid, rec
    assert rec.new_process_s is not None and rec.new_process_s < 0.3, (
        f"the new process was timed at {rec.new_process_s:.2f} s, when the watchdog reported it, not at its spawn "
        "(about 0 s after the kill)")
