"""How the class arrives, on the stand-in: a burst submits everything at once, a ramp spreads the students'
arrivals over its length; either way exactly students x prompts each come back and the run stops by itself."""
from __future__ import annotations

import subprocess

import pytest

from comfycheck.classrun import records as raw
from comfycheck.classrun.arrivals import arrival_times
from comfycheck.classrun.report import SUMMARY_JSON, ClassSummary
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.settings import ClassSettings
from comfycheck.load.locust import class_command

pytestmark = pytest.mark.selftest


def first_submits(tmp_path, profile, *args: str) -> tuple[ClassSummary, list[float]]:
    out = tmp_path / "class"
    done = subprocess.run(class_command(profile.path, out, allow_load=True, keep=False) + list(args), cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    recs = raw.read(out / raw.PROMPTS_JSONL)
    summary = ClassSummary.read(out / SUMMARY_JSON)
    assert len(recs) == summary.prompts_requested == summary.prompts_ok, recs
    return summary, sorted(r.submitted_at for r in recs if r.seq == 1 and r.submitted_at is not None)


def test_a_burst_submits_every_students_first_prompt_at_once(quick_steps, profile, tmp_path):
    summary, starts = first_submits(tmp_path, profile, "--students", "4", "--prompts-each", "2")
    assert summary.shape == "burst" and summary.prompts_requested == 8
    assert starts[-1] - starts[0] < 1.0, starts


def test_a_ramp_spreads_the_students_over_its_length(quick_steps, profile, tmp_path):
    summary, starts = first_submits(tmp_path, profile, "--students", "4", "--prompts-each", "1", "--shape", "ramp",
                                    "--ramp-s", "3")
    assert summary.shape == "ramp"
    assert 1.5 <= starts[-1] - starts[0] <= 4.0, starts  # arrivals at 0, 0.75, 1.5, 2.25 s


def test_a_rate_sends_its_prompts_as_they_arrive(quick_steps, profile, tmp_path):
    out = tmp_path / "class"
    cmd = class_command(profile.path, out, allow_load=True, keep=False) + [
        "--shape", "rate", "--rate-per-min", "60", "--duration-s", "6", "--students", "3"]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    recs = sorted(raw.read(out / raw.PROMPTS_JSONL), key=lambda r: r.arrived_at or 0)
    summary = ClassSummary.read(out / SUMMARY_JSON)
    assert len(recs) == summary.prompts_requested == 6 and all(r.arrived_at for r in recs), recs
    arrived = [r.arrived_at or 0.0 for r in recs]
    planned = arrival_times(ClassSettings(shape="rate", rate_per_min=60, duration_s=6, students=3))
    late = [abs((a - arrived[0]) - p) for a, p in zip(arrived, planned, strict=True)]
    assert max(late) < 0.5, (arrived, planned)  # each prompt arrived when the seeded Poisson process said
    assert "6 prompts arriving at 60 a minute (Poisson, seed 1)" in summary.arrivals
    assert "arrivals at 60 a minute keep it" in summary.capacity
