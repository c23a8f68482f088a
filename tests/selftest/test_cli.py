"""The `comfycheck` command: one subcommand per job, the same exit codes in each, every command the README gives
works as written (its --help at least), and `init` writes a profile from what a deployment says of itself."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from comfycheck import exitcodes
from comfycheck.cli import JOBS, main
from comfycheck.cli.jobs import absolute_paths
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.stack.ports import free_port

pytestmark = pytest.mark.selftest
README = PROJECT_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
# the README's commands that are not comfycheck's own (installers, the package manager): not run here
NOT_OURS = ("pipx ", "uv ", "apt-get ", "git ")


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0, f"comfycheck {' '.join(argv)} exited {done.value.code}"
    return capsys.readouterr().out


def test_help_lists_every_job_with_one_line(capsys):
    out = _help(["--help"], capsys)
    for job, line in JOBS:
        assert re.search(rf"^\s+{job}\s+{re.escape(line.split()[0])}", out, re.M), f"{job} not listed:\n{out}"
    for code in (exitcodes.OK, exitcodes.MISSED, exitcodes.CANNOT_RUN, exitcodes.NOT_KEPT):
        assert f"{code}  {exitcodes.MEANINGS[code]}" in out, out


@pytest.mark.parametrize("job", [job for job, _ in JOBS])
def test_each_job_takes_profile_and_out(job, capsys):
    out = _help([job, "--help"], capsys)
    assert "--profile" in out and "--out" in out, out


def _readme_commands() -> list[str]:
    """Every command the README gives: the lines of its bash blocks and the commands of its job table, joined where
    a line continues."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    for cell in re.findall(r"^\|[^|]*\| `([^`]+)`", text, re.M):
        commands += [c.strip() for c in cell.split("` then `")]
    return commands


def test_the_readme_has_the_job_table_first_and_fits_250_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[0] == "## Which command for which job", headings[:2]
    for job in ("after a deploy", "every night", "before a lesson", "a load run", "the 24-hour soak",
                "opening ComfyUI to users", "the suite's own tests"):
        assert re.search(rf"^\| [^|]*{re.escape(job)} \|", "\n".join(lines), re.M | re.I), f"no row for {job!r}"


def test_every_readme_command_answers_help(capsys):
    """`comfycheck ...` lines run in this process (their --help parses every option of ours first); `./run`, pytest
    and Locust, as the subprocesses they are."""
    commands = _readme_commands()
    ours = [c for c in commands if not c.startswith(NOT_OURS)]
    assert len([c for c in ours if c.startswith("comfycheck ")]) >= 10, commands
    for command in ours:
        argv = shlex.split(command)
        if argv[0] == "comfycheck":
            _help([*argv[1:], "--help"], capsys)
            continue
        program = {"./run": str(PROJECT_ROOT / "run"), ".venv/bin/pytest": str(VENV_BIN / "pytest"),
                   ".venv/bin/locust": str(VENV_BIN / "locust")}.get(argv[0])
        assert program, f"README command {command!r}: not one this test knows how to run"
        if argv[1:2] == ["setup"]:
            continue  # the set-up itself: ./run smoke below runs it first
        done = subprocess.run([program, *argv[1:], "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{command} --help: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr}"


def test_a_bad_profile_is_could_not_run_in_every_job(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 3\n")
    for job in ("smoke", "check", "load", "class", "soak", "nightly"):
        assert main([job, "--profile", str(bad)]) == exitcodes.CANNOT_RUN, job
        assert f"profile {bad}" in capsys.readouterr().err
    assert main(["stack", "status", "--profile", str(tmp_path / "nope.toml")]) == exitcodes.CANNOT_RUN
    assert "no such file" in capsys.readouterr().err


def test_an_option_pytest_refuses_is_could_not_run(capsys):
    assert main(["smoke", "--no-such-option"]) == exitcodes.CANNOT_RUN


def test_out_moves_the_results_of_every_job_even_those_run_in_the_commands_own_process(tmp_path):
    """--out is read before anything places the results (comfycheck.config.paths does so once, on import): the
    history, trend, soak and stack jobs run in the command's own process and must see it too."""
    profile = tmp_path / "p.toml"
    profile.write_text((PROJECT_ROOT / "profiles" / "local.toml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYCHECK_", "PYTEST_"))}
    done = subprocess.run([str(VENV_BIN / "comfycheck"), "history", "--profile", str(profile), "--out",
                           str(tmp_path / "mine")], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == exitcodes.CANNOT_RUN, done.stdout + done.stderr
    assert f"history {tmp_path / 'mine' / 'history.sqlite'}: no such file" in done.stderr, done.stderr
    by_name = subprocess.run([str(VENV_BIN / "comfycheck"), "trend", "--profile", "production", "--out",
                              str(tmp_path / "mine")], capture_output=True, text=True, timeout=60, env=env)
    assert by_name.returncode == exitcodes.CANNOT_RUN, by_name.stdout + by_name.stderr
    assert f"history {tmp_path / 'mine' / 'history.sqlite'}: no such file" in by_name.stderr, by_name.stderr


def test_a_job_without_its_extra_names_the_extra(monkeypatch, capsys):
    from comfycheck import extras
    monkeypatch.setattr(extras, "missing", lambda extra: ["locust"] if extra == "load" else [])
    assert main(["load"]) == exitcodes.CANNOT_RUN
    err = capsys.readouterr().err
    assert "comfycheck load: comfycheck's [load] extra is needed (locust not installed)" in err
    assert "pipx install 'comfycheck[load]'" in err


def test_relative_paths_are_the_callers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("")
    assert absolute_paths(["--html", "r.html", "--junitxml=j.xml", "-m", "smoke", "mine.py::test_x"]) == [
        "--html", str(tmp_path / "r.html"), f"--junitxml={tmp_path / 'j.xml'}", "-m", "smoke",
        f"{tmp_path / 'mine.py'}::test_x"]


def test_init_writes_a_valid_profile_from_what_the_deployment_says(profile, deployment, tmp_path, capsys):
    if not profile.embedded or profile.public is None:
        pytest.skip(f"profile {profile.name!r} is not an embedded stack with a public address")
    target = tmp_path / "mine.toml"
    argv = ["init", "--comfyui-url", profile.comfyui.url, "--public-url", profile.public.url,
            "--ca-bundle", str(profile.ca_bundle), "--write", str(target)]
    assert main(argv) == exitcodes.OK, capsys.readouterr().err
    out = capsys.readouterr().out
    written = load_profile(target)
    assert written.public is not None and profile.public is not None
    stats_version = re.search(r"ComfyUI (\S+) at", out)
    assert stats_version, out
    assert written.comfyui.url == profile.comfyui.url and written.public.url == profile.public.url
    assert written.public.auth_mode == profile.public.auth_mode == "none"
    assert not written.allow_destructive and not written.allow_load
    assert written.comfyui.must_not_be_public  # a loopback backend: only the proxy may publish it
    data = tomllib.loads(target.read_text())
    assert data["comfyui"]["required_models"] == {"diffusion_models": ["qwen_image_edit_2509_fp8_e4m3fn.safetensors"],
                                                  "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
                                                  "vae": ["qwen_image_vae.safetensors"]}
    assert "TextEncodeQwenImageEditPlus" in data["comfyui"]["required_nodes"]
    assert data["comfyui"]["models_installed"] is profile.comfyui.models_installed
    # never over a file without --force; the file is left as it was
    before = target.read_text()
    assert main(argv) == exitcodes.CANNOT_RUN
    assert "exists: pass --force" in capsys.readouterr().err and target.read_text() == before


def test_init_fails_fast_naming_an_unreachable_address(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    assert main(["init", "--comfyui-url", url, "--write", str(tmp_path / "x.toml")]) == exitcodes.CANNOT_RUN
    assert time.monotonic() - t0 < 10
    assert f"cannot reach ComfyUI at {url}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
