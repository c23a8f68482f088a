"""Fixtures for the suite's own tests; their helpers are in helpers.py."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from comfycheck.extras import EXTRAS, lacking

for _extra in EXTRAS:
    if why := lacking(_extra, "comfycheck's own tests"):
        pytest.skip(why, allow_module_level=True)
from comfycheck.config.paths import DEFAULT_PROFILE
from comfycheck.stack import FaultSwitch
from tests.selftest.helpers import RUNNING, SESSION_PROFILE, merge

QUICK_STEP_S = 0.005  # the stand-in's simulated seconds per sampling step in quick_steps (the profiles': 0.05)


@pytest.fixture(scope="session", autouse=True)
def _session_profile(profile):
    """run_pytest() without a profile runs against this session's own (the stand-in, or real ComfyUI)."""
    SESSION_PROFILE["path"] = profile.path


@pytest.fixture(autouse=True)
def _runs_in_process(request):
    """run_pytest() in a self-test runs the suite in the test's own process, with its pytester."""
    RUNNING["request"] = request
    yield
    RUNNING.pop("request", None)


def pytest_itemcollected(item):  # called for the items of this folder only (its conftest's scope)
    item.add_marker(pytest.mark.selftest)


@pytest.fixture
def quick_steps(profile, deployment):
    """The stand-in's simulated sampling made quick (its model_step_s switch): a self-test that drives a class of
    prompts through a healthy stand-in does not wait out twenty simulated steps a prompt. Real ComfyUI runs as it
    runs."""
    if not profile.embedded or profile.stack.real:
        yield
        return
    switch = FaultSwitch(profile.stack.control_url)
    switch.set(model_step_s=QUICK_STEP_S)
    yield
    switch.set(model_step_s=0.0)  # the stack's own again


@pytest.fixture
def make_profile(tmp_path, profile):
    """Write a profile: the session's embedded-stack profile (stand-in or real ComfyUI; else profiles/local.toml)
    with `overrides` merged in (nested tables as dicts)."""
    base_path = profile.path if profile.embedded else DEFAULT_PROFILE

    def make(overrides: dict | None = None, *, raw: str | None = None, name: str = "profile.toml") -> Path:
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw)
        else:
            base = tomllib.loads(base_path.read_text())
            path.write_text(tomli_w.dumps(merge(base, overrides or {})))
        return path
    return make
