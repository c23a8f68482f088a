"""Class-run faults in the stand-in: each is named, with the students and prompt ids it hit, and the run's exit
code says so (1: a target missed, 2: it could not start)."""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import tomli_w

from comfycheck.comfy.client import ComfyClient
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.load.locust import class_command
from comfycheck.polling import wait_until
from tests.selftest.helpers import free_port

pytestmark = pytest.mark.selftest
PROMPT_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def class_run(profile_path, tmp_path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = class_command(profile_path, tmp_path / "class", allow_load=True, keep=False) + list(args)
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def test_a_class_run_against_an_unreachable_address_stops_at_once(tmp_path):
    port = free_port()
    profile = tmp_path / "nowhere.toml"
    profile.write_text(tomli_w.dumps({"name": "nowhere", "allow_load": True,
                                      "comfyui": {"url": f"http://127.0.0.1:{port}", "timeout_s": 2}}))
    t0 = time.monotonic()
    done = class_run(profile, tmp_path, "--students", "3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot start the class run: cannot reach ComfyUI at http://127.0.0.1:{port}/system_stats" in done.stderr
    assert time.monotonic() - t0 < 30, "an unreachable address must stop the run at once"


def test_a_server_that_serves_the_newest_prompt_first_is_named_unfair(fault_switch, profile, tmp_path):
    fault_switch.set(serves_lifo=True)
    done = class_run(profile.path, tmp_path, "--students", "4", "--prompts-each", "1")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert re.search(r"FAIL +prompts that ran ahead of one submitted earlier \(FIFO\): [1-9]\d* prompts", out), out
    summary = (tmp_path / "class" / "summary.json").read_text()
    assert re.search(rf"{PROMPT_ID} \(student-\d\d #1, queue number \d+\) ran before {PROMPT_ID} ", summary), summary
    assert "not first come, first served" in summary


def test_a_prompt_that_never_finishes_is_named_lost_with_its_student(fault_switch, profile, tmp_path):
    fault_switch.set(drop_prompts=1)
    done = class_run(profile.path, tmp_path, "--students", "3", "--prompts-each", "1", "--time-limit-s", "15")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert re.search(r"FAIL +class prompts lost \(submitted, never finished\): 1 prompts", out), out
    summary = (tmp_path / "class" / "summary.json").read_text()
    assert re.search(rf"student-\d\d #1 {PROMPT_ID}: prompt {PROMPT_ID} ", summary), summary


def test_a_proxy_that_drops_idle_sockets_in_the_queue_is_counted_with_the_fix(proxy_faults, fault_switch, profile,
                                                                              tmp_path):
    proxy_faults(read_timeout_s=1)
    fault_switch.set(slow_generation_s=2.5)  # each student's socket waits silent in the queue longer than 1 s
    done = class_run(profile.path, tmp_path, "--students", "3", "--prompts-each", "1")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert re.search(r"FAIL +student WebSockets dropped during the run: [1-9]\d* drops", out), out
    assert re.search(r"pass +class prompts lost \(submitted, never finished\): 0 prompts", out), (
        "a dropped socket must not lose its prompt: the student follows it in /history\n" + out)
    assert "raise its read timeout (nginx proxy_read_timeout" in (tmp_path / "class" / "summary.json").read_text()


def test_prompts_still_queued_when_the_time_limit_comes_are_not_lost(fault_switch, profile, tmp_path):
    """A class cut off by its time limit: the prompts ComfyUI still has queued are told as such, with the limit,
    and "lost" stays 0 (it is for prompts ComfyUI no longer knows)."""
    fault_switch.set(slow_generation_s=3.0)
    try:
        done = class_run(profile.path, tmp_path, "--students", "4", "--prompts-each", "1", "--time-limit-s", "4")
    finally:  # the session's stand-in is left as the next test expects it: its queue empty
        fault_switch.set(slow_generation_s=0.0)
        with ComfyClient.from_profile(profile) as comfy:
            comfy.request("POST", "/queue", json={"clear": True})
            comfy.interrupt()
            wait_until(lambda: not any(comfy.queue().values()), timeout=30, interval=0.1, what="the queue empty")
    out = done.stdout + done.stderr
    assert re.search(r"pass +class prompts lost \(submitted, never finished\): 0 prompts", out), out
    assert re.search(r"info +prompts the run stopped waiting for: [1-9] prompts", out), out
    summary = (tmp_path / "class" / "summary.json").read_text()
    assert re.search(r"still (queued|running) on \S+ when the run stopped \(time limit \(4 s\)\)", summary), summary
