"""After an update: each half-done update switched on in the stand-in is one red line that names it and its fix,
the checks it breaks are reported as blocked by it, and a failing run says what changed since the last good one."""
from __future__ import annotations

import html

import pytest

from tests.selftest.helpers import assert_fails, blocked_lines, red_lines, run_pytest
from tests.ui import test_comfyui_page as page

pytestmark = pytest.mark.selftest
BACKEND = "tests/acceptance/test_backend.py"
PACKAGES = f"{BACKEND}::test_comfyui_packages_meet_its_requirements"
NODES = f"{BACKEND}::test_required_custom_nodes_present"
PAGE = "tests/ui/test_comfyui_page.py"
SERVED = f"{PAGE}::test_comfyui_page_serves_the_required_frontend[chromium]"
BASELINE = f"{PAGE}::test_comfyui_page_matches_baseline[chromium]"
LOOKS_OLDER = "body { filter: invert(1) hue-rotate(90deg) }"  # the older frontend looks different from the baseline


def test_stale_frontend_package_is_one_red_line_with_comfyuis_own_fix(fault_switch):
    fault_switch.set(stale_frontend="1.48.7")
    result = run_pytest("-m", "smoke")
    out = result.stdout + result.stderr
    assert_fails(result, PACKAGES, "ComfyUI's own packages below the version it requires: measured 1 packages",
                 "comfyui-frontend-package 1.48.7 installed, 1.49.6 required: a half-done update",
                 "run /srv/venv/bin/python -m pip install -r /srv/ComfyUI/requirements.txt (the command ComfyUI "
                 "logs), then restart ComfyUI")
    assert red_lines(out) == [PACKAGES], out


def test_stale_frontend_blocks_the_page_checks_it_breaks_and_never_advises_a_new_baseline(fault_switch):
    fault_switch.set(stale_frontend="1.48.7", user_css=LOOKS_OLDER)
    result = run_pytest(PACKAGES, PAGE, timeout=240)
    out = result.stdout + result.stderr
    assert red_lines(out) == [PACKAGES], out
    blocked = "\n".join(blocked_lines(out))
    for check in (page.test_comfyui_page_serves_the_required_frontend, page.test_comfyui_page_matches_baseline):
        assert f"{PAGE}:{check.__code__.co_firstlineno}: blocked" in blocked, out
    assert "needs 'ComfyUI's own packages are at the versions its requirements.txt requires'" in blocked, out
    assert "--update-baselines" not in out, out


def test_the_page_alone_names_the_frontend_it_serves(fault_switch):
    fault_switch.set(stale_frontend="1.48.7", user_css=LOOKS_OLDER)
    result = run_pytest(PAGE, timeout=240)
    out = result.stdout + result.stderr
    assert_fails(result, SERVED, "the page serves frontend 1.48.7, ComfyUI requires 1.49.6",
                 "a half-done update left the older frontend installed",
                 "run /srv/venv/bin/python -m pip install -r /srv/ComfyUI/requirements.txt (the command ComfyUI logs)")
    assert red_lines(out) == [SERVED], out
    baseline = page.test_comfyui_page_matches_baseline.__code__.co_firstlineno
    assert any(f"{PAGE}:{baseline}: blocked" in line for line in blocked_lines(out)), out
    assert "--update-baselines" not in out, out


def test_custom_node_that_failed_to_import_is_named_with_its_error(fault_switch):
    fault_switch.set(broken_custom_node="ComfyUI-QwenImageWanBridge", missing_node="TextEncodeQwenImageEditPlus")
    result = run_pytest("-m", "smoke")
    out = result.stdout + result.stderr
    assert_fails(result, NODES, "node classes missing on the server: TextEncodeQwenImageEditPlus",
                 "custom nodes that failed to import (ComfyUI's log): ComfyUI-QwenImageWanBridge (ModuleNotFoundError: "
                 "No module named 'comfyui_qwenimagewanbridge_dependency', at __init__.py, line 1)",
                 "pip install -r custom_nodes/<node>/requirements.txt")
    assert red_lines(out) == [NODES], out


def test_a_custom_node_that_failed_to_import_is_red_even_with_every_class_there(fault_switch):
    fault_switch.set(broken_custom_node="ComfyUI-Extra")
    assert_fails(run_pytest(NODES), NODES, "every node class the profile requires is offered",
                 "ComfyUI-Extra (ModuleNotFoundError")


def test_where_the_log_may_not_be_read_the_message_says_where_to_look(fault_switch, make_profile):
    fault_switch.set(broken_custom_node="ComfyUI-QwenImageWanBridge", missing_node="TextEncodeQwenImageEditPlus")
    result = run_pytest(NODES, profile=make_profile({"comfyui": {"read_logs": False}}))
    assert_fails(result, NODES, "node classes missing on the server: TextEncodeQwenImageEditPlus",
                 "([comfyui] read_logs = false)", "'Cannot import ... module for custom nodes'", "journalctl")
    assert "ModuleNotFoundError" not in result.stdout, result.stdout


def test_a_failing_run_says_what_changed_since_the_last_passing_one(fault_switch, tmp_path):
    history = f"--history={tmp_path / 'history.sqlite'}"
    good = run_pytest(PACKAGES, NODES, history)
    assert good.returncode == 0, good.stdout + good.stderr
    fault_switch.set(stale_frontend="1.48.7", broken_custom_node="ComfyUI-Extra")
    report = tmp_path / "report.html"
    bad = run_pytest("-m", "smoke", history, f"--html={report}", "--self-contained-html")
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1, out
    since = "comfyui-frontend-package 1.49.6 -> 1.48.7, custom nodes +ComfyUI-Extra (failed to import) since run #1"
    assert f"comfycheck: {since}" in out, out
    assert "(pytest tests/acceptance/test_backend.py::test_comfyui_packages_meet_its_requirements" in out, out
    assert since in html.unescape(report.read_text()), "the HTML report's headline does not say what changed"
