"""Real ComfyUI is the reference: every layer, and every self-test that needs no stand-in fault switch, runs
unchanged against the embedded stack on real ComfyUI (profiles/local-real.toml) and must pass there.

Skipped, saying what to set, where no real ComfyUI is configured ([stack] comfyui_dir, $COMFYCHECK_COMFYUI_DIR,
or comfyui_dir in ~/.config/comfycheck/config.toml).
"""
from __future__ import annotations

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.stack import EmbeddedStack, StackError, real
from tests.selftest.helpers import run_pytest

pytestmark = [pytest.mark.selftest, pytest.mark.real_comfyui]
REAL_PROFILE = PROJECT_ROOT / "profiles" / "local-real.toml"
WITHOUT_FAULT_SWITCHES = [f"tests/selftest/{name}.py" for name in (
    "test_proxy_faults", "test_root_cause", "test_watchdog_faults", "test_bad_input", "test_no_hang", "test_contract",
    "test_contract_values", "test_soak")]


@pytest.fixture(scope="module")
def real_stack(profile):
    if profile.embedded and profile.stack.real:
        pytest.skip("this session already runs on real ComfyUI: its own tests are the real-server run")
    real_profile = load_profile(REAL_PROFILE)
    try:
        assert real_profile.stack is not None, f"{REAL_PROFILE} has no [stack] table"
        found = real.locate(real_profile.stack.comfyui_dir, real_profile.stack.comfyui_python)
    except real.RealComfyUINotFound as exc:
        pytest.skip(f"real-ComfyUI runs left out (backend, proxy, TLS, UI, watchdog, load, proxy/TLS/watchdog "
                    f"faults, bad input, contract, soak): {exc}")
    stack = EmbeddedStack(real_profile)
    try:
        info = stack.up()  # once for the module: each run below reuses it
    except StackError as exc:
        pytest.fail(f"real ComfyUI from {found.directory} ({found.source}) did not start: {exc}", pytrace=False)
    yield info
    if info.owned:
        stack.down()


@pytest.mark.parametrize("layer, args", [
    ("acceptance: backend, proxy, TLS, Forge, watchdog", ["-m", "acceptance"]),
    ("UI", ["-m", "ui"]),
    ("load", ["-m", "load"]),
    ("self-tests that need no fault switch", WITHOUT_FAULT_SWITCHES),
], ids=["acceptance", "ui", "load", "selftests"])
def test_layer_passes_on_real_comfyui(real_stack, layer, args):
    result = run_pytest(*args, profile=REAL_PROFILE, timeout=900)
    out = result.stdout + result.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    assert result.returncode == 0, (f"{layer} on real ComfyUI failed (exit {result.returncode}): {summary}\n"
                                    f"{out[-6000:]}")
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
