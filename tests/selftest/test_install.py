"""comfycheck as an operator installs it: a wheel built from this checkout, in a fresh virtual environment outside
it, run from an empty folder; the smoke-only install's size; and the pytest plugin that stays out of other
projects' runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from comfycheck import exitcodes
from comfycheck.config.paths import PROJECT_ROOT
from tests.selftest.helpers import merge, own_ports

pytestmark = pytest.mark.selftest
CORE_LIMIT_MB = 150  # issue 35: a smoke check against a real deployment, without the extras


def _uv() -> str:
    """uv as ./run finds it: $COMFYCHECK_UV, the PATH, the checkout's venv."""
    for found in (os.environ.get("COMFYCHECK_UV"), shutil.which("uv"), str(PROJECT_ROOT / ".venv" / "bin" / "uv")):
        if found and os.access(found, os.X_OK):
            return found
    pytest.skip("no uv here ($COMFYCHECK_UV, PATH, .venv/bin/uv): the wheel is built and installed with it")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from this checkout as `uv build` builds it (through its sdist)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([_uv(), "build", "--offline", "--quiet", "--out-dir", str(out), str(PROJECT_ROOT)],
                          capture_output=True, text=True, timeout=300)
    _offline(done, "uv build")
    (found,) = out.glob("comfycheck-*.whl")
    return found


