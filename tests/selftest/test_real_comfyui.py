"""Real ComfyUI is the reference: every layer, and every self-test that needs no stand-in fault switch, runs
unchanged against the embedded stack on real ComfyUI (profiles/local-real.toml) and must pass there.

Skipped, saying what to set, where no real ComfyUI is configured ([stack] comfyui_dir, $COMFYCHECK_COMFYUI_DIR,
or comfyui_dir in ~/.config/comfycheck/config.toml).
"""
from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.polling import wait_until
from comfycheck.stack import EmbeddedStack, StackError, ports, real
from tests.selftest.helpers import free_port, merge, own_ports, red_lines, run_pytest

pytestmark = [pytest.mark.selftest, pytest.mark.real_comfyui]
REAL_PROFILE = PROJECT_ROOT / "profiles" / "local-real.toml"
WITHOUT_FAULT_SWITCHES = ["test_proxy_faults", "test_root_cause", "test_watchdog_faults", "test_bad_input",
                          "test_no_hang", "test_contract", "test_contract_values", "test_soak"]
LEFT_OUT = ("real-ComfyUI runs left out (backend, proxy, TLS, UI, watchdog, load, proxy/TLS/watchdog faults, bad "
            "input, contract, soak)")
# Every layer on real ComfyUI, each run apart so that pytest-xdist spreads them; the checks that judge a speed
# (marked timing) are left to the run below that has the machine to itself.
ONE_FAULT = "test_one_fault_makes_one_red_line"  # the longest file, in two runs
ROOT_CAUSE = "tests/selftest/test_root_cause.py"
LAYERS = {"acceptance": ("acceptance: backend, proxy, TLS, Forge", ["-m", "acceptance and not timing"]),
          "ui": ("UI", ["-m", "ui"]),
          "class": ("the class run", ["-m", "class"]),
          **{name: (f"self-tests {name} (no fault switch)", [f"tests/selftest/{name}.py"])
             for name in WITHOUT_FAULT_SWITCHES if name != "test_root_cause"},
          "test_root_cause-one_fault": ("self-tests: one fault, one red line", [ROOT_CAUSE, "-k", ONE_FAULT]),
          "test_root_cause-others": ("self-tests: root cause first", [ROOT_CAUSE, "-k", f"not {ONE_FAULT}",
                                                                       "-m", "not timing"])}


def real_comfyui(profile) -> tuple[Path, real.RealComfyUI]:
    """local-real.toml (on this worker's own ports under pytest-xdist) and the ComfyUI checkout it runs."""
    if profile.embedded and profile.stack.real:
        pytest.skip("this session already runs on real ComfyUI: its own tests are the real-server run")
    path = ports.worker_profile(REAL_PROFILE)
    real_profile = load_profile(path)
    assert real_profile.stack is not None, f"{REAL_PROFILE} has no [stack] table"
    try:
        return path, real.locate(real_profile.stack.comfyui_dir, real_profile.stack.comfyui_python)
    except real.RealComfyUINotFound as exc:
        pytest.skip(f"{LEFT_OUT}: {exc}")


@pytest.fixture(scope="session")
def real_stack(profile):
    """The embedded stack on real ComfyUI, started once for every layer this process runs on it; its profile."""
    path, found = real_comfyui(profile)
    stack = EmbeddedStack(load_profile(path))
    try:
        info = stack.up()
    except StackError as exc:
        pytest.fail(f"real ComfyUI from {found.directory} ({found.source}) did not start: {exc}", pytrace=False)
    yield path
    if info.owned:
        stack.down()


def assert_passes(result: subprocess.CompletedProcess, what: str) -> None:
    out = result.stdout + result.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    assert result.returncode == 0, f"{what} on real ComfyUI failed (exit {result.returncode}): {summary}\n{out[-6000:]}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


@pytest.mark.parametrize("layer, args", LAYERS.values(), ids=LAYERS.keys())
def test_layer_passes_on_real_comfyui(real_stack, layer, args):
    assert_passes(run_pytest(*args, profile=real_stack, timeout=900, in_subprocess=True), layer)  # as a user runs it


