"""Each authentication mode on the embedded proxy: the checks pass behind it with the right credentials, fail with
one line naming the mode when they are missing or wrong, and catch a proxy that forgets to ask (on HTTP or on /ws
alone). The secrets never reach an output."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.load.locust import class_command
from tests.selftest.helpers import assert_fails, red_lines, run_pytest

pytestmark = pytest.mark.selftest
AUTH = "tests/acceptance/test_auth.py"
FOUNDATION = f"{AUTH}::test_public_address_takes_the_profiles_credentials"
HTTP_NONE = f"{AUTH}::test_public_http_refuses_other_credentials[none]"
HTTP_WRONG = f"{AUTH}::test_public_http_refuses_other_credentials[wrong]"
WS_NONE = f"{AUTH}::test_public_websocket_refuses_other_credentials[none]"
SECRET = "cc-selftest-secret-7f3a9b1e5d2c4086"
USER = "cc-selftest-student"


@dataclass(frozen=True)
class Mode:
    name: str
    keys: dict  # the profile's [public] keys
    env: dict  # the environment that holds the secrets
    proxy: dict  # what the embedded proxy is told to ask for (Credentials' fields)
    unset: str  # the variable a missing-credentials run leaves out

    def profile(self, make_profile, audience: str = "operator"):
        return make_profile({"public": {"auth": self.name, "audience": audience, **self.keys}})


MODES = [
    Mode("bearer", {"token_env": "CC_SELFTEST_TOKEN"}, {"CC_SELFTEST_TOKEN": SECRET},
         {"mode": "bearer", "secret": SECRET}, "$CC_SELFTEST_TOKEN"),
    Mode("basic", {"user_env": "CC_SELFTEST_USER", "password_env": "CC_SELFTEST_PASSWORD"},
         {"CC_SELFTEST_USER": USER, "CC_SELFTEST_PASSWORD": SECRET},
         {"mode": "basic", "secret": SECRET, "user": USER}, "$CC_SELFTEST_PASSWORD"),
    Mode("cookie", {"cookie_name": "portal_session", "cookie_env": "CC_SELFTEST_COOKIE"},
         {"CC_SELFTEST_COOKIE": SECRET}, {"mode": "cookie", "secret": SECRET, "name": "portal_session"},
         "$CC_SELFTEST_COOKIE"),
    Mode("query", {"token_env": "CC_SELFTEST_TOKEN"}, {"CC_SELFTEST_TOKEN": SECRET},
         {"mode": "query", "secret": SECRET, "name": "token"}, "$CC_SELFTEST_TOKEN"),
]
IDS = [m.name for m in MODES]


def _secrets(mode: Mode) -> list[str]:
    found = [SECRET]
    if mode.name == "basic":
        found.append(base64.b64encode(f"{USER}:{SECRET}".encode()).decode())
    return found


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_smoke_passes_behind_each_mode_and_no_output_holds_the_secret(proxy_faults, make_profile, tmp_path, mode):
    proxy_faults(auth=mode.proxy)
    report, junit = tmp_path / "report.html", tmp_path / "junit.xml"
    history, prometheus = tmp_path / "history.sqlite", tmp_path / "comfycheck.prom"
    result = run_pytest("-m", "smoke", f"--html={report}", "--self-contained-html", f"--junitxml={junit}",
                        f"--history={history}", f"--prometheus={prometheus}", "-rA",
                        profile=mode.profile(make_profile, "shared"), env=mode.env, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for nodeid in (FOUNDATION, HTTP_NONE, HTTP_WRONG, WS_NONE):
        assert f"PASSED {nodeid}" in out, f"{nodeid} did not pass:\n{out}"
    for path in (report, junit, history, prometheus):
        assert path.is_file(), f"the run wrote no {path.name}"
    _assert_no_secret(mode, out, tmp_path)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_ui_checks_pass_behind_each_mode_a_browser_can_carry(proxy_faults, make_profile, mode):
    proxy_faults(auth=mode.proxy)
    result = run_pytest("tests/ui/test_comfyui_page.py", "-rA", profile=mode.profile(make_profile), env=mode.env,
                        timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    if mode.name == "bearer":
        assert 'SKIPPED' in out and 'public.auth = "bearer" (token $CC_SELFTEST_TOKEN): a browser does not send a ' \
            "bearer token on its own" in out and " passed" not in out.splitlines()[-1], out
    else:
        assert "PASSED tests/ui/test_comfyui_page.py::test_comfyui_run_button_runs_smoke_workflow" in out, out
    _assert_no_secret(mode, out)


def test_a_sign_in_portal_that_redirects_to_its_login_is_a_refusal_and_its_page_works(proxy_faults, make_profile):
    """A cookie portal answers a request without its session with a redirect to its sign-in page, the WebSocket
    upgrade too: every refusal check passes, and the page, carrying the session, works."""
    mode = MODES[2]
    proxy_faults(auth=mode.proxy, portal_redirect=True)
    result = run_pytest(AUTH, "tests/ui/test_comfyui_page.py", "-rA", profile=mode.profile(make_profile, "shared"),
                        env=mode.env, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for nodeid in (HTTP_NONE, HTTP_WRONG, WS_NONE, "tests/ui/test_comfyui_page.py::test_comfyui_run_button_runs"):
        assert f"PASSED {nodeid}" in out, f"{nodeid} did not pass:\n{out}"


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_soak_and_class_run_authenticate_and_keep_the_secret_out(proxy_faults, make_profile, tmp_path, mode):
    proxy_faults(auth=mode.proxy)
    profile = mode.profile(make_profile)
    env = {**os.environ, **mode.env}
    soak = subprocess.run([sys.executable, "-m", "comfycheck.soak", f"--profile={profile}",
                           f"--out={tmp_path / 'soak'}", "--quiet", "--duration=8s", "--canary-every=4s",
                           f"--history={tmp_path / 'history.sqlite'}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env=env)
    said = soak.stdout + soak.stderr
    # authenticated all along: every round up, every canary through (its latency figures are not this test's)
    assert soak.returncode in (0, 1) and "pass  availability: 100.000 %" in said and \
        "pass  canary generations that succeed: 100.0 %" in said and \
        "pass  WebSocket drops" in said, said
    lesson = subprocess.run(class_command(profile, tmp_path / "class", students=2, prompts_each=1, allow_load=True,
                                          history=tmp_path / "history.sqlite"),
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, env=env)
    assert lesson.returncode == 0, lesson.stdout + lesson.stderr
    _assert_no_secret(mode, soak.stdout + soak.stderr + lesson.stdout + lesson.stderr, tmp_path)


def _assert_no_secret(mode: Mode, terminal: str, folder: Path | None = None) -> None:
    """Neither the terminal nor any file the run wrote holds the secret, in any of the forms it travels in."""
    outputs = {"the terminal": terminal.encode()}
    if folder is not None:
        outputs |= {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".toml"}
    assert len(outputs) > 1 or folder is None, f"the run wrote nothing under {folder}"
    for where, data in outputs.items():
        for secret in _secrets(mode):
            assert secret.encode() not in data, f"the {mode.name} secret leaked into {where}"


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_missing_credentials_fail_once_naming_the_mode(proxy_faults, make_profile, mode):
    proxy_faults(auth=mode.proxy)
    env = {k: v for k, v in mode.env.items() if f"${k}" != mode.unset}
    result = run_pytest("-m", "smoke", profile=mode.profile(make_profile), env=env, timeout=240)
    out = result.stdout + result.stderr
    assert_fails(result, FOUNDATION, f'public.auth = "{mode.name}"', f"{mode.unset} is not set")
    assert red_lines(out) == [FOUNDATION], out


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_wrong_credentials_fail_once_naming_the_mode(proxy_faults, make_profile, mode):
    proxy_faults(auth=mode.proxy)
    env = {k: (v if k.endswith("USER") else "cc-selftest-not-the-secret") for k, v in mode.env.items()}
    result = run_pytest("-m", "smoke", profile=mode.profile(make_profile), env=env, timeout=240)
    out = result.stdout + result.stderr
    assert_fails(result, FOUNDATION, f'public.auth = "{mode.name}"',
                 "the values in the environment are not the ones the proxy accepts")
    assert red_lines(out) == [FOUNDATION], out


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_a_proxy_that_asks_for_nothing_fails_the_refusal_checks(proxy_faults, make_profile, mode):
    proxy_faults(auth=mode.proxy, auth_off=True)
    result = run_pytest(AUTH, profile=mode.profile(make_profile), env=mode.env)
    assert_fails(result, HTTP_NONE, f'public.auth = "{mode.name}"', "answered without credentials: /system_stats "
                 "HTTP 200; /api/system_stats HTTP 200", "the proxy lets anyone through")
    assert_fails(result, WS_NONE, "was not refused at /ws opened; /api/ws opened", "HTTP let them through as well",
                 "one cause for both")
    assert "guards HTTP but not that socket" not in result.stdout + result.stderr


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_a_websocket_location_without_auth_fails_the_websocket_check_alone(proxy_faults, make_profile, mode):
    proxy_faults(auth=mode.proxy, ws_auth_off=True)
    result = run_pytest(AUTH, profile=mode.profile(make_profile), env=mode.env)
    out = result.stdout + result.stderr
    assert_fails(result, WS_NONE, f'public.auth = "{mode.name}"', "was not refused at /ws opened; /api/ws opened",
                 "the proxy guards HTTP but not that socket", "apply the same authentication to /ws and /api/ws")
    assert HTTP_NONE not in red_lines(out), out


def test_a_spelling_the_proxy_forgot_to_guard_fails_both_refusal_checks(proxy_faults, make_profile):
    """The rule guards /... and an /api/ location of its own asks for nothing: ComfyUI answers there too."""
    mode = MODES[1]
    proxy_faults(auth=mode.proxy, auth_api_open=True)
    result = run_pytest(AUTH, profile=mode.profile(make_profile), env=mode.env)
    out = result.stdout + result.stderr
    assert_fails(result, HTTP_NONE, "answered without credentials: /api/system_stats HTTP 200")
    assert_fails(result, WS_NONE, "was not refused at /api/ws opened")
    assert "/system_stats HTTP 200;" not in out and "at /ws opened" not in out, "the bare spelling is guarded"


def test_a_shared_deployment_without_auth_fails(make_profile):
    profile = make_profile({"public": {"audience": "shared"}})
    result = run_pytest(HTTP_NONE, profile=profile)
    assert_fails(result, HTTP_NONE, 'public.audience = "shared" and public.auth = "none"',
                 "put authentication in the proxy")


def test_a_secret_in_a_failure_message_is_redacted(make_profile, tmp_path):
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(
        "def test_leaks(profile):\n"
        "    creds = profile.public.credentials\n"
        "    print('secret is', creds.secret, 'url', creds.with_token(profile.public.url))\n"
        "    assert creds.secret == 'something else', f'got {creds.secret}'\n")
    query = MODES[3]
    report = tmp_path / "report.html"
    result = run_pytest("-p", "comfycheck.pytest_plugin", str(leaky), f"--html={report}", "--self-contained-html",
                        profile=query.profile(make_profile), env=query.env)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "secret is ***" in out and "?token=***" in out, out
    assert SECRET not in out, "the secret appears in the terminal output"
    assert SECRET not in report.read_text(), "the secret appears in the HTML report"
