"""Fixtures for the suite's own tests; their helpers are in helpers.py."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from comfycheck.config.paths import DEFAULT_PROFILE
from tests.selftest.helpers import SESSION_PROFILE, merge


@pytest.fixture(scope="session", autouse=True)
def _session_profile(profile):
    """run_pytest() without a profile runs against this session's own (the stand-in, or real ComfyUI)."""
    SESSION_PROFILE["path"] = profile.path


def pytest_itemcollected(item):  # called for the items of this folder only (its conftest's scope)
    item.add_marker(pytest.mark.selftest)


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
