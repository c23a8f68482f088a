"""Class checklist: the profile's class of students on the one GPU at once, each prompt as its student lives it.

Locust runs in a subprocess (loadtests/classroom.py); this test reads the run's summary.json, records its
Measurements as the run judged them and embeds its timeline in the report."""
from __future__ import annotations

import base64
import html
import subprocess

import pytest

from comfycheck.classrun.report import SUMMARY_JSON, TIMELINE_PNG, ClassSummary, class_summary_html
from comfycheck.config.paths import PROJECT_ROOT, new_report_dir, shown
from comfycheck.load.locust import class_command

pytestmark = [pytest.mark.load, getattr(pytest.mark, "class")]


def test_the_class_gets_its_results_within_the_accepted_wait(profile, deployment, pytestconfig, measure, extras):
    if not (profile.embedded or profile.allow_load or pytestconfig.getoption("--allow-load")):
        pytest.skip(f"class run: profile {profile.name!r} does not allow load runs (allow_load = false); "
                    "pass --allow-load to run it")
    out = new_report_dir("class")
    cmd = class_command(profile.path, out, allow_load=True, keep=False)
    try:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=profile.classroom.time_limit_s + 120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the class run did not end within its bound; report folder {out}", pytrace=False)
    if not (out / SUMMARY_JSON).is_file():
        pytest.fail(f"the class run wrote no summary (exit {done.returncode}):\n{done.stderr[-2000:]}",
                    pytrace=False)
    summary = ClassSummary.read(out / SUMMARY_JSON)
    try:
        from pytest_html import extras as html_extras
    except ImportError:
        pass
    else:
        if (out / TIMELINE_PNG).is_file():
            extras.append(html_extras.png(base64.b64encode((out / TIMELINE_PNG).read_bytes()).decode(), TIMELINE_PNG))
        extras.append(html_extras.html(f"<div class='comfycheck-class'>{class_summary_html(summary)}</div>"))
    measure.info("class run", summary.verdict, report=shown(out),
                 capacity=html.unescape(summary.capacity))
    with measure.together():
        for m in summary.measurements:
            measure.record(m)
    assert summary.prompts_ok == summary.prompts_requested, (
        f"{summary.prompts_ok} of {summary.prompts_requested} prompts came back; see {out}/index.html")
    assert done.returncode == 0, f"the class run exited with {done.returncode}:\n{done.stderr[-1500:]}"
