"""The per-user prompt limit on the embedded proxy: a limit at the profile's rate passes and is reported, a proxy
without one fails naming the fix, and the burst never sends more than twice the limit."""
from __future__ import annotations

import json

import pytest

from tests.selftest.helpers import assert_fails, run_pytest

pytestmark = pytest.mark.selftest
RATE = "tests/acceptance/test_rate_limit.py::test_the_proxy_limits_each_users_prompts"


def _burst(tmp_path) -> dict:
    figures = json.loads((tmp_path / "measurements.json").read_text())
    return next(m for m in figures if m["target"] == "prompt_burst_accepted")


def test_a_limit_at_the_profiles_rate_passes_and_is_reported(proxy_faults, make_profile, tmp_path):
    proxy_faults(rate_limit_per_min=10)
    result = run_pytest(RATE, f"--html={tmp_path / 'r.html'}", profile=make_profile(
        {"public": {"rate_limit_per_min": 10}}))
    assert result.returncode == 0, result.stdout + result.stderr
    seen = _burst(tmp_path)
    assert seen["value"] <= 12 and seen["details"]["refused_with"] == 429 and seen["details"]["sent"] <= 21, seen
    assert "s later it took one more" in seen["details"]["spellings"], seen  # refilling at the profile's rate


def test_a_proxy_without_a_limit_fails_and_the_burst_stops_at_twice_the_limit(proxy_faults, make_profile, tmp_path):
    proxy_faults(rate_limit_off=True)
    result = run_pytest(RATE, f"--html={tmp_path / 'r.html'}", profile=make_profile(
        {"public": {"rate_limit_per_min": 10}}))
    assert_fails(result, RATE, "measured 21 requests, target <= 12",
                 "all 21 of a burst of 21 POST /prompt got through: the proxy's limit there, if it has one, is "
                 "above 21", "limit_req_zone")
    assert "limits nothing" not in result.stdout + result.stderr  # it may limit, above the burst
    assert _burst(tmp_path)["details"]["sent"] == 21


def test_a_limit_on_one_spelling_of_prompt_fails_naming_the_other(proxy_faults, make_profile, tmp_path):
    proxy_faults(rate_limit_per_min=10, rate_limit_bare_only=True)
    result = run_pytest(RATE, f"--html={tmp_path / 'r.html'}", profile=make_profile(
        {"public": {"rate_limit_per_min": 10}}))
    assert_fails(result, RATE, "measured 21 requests, target <= 12",
                 "all 21 of a burst of 21 POST /api/prompt got through", "both spellings")
    said = _burst(tmp_path)["details"]["spellings"]
    assert "POST /prompt got through, then the proxy answered HTTP 429 to request" in said, said
    assert "of a burst of at most 21" in said and "(burst of at most" not in said, said


def test_a_limit_far_below_the_profiles_rate_fails_on_its_refill(proxy_faults, make_profile, tmp_path):
    """A proxy that limits each user to 3 prompts a minute where the profile says 10: the burst alone cannot tell
    (what earlier prompts left in the bucket moves it), the one request 9 s after the refusal can."""
    proxy_faults(rate_limit_per_min=3)
    result = run_pytest(RATE, f"--html={tmp_path / 'r.html'}", profile=make_profile(
        {"public": {"rate_limit_per_min": 10}}))
    assert_fails(result, RATE, "s later it still refused one more", "less than two thirds of the profile's",
                 "public.rate_limit_per_min = 10 a minute")
