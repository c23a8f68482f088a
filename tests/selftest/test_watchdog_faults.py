"""The kill test against watchdogs that fail, and its guardrail."""
from __future__ import annotations

import os
import subprocess
import time

import psutil
import pytest

from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.workflows import load_workflow, make_unique
from comfycheck.config.paths import DEFAULT_PROFILE, WORKFLOWS_DIR
from comfycheck.config.profile import load_profile
from comfycheck.polling import wait_until
from comfycheck.probes.process import ProcessId, listening_process
from comfycheck.stack import EmbeddedStack
from comfycheck.standin.__main__ import CRASH_AT_START
from comfycheck.watchdog import Killer, kill_and_watch
from tests.selftest.helpers import assert_fails, measured, merge, own_ports, run_pytest

pytestmark = pytest.mark.selftest
KILL = "tests/acceptance/test_watchdog.py::test_watchdog_restarts_comfyui_after_a_kill"


def _own_stack(profile, **overrides) -> dict:
    ports = own_ports(profile.public.host if profile.public else "localhost")
    ports["forge"] = None  # no Forge: it is not part of this check (None drops the table from the profile)
    return merge(ports, overrides)


def test_watchdog_that_never_restarts_fails_at_the_deadline_and_the_rollback_brings_it_back(make_profile, profile):
    path = make_profile(_own_stack(profile, stack={"autorestart": False}, watchdog={"deadline_s": 3}))
    stack = EmbeddedStack(load_profile(path))
    stack.up()
    try:
        result = run_pytest(KILL, profile=path, timeout=90)
        assert_fails(result, KILL, "ComfyUI did not come back within 3 s after the kill (SIGKILL to pid",
                     "no new process appeared (the watchdog did not restart ComfyUI)",
                     "/system_stats never answered 200 again",
                     f"ROLLBACK RAN: supervisord at {stack.settings.supervisor_url} restarted program 'comfyui'; "
                     "ComfyUI answered again")
        assert stack.running() is not None, "the rollback did not leave ComfyUI running"
    finally:
        stack.down()


def test_a_crash_loop_is_named_with_each_exit_and_the_last_log_lines(make_profile, profile):
    """After the kill, supervisord starts ComfyUI again and each new process exits at once (a bad argument left in
    its command line): the failure counts them, says how each ended and what ComfyUI said, and the rollback runs."""
    # three exits end the wait at once (real ComfyUI takes ~10 s to reach its custom nodes); the rollback, which
    # cannot help, is waited for a few seconds
    real = profile.stack is not None and profile.stack.real
    path = make_profile(_own_stack(profile, watchdog={"deadline_s": 60 if real else 10,
                                                      "rollback_wait_s": 12 if real else 3}))
    stack = EmbeddedStack(load_profile(path))
    stack.up()
    bad = "error: unrecognized arguments: --highvram-typo"
    if stack.settings.real:  # real ComfyUI: a custom node that exits as it is imported (SystemExit passes its guard)
        node = stack.state_dir / "comfyui-real" / "custom_nodes" / "comfycheck_selftest_exits"
        node.mkdir(parents=True, exist_ok=True)
        (node / "__init__.py").write_text(f"import sys\nprint({bad!r}, flush=True)\nsys.exit(3)\n")
        crash = node / "__init__.py"
    else:
        crash = stack.state_dir / "comfyui" / CRASH_AT_START
        crash.write_text(f"3 {bad}")
    try:
        result = run_pytest(KILL, profile=path, timeout=240)
        # the stand-in dies three times within the deadline and its last lines are its words; real ComfyUI, ~10 s a
        # start (25 s beside the suite's other workers), dies at least once, and the next start's lines may follow
        said = ["exit status 3", "the last lines of ComfyUI's log: "] if real else \
            ["(exit status 3, exit status 3, exit status 3)", bad]
        assert_fails(result, KILL, "ComfyUI is in a crash loop: ", "new process(es) started after the kill", *said,
                     "read from supervisord's log", "ROLLBACK RAN: ",
                     "ComfyUI still did not answer at the deadline: bring it back by hand")
    finally:
        crash.unlink()
        stack.down()
    # a crash loop spawns again and again: stopping supervisord in the middle of one must leave no orphan behind
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if str(stack.state_dir) in " ".join(p.info["cmdline"] or [])]
    assert not left, f"processes of the stopped stack outlived it: {left}"


def test_a_busy_deployment_is_not_killed(deployment, fault_switch, make_profile, profile):
    """Someone's prompt runs: the kill waits idle_wait_s for it, then is refused, naming it; the prompt ends well."""
    fault_switch.set(slow_generation_s=6)
    with ComfyClient.from_profile(profile) as comfy:
        before = comfy.system_stats()["system"].get("argv")
        running = comfy.submit(make_unique(load_workflow(WORKFLOWS_DIR / "cpu_load_modelfree.json")))["prompt_id"]
        wait_until(lambda: comfy.queue()["queue_running"], timeout=30, what="the prompt to start")
        pid = listening_process(int(profile.comfyui.url.rsplit(":", 1)[1]))
        result = run_pytest(KILL, "-rs", profile=make_profile({"watchdog": {"idle_wait_s": 1}}), timeout=90)
        out = result.stdout + result.stderr
        assert result.returncode == 0 and "1 skipped" in out, out
        assert "the kill was refused: ComfyUI was still busy after 1 s (prompt " in out and running in out, out
        assert listening_process(int(profile.comfyui.url.rsplit(":", 1)[1])) == pid, "ComfyUI was killed"
        wait_until(lambda: running in comfy.history(running), timeout=60, what="the prompt to end")
        assert comfy.history(running)[running]["status"]["status_str"] == "success"
        assert comfy.system_stats()["system"].get("argv") == before


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
    figures = measured(tmp_path)
    for figure in ("new ComfyUI process after the kill", "ComfyUI back after the kill (direct /system_stats 200)",
                   "ComfyUI back through the proxy after the kill",
                   "startup of the new process (to /system_stats 200)"):
        assert figure in figures and figures[figure]["value"] >= 0, f"{watchdog['kill']}: {figure!r} not measured"


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
