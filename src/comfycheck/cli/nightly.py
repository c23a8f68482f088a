"""`comfycheck nightly --profile P [pytest args]`: the nightly job (cron, the systemd timer and Windows' Task
Scheduler call it, through deploy/nightly.sh in a checkout).

The checklist against the profile (default `-m "not selftest"`), its reports in a dated folder; then a short soak
(the profile's [soak] nightly_duration, 10 min unless it says otherwise or "off") in that folder's soak/, kept in the
history as a run of kind "soak"; then the trend page. Leaves <reports>/<YYYY-MM-DD_HHMMSS>/{report.html, junit.xml,
measurements.json, pytest.log, soak/, soak.log} and <reports>/trend.html, where <reports> is $COMFYCHECK_REPORTS,
else the results folder's nightly/. Dated folders older than $COMFYCHECK_KEEP_DAYS (90) are removed; the history
keeps every run. Exit status: the checks' (0 all passed, 1 some failed, 2+ could not run), else the soak's.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .. import ComfycheckError, exitcodes
from ..config.paths import REPORTS_DIR
from ..config.profile import load_profile
from .jobs import pytest_command, run_pytest

DATED = "%Y-%m-%d_%H%M%S"


def nightly(profile_arg: str | None, rest: list[str]) -> int:
    try:
        profile = load_profile(profile_arg)  # a bad profile stops the job before any folder is made
    except ComfycheckError as exc:
        print(f"comfycheck nightly: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    reports = Path(os.environ.get("COMFYCHECK_REPORTS") or REPORTS_DIR / "nightly").absolute()
    stamp = dt.datetime.now().strftime(DATED)
    out = reports / stamp
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        print(f"comfycheck nightly: cannot make the report folder {out}: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    checks = rest or ["-m", "not selftest"]
    extra = [f"--prometheus={os.environ['COMFYCHECK_PROMETHEUS']}"] if os.environ.get("COMFYCHECK_PROMETHEUS") else []
    cmd = pytest_command("check", str(profile.path), ["-n", "0", f"--html={out / 'report.html'}",
                         "--self-contained-html", f"--junitxml={out / 'junit.xml'}", *extra], selection=checks)
    rc = run_pytest(cmd, out / "pytest.log")

    soak = [sys.executable, "-m", "comfycheck.soak", "--nightly", "--profile", str(profile.path),
            "--out", str(out / "soak"), "--quiet"]
    with open(out / "soak.log", "w") as log:
        soak_rc = subprocess.run(soak, stdout=log, stderr=subprocess.STDOUT).returncode
    rc = rc or soak_rc

    trend = [sys.executable, "-m", "comfycheck.history", "trend", "--profile", str(profile.path),
             "--out", str(reports / "trend.html")]
    with open(out / "pytest.log", "a") as log:
        if subprocess.run(trend, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            print(f"comfycheck nightly: no trend page (see {out / 'pytest.log'})", file=sys.stderr)
    _prune(reports, float(os.environ.get("COMFYCHECK_KEEP_DAYS") or 90))
    print(f"comfycheck nightly {stamp}: exit {rc}; report {out / 'report.html'}; soak {out / 'soak'} "
          f"(exit {soak_rc}); trend {reports / 'trend.html'}")
    return rc


def _prune(reports: Path, keep_days: float) -> None:
    cutoff = time.time() - keep_days * 86400
    for folder in reports.iterdir():
        if not folder.is_dir():
            continue
        try:
            dt.datetime.strptime(folder.name, DATED)
        except ValueError:
            continue  # not one of the job's dated folders
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
