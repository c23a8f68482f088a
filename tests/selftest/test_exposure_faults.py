"""The exposure check on the embedded stack's open nginx: a shared deployment fails, naming every operation a user
reaches with the rule that refuses it; and the whole check leaves the queue, the history and a running prompt as
they were (stand-in and real ComfyUI)."""
from __future__ import annotations

import pytest

from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.operations import OPERATIONS
from comfycheck.comfy.workflows import load_workflow, make_unique
from comfycheck.config.paths import WORKFLOWS_DIR
from comfycheck.polling import wait_until
from tests.selftest.helpers import assert_fails, run_pytest

pytestmark = pytest.mark.selftest
EXPOSURE = "tests/acceptance/test_exposure.py::test_a_user_cannot_act_on_everyone_else"
ABSENT_HERE = {"manager"}  # ComfyUI-Manager is not installed in the embedded stack


def test_an_open_proxy_fails_a_shared_deployment_naming_each_operation(deployment, make_profile):
    result = run_pytest(EXPOSURE, profile=make_profile({"public": {"audience": "shared"}}))
    labels = [op.label for op in OPERATIONS if op.key not in ABSENT_HERE]
    assert_fails(result, EXPOSURE, f"measured {len(labels)} operations, target <= 0",
                 *(f"{label} is reachable" for label in labels), "refuse it at the proxy, nginx `")
    assert "ComfyUI-Manager" not in result.stdout, result.stdout


def test_an_operator_deployment_passes_and_an_override_is_honoured(deployment, make_profile):
    assert run_pytest(EXPOSURE, profile=make_profile()).returncode == 0
    one = make_profile({"public": {"refused_operations": ["free"]}})
    assert_fails(run_pytest(EXPOSURE, profile=one), EXPOSURE, "measured 1 operations",
                 "unload the models for everyone (POST /free) is reachable")
    allowed = [op.key for op in OPERATIONS if op.key != "priority"]
    shared = make_profile({"public": {"audience": "shared", "allowed_operations": allowed}})
    assert_fails(run_pytest(EXPOSURE, profile=shared), EXPOSURE, "measured 1 operations", "jump the queue")


def test_the_check_leaves_the_queue_the_history_and_a_running_prompt_alone(profile, deployment, make_profile):
    slow = load_workflow(WORKFLOWS_DIR / "cpu_load_modelfree.json")
    with ComfyClient.from_profile(profile) as comfy:
        running = comfy.submit(make_unique(slow))["prompt_id"]
        wait_until(lambda: comfy.queue()["queue_running"], timeout=30, what="the first prompt to start")
        pending = comfy.submit(make_unique(slow))["prompt_id"]
        history_before = set(comfy.history())
        result = run_pytest(EXPOSURE, profile=make_profile({"public": {"audience": "shared"}}))
        assert "is reachable" in result.stdout, result.stdout  # the probes got through and changed nothing
        queue = comfy.queue()
        ids = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
        assert running in ids or running in comfy.history(), "the running prompt vanished"
        assert pending in ids or pending in comfy.history(pending), f"the pending prompt {pending} was dequeued"
        wait_until(lambda: pending in comfy.history(pending), timeout=profile.comfyui.generation_timeout_s,
                   what="both prompts to finish")
        for prompt_id in (running, pending):
            status = comfy.history(prompt_id)[prompt_id]["status"]
            assert status["status_str"] == "success", f"prompt {prompt_id} ended {status}: it was interrupted"
        assert set(comfy.history()) == history_before | {running, pending}, \
            "the history lost or gained entries other than the two prompts"


def test_the_secure_proxy_refuses_every_operation_and_the_page_and_api_still_work(proxy_faults, make_profile):
    proxy_faults(refuse=[op.key for op in OPERATIONS])
    result = run_pytest(EXPOSURE, "-rA", profile=make_profile({"public": {"audience": "shared"}}))
    out = result.stdout + result.stderr
    assert result.returncode == 0 and f"PASSED {EXPOSURE}" in out, out
    # what students use keeps working behind it, for the shared profile that requires it: the API through the
    # proxy, the page (its own requests the proxy refuses by design told, test_ui_units) and its Run button
    shared = make_profile({"public": {"audience": "shared"}}, name="shared.toml")
    page = run_pytest("tests/acceptance/test_proxy.py", "tests/ui/test_comfyui_page.py", profile=shared, timeout=300)
    assert page.returncode == 0, page.stdout + page.stderr


@pytest.mark.parametrize("kept", ["number", "front"])
def test_a_priority_field_the_proxy_keeps_is_named_alone(proxy_faults, make_profile, kept):
    """ComfyUI reads `number` before `front`: a proxy that drops one and keeps the other is seen only by asking each
    field on its own."""
    proxy_faults(refuse=[op.key for op in OPERATIONS], priority_strip=[f for f in ("number", "front") if f != kept])
    result = run_pytest(EXPOSURE, profile=make_profile({"public": {"audience": "shared"}}))
    assert_fails(result, EXPOSURE, "measured 1 operations", f"jump the queue (number / front on POST /prompt) is "
                 f"reachable ({kept} honoured: ")


@pytest.mark.parametrize("left_open", [op.key for op in OPERATIONS if op.key not in ABSENT_HERE])
def test_each_operation_left_open_by_the_secure_proxy_fails_alone(proxy_faults, make_profile, left_open):
    proxy_faults(refuse=[op.key for op in OPERATIONS if op.key != left_open])
    label = next(op.label for op in OPERATIONS if op.key == left_open)
    result = run_pytest(EXPOSURE, profile=make_profile({"public": {"audience": "shared"}}))
    assert_fails(result, EXPOSURE, "measured 1 operations", f"{label} is reachable")
