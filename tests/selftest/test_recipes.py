"""The nightly recipes the README gives, run as their schedulers run them (cron's bare environment, systemd's
own checker); what each leaves behind: dated reports, the run in the history, the trend page."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.history import History

pytestmark = pytest.mark.selftest

DEPLOY = PROJECT_ROOT / "deploy"
NIGHTLY = DEPLOY / "nightly.sh"


def _cron_line() -> tuple[list[str], str]:
    lines = [x for x in (DEPLOY / "cron" / "comfycheck.crontab").read_text().splitlines()
             if x.strip() and not x.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 5)
    return fields[:5], fields[5]


@pytest.mark.timing  # its exit status is the smoke checks' and the short soak's: latencies of 15 rounds
@pytest.mark.exclusive
def test_the_cron_line_runs_in_crons_bare_environment_and_leaves_dated_reports(make_profile, tmp_path):
    when, command = _cron_line()
    assert when == ["0", "3", "*", "*", "*"] and "%" not in command, "cron treats % as a newline"
    history = tmp_path / "history.sqlite"
    # the recipe's plumbing is under test, not this host's latency: a p95 of 15 rounds is their slowest one or two,
    # and one round beside a canary generation was 21.45 ms against 20 ms in a fresh-clone CI run
    profile = make_profile({"results": {"history": str(history)},
                            "soak": {"nightly_duration": "15s", "canary_every_s": 5},
                            "targets": {"latency_local_ms": 1000, "latency_proxy_ms": 1000}})
    env_file = tmp_path / "env"
    env_file.write_text(f"COMFYCHECK_REPORTS={tmp_path / 'nightly'}\n")
    # the recipe as installed here: this checkout, a profile with its own history, the smoke checks to stay quick
    command = (command.replace("/opt/comfycheck", str(PROJECT_ROOT)).replace("/etc/comfycheck/env", str(env_file))
               .replace("/etc/comfycheck/production.toml", f"{profile} -m smoke")
               .replace(f"{PROJECT_ROOT}/reports/nightly.log", str(tmp_path / "nightly.log")))
    cron_env = {"HOME": os.environ.get("HOME", "/root"), "LOGNAME": "comfycheck", "PATH": "/usr/bin:/bin",
                "SHELL": "/bin/sh"}
    done = subprocess.run(["/bin/sh", "-c", command], env=cron_env, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "nightly.log").read_text()
    assert done.returncode == 0, log + done.stderr + "".join(
        f"\n--- {f.relative_to(tmp_path)}:\n" + f.read_text()[-4000:]
        for f in sorted((tmp_path / "nightly").glob("*/*.log")))
    (dated,) = [d for d in (tmp_path / "nightly").iterdir() if d.is_dir()]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d_\d{6}", dated.name), dated.name
    for name in ("report.html", "junit.xml", "measurements.json", "pytest.log", "soak.log", "soak/report.html",
                 "soak/samples.sqlite"):
        assert (dated / name).is_file(), name
    assert (tmp_path / "nightly" / "trend.html").is_file()
    assert f"comfycheck nightly {dated.name}: exit 0" in log
    with History(history) as h:
        run, soak = h.runs()
        assert (run.kind, run.verdict) == ("pytest -m smoke", "passed") and run.report == str(dated / "report.html")
        assert (soak.kind, soak.verdict) == ("soak", "passed") and soak.report == str(dated / "soak" / "report.html")


def test_the_nightly_script_refuses_a_missing_profile_by_name(tmp_path):
    done = subprocess.run([str(NIGHTLY), str(tmp_path / "nope.toml")], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COMFYCHECK_REPORTS": str(tmp_path / "r")})
    assert done.returncode == 2 and f"profile {tmp_path / 'nope.toml'}: no such file" in done.stderr
    assert not (tmp_path / "r").exists()


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian: the systemd package)")
    for unit in ("comfycheck-nightly.service", "comfycheck-nightly.timer"):
        text = (DEPLOY / "systemd" / unit).read_text()
        # as installed on this machine: the checkout's path, an account that exists, a profile that exists
        text = (text.replace("/opt/comfycheck", str(PROJECT_ROOT)).replace("User=comfycheck", "User=root")
                .replace("/etc/comfycheck/production.toml", str(PROJECT_ROOT / "profiles" / "local.toml")))
        (tmp_path / unit).write_text(text)
    timer = (tmp_path / "comfycheck-nightly.timer").read_text()
    assert "Persistent=true" in timer and "OnCalendar=*-*-* 03:00:00" in timer
    done = subprocess.run([analyze, "verify", str(tmp_path / "comfycheck-nightly.timer"),
                           str(tmp_path / "comfycheck-nightly.service")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    cal = subprocess.run([analyze, "calendar", "*-*-* 03:00:00"], capture_output=True, text=True, timeout=30)
    assert re.search(r"Next elapse: \w+ \d{4}-\d\d-\d\d 03:00:00", cal.stdout), cal.stdout
    # the checker does catch a broken unit (it is not a check that cannot fail)
    (tmp_path / "broken.timer").write_text(timer.replace("03:00:00", "27:00:00"))
    broken = subprocess.run([analyze, "verify", str(tmp_path / "broken.timer")], capture_output=True, text=True,
                            timeout=60)
    assert broken.returncode != 0 and "Failed to parse calendar specification" in broken.stderr


def test_the_windows_task_calls_the_nightly_script_inside_wsl():
    """Task Scheduler cannot run here; what can be checked is that the task starts the same script, in WSL."""
    text = (DEPLOY / "windows" / "register-nightly-task.cmd").read_text()
    create = re.search(r"schtasks /Create (.*?)\n(.*)", text.replace("^\r\n", "").replace("^\n", ""))
    assert create, text
    line = create.group(0)
    assert "/SC DAILY /ST 03:00" in line and '/RU "%USERNAME%"' in line
    assert '/TR "wsl.exe -d %DISTRO% -- %CHECKOUT%/deploy/nightly.sh %PROFILE%"' in line
    assert os.access(NIGHTLY, os.X_OK), "deploy/nightly.sh must be executable"
