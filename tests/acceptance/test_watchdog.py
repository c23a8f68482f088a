"""Watchdog checklist: ComfyUI killed for real comes back, fast, directly and through the proxy, and works."""
from __future__ import annotations

import pytest

from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.workflows import load_workflow, make_unique
from comfycheck.watchdog import KillRefused, WatchdogError, kill_and_watch, make_killer, roll_back, steady_state

pytestmark = [pytest.mark.acceptance, pytest.mark.watchdog, pytest.mark.destructive, pytest.mark.timing]


def test_watchdog_restarts_comfyui_after_a_kill(profile, deployment, comfy, measure):
    w = profile.watchdog
    try:
        killer = make_killer(profile)
    except WatchdogError as exc:
        pytest.fail(f"[watchdog] in {profile.path}: {exc}", pytrace=False)
    # one-second answers: a poll must not sit in a long timeout while the watchdog works
    direct = ComfyClient.from_profile(profile, timeout=1.0)
    public = ComfyClient.from_profile(profile, public=True, timeout=1.0) if profile.public_url else None
    rollback = None
    try:
        waited = steady_state(direct, public, w.idle_wait_s)  # healthy and idle, else no kill
        rec = kill_and_watch(killer, direct, public, deadline_s=w.deadline_s, interval_s=w.poll_interval_s,
                             supervisor_url=w.supervisor_url, program=w.supervisor_program)
        if rec.missing(profile.comfyui.url, profile.public_url):
            rollback = roll_back(w, direct)  # not back by the deadline: bring it back the profile's way
    except KillRefused as exc:
        pytest.skip(str(exc))
    except WatchdogError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        direct.close()
        if public:
            public.close()
    if waited >= 1:
        measure.info("waited for ComfyUI to be idle before the kill", round(waited, 1), "s")

    measure.info("kill", rec.how, old=str(rec.old), polls=rec.polls, interval_s=w.poll_interval_s)
    if rec.stopped_answering_s is not None:
        measure.info("ComfyUI stopped answering after the kill", round(rec.stopped_answering_s, 3), "s")
    if rec.new_process_s is not None:
        measure.info("new ComfyUI process after the kill", round(rec.new_process_s, 3), "s", new=str(rec.new))
    for note in rec.notes:
        measure.info("note", note)
    missing = rec.missing(profile.comfyui.url, profile.public_url)
    if missing:
        after = (f" -- {rollback.describe()}" if rollback else
                 " -- no rollback: [watchdog] rollback names none, so ComfyUI was left down; bring it back by hand")
        if rollback:
            measure.info("rollback", rollback.what,
                         back_s=None if rollback.back_s is None else round(rollback.back_s, 1))
        pytest.fail(f"ComfyUI did not come back within {w.deadline_s:g} s after the kill ({rec.how}): "
                    + "; ".join(missing) + after, pytrace=False)
    with measure.together():
        for figure in rec.figures(profile.targets):
            measure.judged(figure)

    workflow = make_unique(load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow)))
    result = comfy.run(workflow, timeout=profile.comfyui.generation_timeout_s)
    assert result.ok, f"after the restart the smoke generation failed: {result.failure_message()}"

