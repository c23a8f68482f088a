"""Bad input: a clear error naming the file, key or URL, a non-zero exit, and no hang."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from tests.selftest.helpers import free_port, run_pytest

pytestmark = pytest.mark.selftest
BACKEND = "tests/acceptance/test_backend.py"


def test_malformed_profile_stops_the_run_before_any_test(make_profile):
    path = make_profile(raw='name = "x"\n[comfyui]\nurl = "http://127.0.0.1:1"\ntimeout_s = "slow"\nbogus = 1\n')
    result = run_pytest(BACKEND, profile=path)
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert str(path) in result.stderr
    assert "comfyui.timeout_s: expected a number, got 'slow'" in result.stderr
    assert "comfyui.bogus: unknown key" in result.stderr
    assert "passed" not in result.stdout and "failed" not in result.stdout


def test_missing_profile_file_is_named(tmp_path):
    result = run_pytest(BACKEND, profile=tmp_path / "nope.toml")
    assert result.returncode == 4 and f"profile {tmp_path / 'nope.toml'}: no such file" in result.stderr


def test_unknown_workflow_file_is_named(deployment, make_profile):
    profile = make_profile({"comfyui": {"smoke_workflow": "no_such_workflow.json"}})
    result = run_pytest(f"{BACKEND}::test_smoke_generation_end_to_end", profile=profile)
    assert result.returncode == 1
    assert "fixtures/workflows/no_such_workflow.json: no such file" in result.stdout


def test_invalid_workflow_json_is_named(deployment, make_profile, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": {"class_type": "EmptyImage", "inputs": {')
    profile = make_profile({"comfyui": {"smoke_workflow": str(broken)}})
    result = run_pytest(f"{BACKEND}::test_smoke_generation_end_to_end", profile=profile)
    assert result.returncode == 1
    assert f"workflow {broken}: invalid JSON at line 1" in result.stdout


def test_unreachable_backend_fails_fast_naming_the_url(make_profile):
    url = f"http://127.0.0.1:{free_port()}"
    profile = make_profile({"comfyui": {"url": url}, "stack": {"embedded": False}})
    t0 = time.monotonic()
    result = run_pytest(BACKEND, "-m", "smoke", profile=profile, timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result.stdout
    assert f"cannot reach ComfyUI at {url}/system_stats" in result.stdout
    assert "passed" not in result.stdout.splitlines()[-1]
    assert elapsed < 20, f"an unreachable backend took {elapsed:.1f} s to report"


def test_stack_cli_rejects_a_bad_profile(make_profile):
    path = make_profile(raw="name = 3\n")
    result = subprocess.run([sys.executable, "-m", "comfycheck.stack", "status", "--profile", str(path)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "name: expected a string, got 3" in result.stderr
