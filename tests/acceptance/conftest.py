"""The acceptance layer's one background check: the WebSocket that must survive the longest silent phase is
opened as the layer starts, held silent while every other check runs (comfycheck.probes.silence), and judged
last of the checks that leave the service alone, so the run waits only for what is left of the silence.

ComfyUI tells every socket when its queue changes, so a check that queues a prompt restarts the silence: where
the held check runs, the checks marked `generation` go first, and the silence begins as soon as they are done."""
from __future__ import annotations

import pytest

from comfycheck.comfy.client import ComfyClient
from comfycheck.probes.silence import HeldSilence

SILENT_CHECK = "test_websocket_through_proxy_survives_the_longest_silent_phase"
DISRUPTIVE = ("destructive", "load", "selftest")  # what may drop or flood the held socket: judged before these
SELECTED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after -m and -k deselected: only a check that runs is held
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    held = [item for item in items if getattr(item, "originalname", item.name) == SILENT_CHECK]
    config.stash[SELECTED_KEY] = bool(held)
    if not held:
        return
    rest = [item for item in items if item not in held]
    at = next((n for n, item in enumerate(rest) if any(item.get_closest_marker(m) for m in DISRUPTIVE)), len(rest))
    queueing = [item for item in rest[:at] if item.get_closest_marker("generation")]
    quiet = [item for item in rest[:at] if item not in queueing]
    items[:] = queueing + quiet + held + rest[at:]


@pytest.fixture(scope="session")
def held_silence(profile, deployment):
    """The silent WebSocket through the proxy, opened in the background now (public.websocket_idle_s)."""
    client = ComfyClient.from_profile(profile, public=True, origin=profile.public.origin)
    held = HeldSilence(client, profile.public.websocket_idle_s)
    yield held
    held.abort()


@pytest.fixture(autouse=True)
def _hold_the_silence_from_the_start(request: pytest.FixtureRequest, profile) -> None:
    if profile.public is None or not request.config.stash.get(SELECTED_KEY, False):
        return
    try:
        request.getfixturevalue("held_silence")
    except (pytest.fail.Exception, pytest.skip.Exception):
        pass  # the stack did not start: the checks that need it say so, this one among them
