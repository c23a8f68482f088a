"""Load checklist: N consecutive generations, VRAM on ComfyUI's own GPU, against the documented targets.

Locust runs in a subprocess (its gevent monkey-patching must not reach this process); this test reads its
summary.json, records every target and embeds the plots and the summary page in the report.
"""
from __future__ import annotations

import base64
import json
import subprocess

import pytest

from comfycheck.loadrun import NOT_ASSESSED, locust_command, new_report_dir
from comfycheck.profile import PROJECT_ROOT

pytestmark = pytest.mark.load


def test_consecutive_generations_meet_the_targets(profile, deployment, pytestconfig, measure, extras):
    allowed = profile.embedded or profile.allow_load or pytestconfig.getoption("--allow-load")
    if not allowed:
        pytest.skip(f"load run: profile {profile.name!r} does not allow it (allow_load = false); "
                    "pass --allow-load to run it")
    out = new_report_dir()
    cmd = locust_command(profile.path, out, generations=profile.load.generations,
                         time_limit_s=profile.load.time_limit_s, allow_load=True)
    try:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=profile.load.time_limit_s + 2 * profile.load.settle_s + 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the Locust run did not end within its bound; report folder {out}", pytrace=False)
    summary_file = out / "summary.json"
    if not summary_file.is_file():
        pytest.fail(f"Locust wrote no summary (exit {done.returncode}):\n{done.stderr[-2000:]}", pytrace=False)
    summary = json.loads(summary_file.read_text())
    _embed(extras, out, summary)

    measure.info("load run", summary["verdict"], report=str(out.relative_to(PROJECT_ROOT)),
                 source=summary["source"], device=summary["device"], match=summary["device_match"],
                 notes=summary["notes"])
    measure.info("generation wall time (median)", summary["wall_s"]["median"], "s")
    measure.info("client wall time minus ComfyUI's own timestamps (median)", summary["timing_error_ms"]["median"], "ms")
    for row in summary["measurements"]:
        if row["verdict"] == NOT_ASSESSED:
            measure.info(row["name"], row["note"])
    judged = [r for r in summary["measurements"] if r["verdict"] != NOT_ASSESSED]
    for row in sorted(judged, key=lambda r: r["verdict"] == "FAIL"):  # every figure is recorded before a miss fails
        measure(row["key"], row["value"], name=f"{row['name']} (load run)", note=row["note"])
    assert done.returncode == 0, f"Locust exited with {done.returncode} although every target passed:\n{done.stderr[-1500:]}"


def _embed(extras, out, summary) -> None:
    try:
        from pytest_html import extras as html_extras
    except ImportError:
        return
    for name in ("timeline.png", "generations.png"):
        if (out / name).is_file():
            extras.append(html_extras.png(base64.b64encode((out / name).read_bytes()).decode(), name))
    page = (out / "index.html").read_text()
    body = page.split("</style>", 1)[-1].split("<img", 1)[0]  # the table and notes; the plots are embedded above
    extras.append(html_extras.html(f"<div class='comfycheck-load'>{body}</div>"))