@pytest.mark.exclusive
def test_speeds_on_real_comfyui_taken_with_the_machine_to_themselves(profile, tmp_path):
    """Startup, latency, generation and restart times of real ComfyUI, on a stack of its own started here, once
    nothing else of the suite runs (under pytest-xdist: last, alone): other work on this host would move them."""
    path, _ = real_comfyui(profile)
    alone = tmp_path / "local-real.toml"
    alone.write_text(tomli_w.dumps(merge(tomllib.loads(path.read_text()), own_ports("127.0.0.1"))))
    speeds = ["tests/acceptance", "tests/ui", "tests/load", ROOT_CAUSE]  # the checks, and the self-tests of real
    assert_passes(run_pytest("-m", "timing", *speeds, profile=alone, timeout=900, in_subprocess=True),
                  "the checks that judge a speed")


BACKEND = "tests/acceptance/test_backend.py"
BROKEN_NODE = '''"""comfycheck's self-test: a custom node whose import fails (pulled without its new dependency)."""
import comfycheck_selftest_missing_dependency  # noqa: F401

NODE_CLASS_MAPPINGS = {}
'''


class ServerExited(Exception):
    pass


@pytest.fixture(scope="module")
def half_updated(tmp_path_factory):
    """Real ComfyUI after a half-done update, started on a port of its own: an older comfyui-frontend-package's
    metadata found first on its path (PYTHONPATH, as a user's --user or leftover install is), and a custom node in
    its own temporary custom_nodes folder whose __init__.py raises. Nothing is written into the ComfyUI checkout."""
    real_profile = load_profile(REAL_PROFILE)
    assert real_profile.stack is not None
    try:
        found = real.locate(real_profile.stack.comfyui_dir, real_profile.stack.comfyui_python)
    except real.RealComfyUINotFound as exc:
        pytest.skip(f"the half-done update on real ComfyUI left out: {exc}")
    tmp = tmp_path_factory.mktemp("half-updated")
    real.prepare_base(tmp / "base", [])
    (tmp / "base" / "custom_nodes" / "comfycheck_selftest_broken_node").mkdir()
    (tmp / "base" / "custom_nodes" / "comfycheck_selftest_broken_node" / "__init__.py").write_text(BROKEN_NODE)
    older = tmp / "older" / "comfyui_frontend_package-1.48.7.dist-info"
    older.mkdir(parents=True)
    (older / "METADATA").write_text("Metadata-Version: 2.1\nName: comfyui-frontend-package\nVersion: 1.48.7\n")
    port = free_port()
    log = (tmp / "comfyui.log").open("w")
    proc = subprocess.Popen(found.command("127.0.0.1", port, tmp / "base", [], gpu=False), stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(tmp / "older")})

    def answers() -> bool:
        if proc.poll() is not None:
            raise ServerExited(f"ComfyUI exited ({proc.returncode}): {(tmp / 'comfyui.log').read_text()[-2000:]}")
        return httpx.get(f"http://127.0.0.1:{port}/system_stats", timeout=2).status_code == 200

    try:
        wait_until(answers, timeout=120, interval=0.2, what=f"real ComfyUI on port {port}", fatal=(ServerExited,))
        profile = tmp / "half-updated.toml"
        profile.write_text(tomli_w.dumps({
            "name": "half-updated", "comfyui": {
                "url": f"http://127.0.0.1:{port}", "read_logs": True,
                "required_nodes": ["EmptyImage", "ImageInvert", "SaveImage"]}}))
        yield profile, found
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_a_half_done_update_of_real_comfyui_is_named_as_such(half_updated):
    profile, found = half_updated
    result = run_pytest("-m", "smoke", BACKEND, profile=profile)
    out = result.stdout + result.stderr
    packages, nodes = (f"{BACKEND}::test_comfyui_packages_meet_its_requirements",
                       f"{BACKEND}::test_required_custom_nodes_present")
    assert red_lines(out) == [packages, nodes], out
    for phrase in ("comfyui-frontend-package 1.48.7 installed, 1.49.6 required: a half-done update",
                   f"run {found.python} -m pip install -r {found.directory}/requirements.txt (the command ComfyUI "
                   "logs)",
                   "every node class the profile requires is offered",
                   "custom nodes that failed to import (ComfyUI's log): comfycheck_selftest_broken_node "
                   "(ModuleNotFoundError: No module named 'comfycheck_selftest_missing_dependency', at __init__.py, "
                   "line 2)"):
        assert phrase in out, f"{phrase!r} not said:\n{out}"