def _venv(where: Path, requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    done = subprocess.run([_uv(), "pip", "install", "--offline", "--quiet", "--python", str(where / "bin" / "python"),
                           "-c", str(PROJECT_ROOT / "constraints.txt"), requirement],
                          capture_output=True, text=True, timeout=600)
    _offline(done, f"installing {requirement}")
    return where / "bin"


def _offline(done: subprocess.CompletedProcess, what: str) -> None:
    """Tests reach no network: uv builds and installs from its cache, which ./run's set-up filled."""
    out = done.stdout + done.stderr
    if done.returncode != 0 and "offline" in out.lower():
        pytest.skip(f"{what}: uv's cache lacks a package and this test reaches no network ({out.strip()[:300]})")
    assert done.returncode == 0, f"{what} failed:\n{out}"


def _user_env(home: Path) -> dict:
    """A user of the installed tool: their own home, none of this checkout's environment."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "COMFYCHECK_UV")
    return {**{k: v for k, v in os.environ.items() if k in keep}, "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state")}


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def test_the_wheel_carries_the_suite_and_its_configuration(wheel, tmp_path):
    import zipfile
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("comfycheck/suite/tests/acceptance/test_backend.py", "comfycheck/suite/profiles/local.toml",
                    "comfycheck/suite/fixtures/workflows/qwen_image_edit_2509.json",
                    "comfycheck/suite/loadtests/locustfile.py", "comfycheck/suite/pytest.ini"):
        assert shipped in names, f"{shipped} is not in {wheel.name}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "comfycheck = comfycheck.cli:main" in text and "comfycheck = comfycheck.pytest_entry" in text


def test_the_smoke_only_install_is_small_and_smokes_a_running_deployment(wheel, tmp_path, profile, deployment):
    """No extra: the checks of a deployment that already runs (here the session's stack, as a plain profile)."""
    if not profile.embedded:
        pytest.skip(f"profile {profile.name!r} is not the embedded stack this test points the installed tool at")
    bin_dir = _venv(tmp_path / "venv", str(wheel))
    size = _size_mb(tmp_path / "venv")
    print(f"smoke-only install: {size:.0f} MB")
    assert size <= CORE_LIMIT_MB, f"the install without extras is {size:.0f} MB (at most {CORE_LIMIT_MB} MB)"
    # the session's stack seen as a deployment (not embedded: this install has no [stack] extra to start one)
    data = tomllib.loads(profile.path.read_text())
    data.pop("stack")
    data["allow_destructive"] = data["allow_load"] = False
    data["public"]["ca_bundle"] = str(profile.ca_bundle)
    prod = tmp_path / "prod.toml"
    prod.write_text(tomli_w.dumps(data))
    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    done = subprocess.run([str(bin_dir / "comfycheck"), "smoke", "--profile", str(prod), "-q"], cwd=empty,
                          env=_user_env(home), capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == exitcodes.OK, out
    assert "comfycheck's [ui] extra is needed" in out and "comfycheck's [load] extra is needed" in out, out
    assert not list(empty.iterdir()), "the run wrote into the folder it was started in"
    assert (home / "data" / "comfycheck" / "report.html").is_file()
    assert (home / "data" / "comfycheck" / "history.sqlite").is_file()
    _nothing_written_into(tmp_path / "venv")


def test_the_installed_tool_smokes_its_embedded_stack_from_an_empty_folder(wheel, tmp_path):
    bin_dir = _venv(tmp_path / "venv", f"comfycheck[stack] @ {wheel.as_uri()}")
    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    env = _user_env(home)
    done = subprocess.run([str(bin_dir / "comfycheck"), "--help"], cwd=empty, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "smoke" in done.stdout and "nightly" in done.stdout, done.stdout + done.stderr
    # the embedded profile on ports of this test's own, beside the session's stack
    shipped = next((tmp_path / "venv").glob("lib/python*/site-packages/comfycheck/suite/profiles/local.toml"))
    mine = tmp_path / "local.toml"
    mine.write_text(tomli_w.dumps(merge(tomllib.loads(shipped.read_text()), own_ports())))
    done = subprocess.run([str(bin_dir / "comfycheck"), "smoke", "--profile", str(mine), "-q"], cwd=empty, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == exitcodes.OK, out
    assert " passed" in out and " failed" not in out, out
    assert not list(empty.iterdir()), "the run wrote into the folder it was started in"
    assert (home / "state" / "comfycheck" / "pki" / "ca.pem").is_file(), "the stack's CA is not in the state folder"
    assert (home / "data" / "comfycheck" / "report.html").is_file()
    _nothing_written_into(tmp_path / "venv")
    down = subprocess.run([str(bin_dir / "comfycheck"), "stack", "status", "--profile", str(mine)], cwd=empty,
                          env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == exitcodes.MISSED and "not running" in down.stdout, "the run left its stack running"


def _nothing_written_into(venv: Path) -> None:
    package = next(venv.glob("lib/python*/site-packages/comfycheck"))
    written = [p for p in package.rglob("*") if p.name in ("__pycache__", ".pytest_cache", "reports", ".comfycheck")
               and "suite" in p.relative_to(package).parts]
    assert not written, f"the run wrote into the installed package: {written[:5]}"


def test_a_plain_pytest_of_another_project_sees_nothing_of_comfycheck(tmp_path):
    """Same environment (this checkout's venv, the plugin installed), another project's folder: no comfycheck
    option, fixture, profile, report or history; its own `profile` fixture and `--profile` option are its own."""
    project = tmp_path / "other"
    project.mkdir()
    (project / "conftest.py").write_text(
        "import pytest\n\n"
        "def pytest_addoption(parser):\n    parser.addoption('--profile', default='theirs')\n\n"
        "@pytest.fixture\ndef profile(pytestconfig):\n    return pytestconfig.getoption('--profile')\n")
    (project / "test_theirs.py").write_text("def test_own_profile(profile):\n    assert profile == 'theirs'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYCHECK_", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "1 passed" in out, out
    assert "comfycheck" not in out, out
    left = {p.name for p in project.iterdir()} - {"conftest.py", "test_theirs.py", ".pytest_cache", "__pycache__"}
    assert not left, f"comfycheck left a trace: {sorted(left)}"
    fixtures = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-q"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120).stdout
    assert "deployment" not in fixtures and "comfycheck" not in fixtures, fixtures


def test_the_plugin_joins_when_asked_for_by_name(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_mine(profile):\n    assert profile.name == 'local'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYCHECK_", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "comfycheck", "-p", "no:cacheprovider",
                           "-p", "no:html", "--no-history", "--co"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "comfycheck profile: local" in out and "test_mine" in out, out


def test_an_installed_copy_resolves_a_profiles_paths_into_the_users_folders(monkeypatch, tmp_path):
    """reports/... is the results folder, .comfycheck/... the state folder, anything else the shipped suite; the
    shipped screenshot baselines are copied to the user's folder on first use, never written in the package."""
    from comfycheck.config import paths
    suite, results, state = tmp_path / "suite", tmp_path / "results", tmp_path / "state"
    shipped = suite / "fixtures" / "baselines"
    (shipped / "local").mkdir(parents=True)
    (shipped / "local" / "page.png").write_bytes(b"png")
    for name, value in (("SUITE_ROOT", suite), ("REPORTS_DIR", results), ("STATE_ROOT", state),
                        ("SHIPPED_BASELINES_DIR", shipped), ("BASELINES_DIR", results / "baselines")):
        monkeypatch.setattr(paths, name, value)
    assert paths.resolve("reports/history.sqlite") == results / "history.sqlite"
    assert paths.resolve(".comfycheck/pki/ca.pem") == state / "pki" / "ca.pem"
    assert paths.resolve("fixtures/images/edit_input.png") == suite / "fixtures" / "images" / "edit_input.png"
    assert paths.resolve("/etc/comfycheck/ca.pem") == Path("/etc/comfycheck/ca.pem")
    folder = paths.baselines_for("local")
    assert folder == results / "baselines" / "local" and (folder / "page.png").read_bytes() == b"png"
    assert paths.baselines_for("production") == results / "baselines" / "production"  # none shipped: made on write
