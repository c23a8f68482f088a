"""Load checklist: N consecutive generations, VRAM on ComfyUI's own GPU, against the documented targets.

Locust runs in a subprocess (its gevent monkey-patching must not reach this process); this test reads its
summary.json, records its Measurements as they are (the run judged them) and embeds its plots in the report.
"""
from __future__ import annotations

import base64
import html
import subprocess

import pytest

from comfycheck.config.paths import PROJECT_ROOT, new_report_dir, shown
from comfycheck.load.judge import LoadSummary
from comfycheck.load.locust import locust_command
from comfycheck.load.report import PLOTS, SUMMARY_JSON, load_summary_html

pytestmark = [pytest.mark.load, pytest.mark.timing]


def test_consecutive_generations_meet_the_targets(profile, deployment, pytestconfig, measure, extras):
    allowed = profile.embedded or profile.allow_load or pytestconfig.getoption("--allow-load")
    if not allowed:
        pytest.skip(f"load run: profile {profile.name!r} does not allow it (allow_load = false); "
                    "pass --allow-load to run it")
    out = new_report_dir("load")
    cmd = locust_command(profile.path, out, generations=profile.load.generations,
                         time_limit_s=profile.load.time_limit_s, allow_load=True, keep=False)
    try:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=profile.load.time_limit_s + 2 * profile.load.settle_s + 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the Locust run did not end within its bound; report folder {out}", pytrace=False)
    summary_file = out / SUMMARY_JSON
    if not summary_file.is_file():
        pytest.fail(f"Locust wrote no summary (exit {done.returncode}):\n{done.stderr[-2000:]}", pytrace=False)
    summary = LoadSummary.read(summary_file)
    _embed(extras, out, summary)

    measure.info("load run", summary.verdict, report=shown(out),
                 source=summary.source, device=summary.device, match=summary.device_match, notes=summary.notes)
    measure.info("generation wall time (median)", summary.wall_s.median, "s")
    measure.info("client wall time minus ComfyUI's own timestamps (median)", summary.timing_error_ms.median, "ms")
    with measure.together():
        for m in summary.measurements:
            measure.record(m)
    assert done.returncode == 0, (f"Locust exited with {done.returncode} although every target passed:\n"
                                  f"{done.stderr[-1500:]}")


def _embed(extras, out, summary: LoadSummary) -> None:
    try:
        from pytest_html import extras as html_extras
    except ImportError:
        return
    for name in PLOTS:
        if (out / name).is_file():
            extras.append(html_extras.png(base64.b64encode((out / name).read_bytes()).decode(), name))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.notes)
    extras.append(html_extras.html(f"<div class='comfycheck-load'>{load_summary_html(summary)}<ul>{notes}</ul></div>"))
