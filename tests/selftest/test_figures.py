"""Figures a reader sees in the report: named and in one unit, as the server reports them."""
from __future__ import annotations

import pytest

from tests.selftest.helpers import measured, run_pytest

pytestmark = pytest.mark.selftest
BACKEND = "tests/acceptance/test_backend.py"
PROXY = "tests/acceptance/test_proxy.py"


def _measurements(tmp_path, *args) -> dict[str, dict]:
    report = tmp_path / "report.html"
    result = run_pytest(*args, f"--html={report}", "--self-contained-html")
    assert result.returncode == 0, result.stdout + result.stderr
    return measured(tmp_path)


def test_a_cpu_device_is_named_by_its_type(fault_switch, tmp_path):
    fault_switch.set(cpu_only=True)
    found = _measurements(tmp_path, f"{BACKEND}::test_system_stats_reports_versions_and_devices")
    assert "device cpu" in found and "device None" not in found, sorted(found)


def test_upload_limit_is_shown_in_the_unit_the_limit_is_set_in(deployment, profile, tmp_path):
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no proxy")
    found = _measurements(tmp_path, f"{PROXY}::test_proxy_accepts_the_profile_upload_limit")
    limit = found["proxy upload limit"]
    assert limit["unit"] == "MiB" and abs(limit["value"] - profile.public.upload_limit_mib) < 0.01, limit
