"""A half-done update, read as real ComfyUI tells it: the packages it lists, the log it serves, and how the
history says what changed. No stack needed: the log is one captured from real ComfyUI 0.33.0, started with an
older frontend package first on its path and a custom node whose import fails."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from comfycheck import hints
from comfycheck.comfy import packages
from comfycheck.comfy.startup_log import parse
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.history import History
from comfycheck.history.compare import compare, version_changes
from comfycheck.history.store import now_iso
from comfycheck.judge import install
from comfycheck.standin import DATA, startup
from tests.selftest.helpers import recording

pytestmark = pytest.mark.selftest
HALF_UPDATE_LOG = PROJECT_ROOT / "fixtures" / "recordings" / "internal_logs_half_update.json"
RECORD_START = re.compile(  # "<time> - <coloured level tag> <message>"
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+ - \x1b\[(?:1m\x1b\[)?\d\dm\[(INFO|WARNING|ERROR)\]\x1b\[0m ")


def real_log() -> str:
    return json.loads(HALF_UPDATE_LOG.read_text())


def test_the_real_log_names_the_node_its_error_and_comfyuis_own_command():
    log = parse(real_log())
    assert log.holds_startup
    (failed,) = log.failed_custom_nodes
    assert (failed.node, failed.error, failed.where) == (
        "comfycheck_broken_node", "ModuleNotFoundError: No module named 'comfycheck_missing_dependency'",
        "__init__.py, line 1")
    assert log.requirements_command == "/opt/comfy/venv/bin/python -m pip install -r /opt/comfy/requirements.txt"
    assert log.failed_builtin == []


def test_a_log_that_no_longer_holds_the_start_concludes_nothing():
    tail = "".join(line for line in real_log().splitlines(keepends=True)[-3:])
    read = install.LogRead(parse(tail))
    assert "no longer reaches back to its start" in (read.unknown() or "")
    problem = install.custom_nodes_problem(load_profile(None), ["TextEncodeQwenImageEditPlus"], read)
    assert problem and "node classes missing on the server: TextEncodeQwenImageEditPlus" in problem
    assert "no longer reaches back" in problem and "journalctl" in problem


def test_the_stand_ins_log_is_written_as_real_comfyui_writes_it():
    faulty = startup.startup_log(dt.datetime(2026, 12, 2, 1, 2, 3, 456789), "1.49.6", stale_frontend="1.48.7",
                                 broken_custom_node="ComfyUI-Extra")
    for raw in (real_log(), faulty):
        starts = [line for line in raw.splitlines() if re.match(r"^\d{4}-", line)]
        assert starts and all(RECORD_START.match(line) for line in starts), [
            line for line in starts if not RECORD_START.match(line)][:3]
    ours, real = parse(faulty), parse(real_log())
    (failed,) = ours.failed_custom_nodes
    assert failed.error.startswith("ModuleNotFoundError: No module named ") and failed.where == "__init__.py, line 1"
    assert real.failed_custom_nodes[0].error.startswith("ModuleNotFoundError: No module named ")
    assert ours.requirements_command == "/srv/venv/bin/python -m pip install -r /srv/ComfyUI/requirements.txt"
    healthy = parse(startup.startup_log(dt.datetime(2026, 12, 2), "1.49.6", stale_frontend="", broken_custom_node=""))
    assert healthy.holds_startup and not healthy.failed_custom_nodes and healthy.requirements_command is None


def test_the_stand_in_lists_its_packages_as_the_real_server_did():
    real = json.loads(recording("system_stats.json").read_text())["system"]["comfy_package_versions"]
    ours = json.loads((DATA / "system_stats.json").read_text())["system"]["comfy_package_versions"]
    assert startup.package_versions(ours, "") == real
    stale = startup.package_versions(ours, "1.48.7")
    listed = packages.listed({"system": {"comfy_package_versions": stale}}) or []
    assert [p.describe() for p in listed if p.below_required] == [
        "comfyui-frontend-package 1.48.7 installed, 1.49.6 required"]


@pytest.mark.parametrize("installed, required, below", [
    ("1.48.7", "1.49.6", True), ("1.49.6", "1.49.6", False), ("1.50.0", "1.49.6", False),
    (None, "0.5.10", True), ("1.49.6", None, False), ("a-dev-build", "1.49.6", False), ("1.49.10", "1.49.9", False)])
def test_a_package_is_below_its_requirement_as_comfyui_compares_them(installed, required, below):
    assert packages.Package("comfyui-frontend-package", installed, required).below_required is below


def test_an_older_comfyui_without_the_package_list_is_not_judged_by_it():
    profile = load_profile(None)
    assert install.packages_judged(profile, {"system": {"required_frontend_version": "1.20.0"}}) is None
    assert packages.required_frontend({"system": {"required_frontend_version": "1.20.0"}}) == "1.20.0"
    assert install.served_frontend_problem("1.19.2", "1.20.0")
    assert install.served_frontend_problem("1.21.0", "1.20.0") is None
    assert install.served_frontend_problem(None, "1.20.0") is None


def test_the_fix_is_written_for_the_venv_the_profile_names():
    assert "run /opt/comfy/venv/bin/python -m pip install -r requirements.txt" in \
        hints.install_comfyui_requirements("/opt/comfy/venv/").replace("folder run", "run")
    assert "C:\\ComfyUI\\venv\\Scripts\\python.exe -m pip" in hints.install_comfyui_requirements("C:\\ComfyUI\\venv")
    assert "set [comfyui] venv" in hints.install_comfyui_requirements("")
    logged = "/x/bin/python -m pip install -r /x/requirements.txt"
    assert hints.install_comfyui_requirements("/other", logged).startswith(f"run {logged} (the command ComfyUI logs)")


def test_version_changes_read_old_runs_and_name_custom_nodes():
    old = {"comfyui": "0.33.0", "frontend": "1.49.6", "custom_nodes": "A, B"}
    new = {"comfyui": "0.34.1", "comfyui-frontend-package": "1.48.7", "custom_nodes": "B, A (failed to import), C"}
    assert version_changes(old, new) == ["ComfyUI 0.33.0 -> 0.34.1", "comfyui-frontend-package 1.49.6 -> 1.48.7",
                                         "custom nodes A fails to import, +C"]
    assert version_changes({"custom_nodes": "A, B"}, {"custom_nodes": "none"}) == ["custom nodes -A, -B"]


def test_a_failing_run_is_compared_with_the_last_passing_one_of_any_kind(tmp_path):
    seen = {"comfyui": "0.33.0", "comfyui-frontend-package": "1.49.6"}
    with History(tmp_path / "h.sqlite") as h:
        good = h.append("prod", "pytest -m smoke", started=now_iso(), verdict="passed", outcomes={}, versions=seen,
                        measurements=[])
        h.append("prod", "pytest", started=now_iso(), verdict="failed", outcomes={}, versions=seen, measurements=[])
        h.append("other", "pytest", started=now_iso(), verdict="passed", outcomes={}, versions={}, measurements=[])
        now = h.begin("prod", "pytest")
        same = compare(h, profile="prod", kind="pytest", run_id=now, measurements=[], checks={}, versions=seen,
                       failed=True)
        assert same.changed_since_good() == (f"no version changed since run {h.runs('prod')[0].label} "
                                             "(pytest -m smoke, passed): not an update")
        moved = compare(h, profile="prod", kind="pytest", run_id=now, measurements=[], checks={}, failed=True,
                        versions={**seen, "comfyui-frontend-package": "1.48.7"})
        assert moved.changed_since_good().startswith(f"comfyui-frontend-package 1.49.6 -> 1.48.7 since run #{good} ")
        assert moved.lines()[0] == moved.changed_since_good()
        passing = compare(h, profile="prod", kind="pytest", run_id=now, measurements=[], checks={}, versions=seen)
        assert passing.changed_since_good() == "" and passing.good is None
