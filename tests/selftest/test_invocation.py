"""How users start the suite: a profile anywhere on disk, with pytest or ./run, from anywhere.

Each run only collects (`--co`): the profile is loaded and validated, nothing is contacted.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comfycheck.config.paths import DEFAULT_PROFILE, PROJECT_ROOT

pytestmark = pytest.mark.selftest
RUN = PROJECT_ROOT / "run"


@pytest.fixture
def outside_profile(tmp_path) -> Path:
    """A copy of the local profile in a folder outside the checkout, named so it shows in the header."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "mine.toml"
    path.write_text(DEFAULT_PROFILE.read_text().replace('name = "local"', 'name = "mine"', 1))
    return path


def _collect(cmd: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COMFYCHECK_PROFILE"}
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    out = result.stdout + result.stderr
    assert "unrecognized arguments" not in out, out
    assert result.returncode == 0, f"exit {result.returncode}:\n{out}"
    return out


@pytest.mark.parametrize("form", ["--profile PATH", "--profile=PATH"])
def test_pytest_takes_a_profile_outside_the_checkout(outside_profile, form):
    flag = [f"--profile={outside_profile}"] if "=" in form else ["--profile", str(outside_profile)]
    out = _collect([sys.executable, "-m", "pytest", "--co", "-p", "no:cacheprovider", "-m", "smoke",
                    "-p", "no:html", *flag], PROJECT_ROOT)
    assert f"comfycheck profile: mine from {outside_profile}" in out, out
    assert "PytestUnknownMarkWarning" not in out, "the plugin's markers were not registered:\n" + out
    assert " tests collected" in out or "selected" in out, out


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_run_script_takes_a_relative_profile_from_the_callers_directory(outside_profile, where):
    if shutil.which("realpath") is None:
        pytest.skip("coreutils realpath is not installed: ./run resolves --profile with it")
    cwd = PROJECT_ROOT if where == "checkout" else outside_profile.parent
    relative = os.path.relpath(outside_profile, cwd)
    out = _collect([str(RUN), "smoke", "--co", "-p", "no:cacheprovider", "-p", "no:html",
                    "--profile", relative], cwd)
    assert f"comfycheck profile: mine from {outside_profile}" in out, out


def test_plugin_given_twice_is_one_plugin(outside_profile):
    """`-p comfycheck.pytest_plugin` (an older recipe) beside the entry point must not register it twice."""
    out = _collect([sys.executable, "-m", "pytest", "--co", "-p", "no:cacheprovider", "-p", "no:html",
                    "-p", "comfycheck.pytest_plugin", "--profile", str(outside_profile)], PROJECT_ROOT)
    assert "comfycheck profile: mine" in out
