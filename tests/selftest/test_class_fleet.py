"""A class on a fleet: two stand-in backends behind the embedded nginx (least_conn, with the affinity a student's
socket and submits need), or addressed directly in turn; figures per backend from each one's own timestamps, and
a backend stopped mid-run named."""
from __future__ import annotations

import json
import re
import subprocess
import tomllib

import pytest
import tomli_w

from comfycheck.classrun import records as raw
from comfycheck.classrun.report import SUMMARY_JSON, ClassSummary
from comfycheck.comfy.client import ComfyClient
from comfycheck.config.paths import DEFAULT_PROFILE, PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.load.locust import class_command
from comfycheck.polling import wait_until
from comfycheck.stack import EmbeddedStack, FaultSwitch
from comfycheck.stack import fleet as stack_fleet
from tests.selftest.helpers import free_port, merge, own_ports

pytestmark = [pytest.mark.selftest, pytest.mark.xdist_group("class_fleet")]  # one fleet of stand-ins


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, profile):
    """Two stand-in backends under one supervisord and one nginx, on ports of their own."""
    folder = tmp_path_factory.mktemp("fleet")
    ports = own_ports(profile.public.host if profile.public else "localhost")
    ports["forge"] = None
    main, other = ports["comfyui"]["url"], f"http://127.0.0.1:{free_port()}"
    base = tomllib.loads(DEFAULT_PROFILE.read_text())
    base["gpus"].pop("forge", None)
    paths = {}
    for spread in ("balancer", "direct"):
        paths[spread] = folder / f"{spread}.toml"
        paths[spread].write_text(tomli_w.dumps(merge(base, merge(ports, {
            "name": f"fleet-{spread}", "stack": {"comfyui": "standin"},
            "class": {"backends": [main, other], "spread": spread, "students": 6, "prompts_each": 2}}))))
    paths["fast"] = folder / "fast.toml"  # the model-free workflow: no upload, so a prompt is lost, not refused
    paths["fast"].write_text(paths["balancer"].read_text().replace(
        'generation_workflow = "qwen_image_edit_2509.json"', 'generation_workflow = "smoke_modelfree.json"'))
    stack = EmbeddedStack(load_profile(paths["balancer"]))
    stack.up()
    try:
        yield paths, [main, other], stack
    finally:
        stack.down()


def class_run(path, out, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = class_command(path, out, allow_load=True, keep=False) + list(args)
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("spread", ["balancer", "direct"])
def test_a_class_on_two_backends_is_served_by_both_with_figures_for_each(fleet, spread, tmp_path):
    paths, backends, _ = fleet
    done = class_run(paths[spread], tmp_path / "class")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    recs = raw.read(tmp_path / "class" / raw.PROMPTS_JSONL)
    assert len(recs) == 12 and all(r.ok for r in recs), recs
    served = {b: sum(r.served_by == b for r in recs) for b in backends}
    if spread == "direct":
        assert served == {backends[0]: 6, backends[1]: 6}, "round-robin: 3 students each, 2 prompts each"
        assert {r.backend for r in recs} == set(backends), "each student talked to its backend itself"
    else:
        assert all(served.values()), f"least_conn sent students to both backends: {served}"
        assert sum(served.values()) == 12, f"every prompt found on its backend: {served}"
    for b in backends:
        assert re.search(rf"info +backend {re.escape(b)}: queue wait p95: [\d.]+ s", out), out
    assert re.search(r"pass +fleet backends that failed, stalled or stopped answering during the run: 0 backends",
                     out), out
    assert "on each of 2 backends" in ClassSummary.read(tmp_path / "class" / SUMMARY_JSON).capacity


def test_a_backend_stopped_mid_run_is_named_and_its_students_go_on_on_the_other(fleet, tmp_path):
    paths, backends, stack = fleet
    out_dir = tmp_path / "class"
    run = subprocess.Popen(class_command(paths["balancer"], out_dir, allow_load=True, keep=False)
                           + ["--prompts-each", "4", "--time-limit-s", "60"], cwd=PROJECT_ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(raw.read(out_dir / raw.PROMPTS_JSONL)) >= 4 if (out_dir / raw.PROMPTS_JSONL).exists()
                   else False, timeout=60, interval=0.1, what="the class run's first prompts back")
        stack.stop_backend(backends[1])
        text, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
        stack_fleet.bring_back(stack.profile, 30)
    assert run.returncode == 1, text
    assert re.search(r"FAIL +fleet backends that failed, stalled or stopped answering during the run: 1 backends",
                     text), text
    rows = json.loads((out_dir / SUMMARY_JSON).read_text())["measurements"]
    note = next(m["note"] for m in rows if m["target"] == "class_backends_failing")
    assert f"{backends[1]}: " in note and "not answering at the end" in note, note
    assert f"{backends[0]}: " not in note, "the backend that kept serving is not named as failing: " + note
    recs = raw.read(out_dir / raw.PROMPTS_JSONL)
    assert len(recs) == 24, "every prompt accounted for"
    late = [r for r in recs if r.seq == 4]
    assert all(r.ok and r.served_by == backends[0] for r in late), (
        "the stopped backend's students were handed to the other one: " + repr(late))


def test_a_backend_that_stalls_is_named_with_the_prompts_it_still_holds(fleet, tmp_path):
    paths, backends, stack = fleet
    faults = FaultSwitch(stack.settings.control_url)  # the fleet's first backend has the fault switches
    faults.set(slow_generation_s=30)
    try:
        done = class_run(paths["direct"], tmp_path / "class", "--prompts-each", "1", "--time-limit-s", "8")
    finally:
        faults.reset()
        with ComfyClient(backends[0]) as first:
            first.request("POST", "/queue", json={"clear": True})
            first.interrupt()
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    rows = json.loads((tmp_path / "class" / SUMMARY_JSON).read_text())["measurements"]
    note = next(m["note"] for m in rows if m["target"] == "class_backends_failing")
    assert f"{backends[0]}: 0 of 3 prompts back; 3 still queued or running when the run stopped" in note, note
    assert f"{backends[1]}: " not in note and "not answering" not in note, note
    recs = raw.read(tmp_path / "class" / raw.PROMPTS_JSONL)
    assert sorted((r.served_by, r.status) for r in recs) == sorted(
        [(backends[0], raw.CUT_OFF)] * 3 + [(backends[1], "success")] * 3), recs  # not lost: it holds them


def test_a_balancer_without_affinity_loses_prompts_and_is_named(fleet, tmp_path):
    """A student balanced request by request: its open socket counts on one backend, so least_conn sends its
    submit to the other, and the socket never hears of the prompt. (Among many students the sockets even out and
    whether a submit meets its socket turns on the order their requests reach nginx: one student is the sure case.)"""
    paths, backends, stack = fleet
    stack.set_proxy_faults(no_affinity=True)
    try:
        done = class_run(paths["fast"], tmp_path / "class", "--students", "1", "--prompts-each", "1",
                         "--time-limit-s", "6")
    finally:
        stack.set_proxy_faults()
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    (rec,) = raw.read(tmp_path / "class" / raw.PROMPTS_JSONL)
    assert rec.status == raw.LOST, rec
    assert "the balancer sent the submit and the socket to different backends" in rec.error, rec.error
    assert rec.served_by in backends, rec
