"""A class run over Locust's master and workers, on the stand-in: one run, exactly the requested prompts across
the workers (the master hands each one out), the records gathered at the master and judged there once."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from comfycheck.classrun import records as raw
from comfycheck.classrun.report import SUMMARY_JSON, ClassSummary
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.load.locust import class_command, class_master_args, class_worker_command
from comfycheck.polling import wait_until
from tests.selftest.helpers import free_port

pytestmark = pytest.mark.selftest


def stop(*processes: subprocess.Popen) -> None:
    for p in processes:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def one_run(out, done: subprocess.CompletedProcess) -> list[raw.PromptRecord]:
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert text.count("comfycheck class run: ") == 1, "one run, judged once, at the master\n" + text
    summary = ClassSummary.read(out / SUMMARY_JSON)
    recs = raw.read(out / raw.PROMPTS_JSONL)
    assert len(recs) == summary.prompts_requested == summary.prompts_ok, recs
    assert len({r.prompt_id for r in recs}) == len(recs), "a prompt counted twice"
    return recs


def test_processes_share_one_quota_of_prompts(quick_steps, profile, tmp_path):
    out = tmp_path / "class"
    cmd = class_command(profile.path, out, students=6, prompts_each=2, allow_load=True, keep=False)
    done = subprocess.run(cmd + ["--processes", "2"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    recs = one_run(out, done)
    assert len(recs) == 12
    workers = {r.student.split("-")[1] for r in recs}
    assert workers == {"w0", "w1"}, f"both workers ran students: {sorted({r.student for r in recs})}"
    assert all(sum(r.student == s for r in recs) == 2 for s in {r.student for r in recs}), "2 prompts each"


def test_a_master_and_workers_started_apart_give_one_rate_run(quick_steps, profile, tmp_path):
    out, port = tmp_path / "class", free_port()
    master = subprocess.Popen(class_command(profile.path, out, allow_load=True, keep=False)
                              + class_master_args(2, port) + ["--shape", "rate", "--rate-per-min", "120",
                                                              "--duration-s", "4", "--students", "3"],
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen(class_worker_command("127.0.0.1", port), cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        stdout, stderr = master.communicate(timeout=180)
    finally:
        stop(master, *workers)
    recs = one_run(out, subprocess.CompletedProcess(master.args, master.returncode, stdout, stderr))
    assert len(recs) == 8, "120 a minute for 4 s"
    assert all(r.arrived_at is not None for r in recs), "each prompt took its arrival from the master"


def test_a_worker_that_cannot_read_the_profile_stops_the_run_naming_it(deployment, profile, tmp_path):
    """Each worker reads the profile at the path the master was given, resolved in the master's folder: a load
    machine that has no file there stops the run, naming the path. Here the master's folder is moved away once
    the master has read the profile and waits for its worker."""
    here = tmp_path / "master"
    here.mkdir()
    (here / "class.toml").write_text(profile.path.read_text())
    out, port, log = tmp_path / "class", free_port(), tmp_path / "master.log"
    with log.open("w") as err:  # DEBUG: Locust says at once that it waits for its workers (INFO only after 5 s)
        master = subprocess.Popen(class_command(Path("class.toml"), out, allow_load=True, keep=False)
                                  + class_master_args(1, port) + ["--loglevel", "DEBUG"], cwd=here,
                                  stdout=subprocess.DEVNULL, stderr=err, text=True)
    workers: list[subprocess.Popen] = []
    try:
        wait_until(lambda: "Waiting for workers to be ready" in log.read_text() or master.poll() is not None,
                   timeout=60, interval=0.1, what="the class master waiting for its worker")
        here.rename(tmp_path / "moved")  # the worker's machine: nothing at the master's path
        workers.append(subprocess.Popen(class_worker_command("127.0.0.1", port), cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        master.wait(timeout=120)
    finally:
        stop(master, *workers)
    stderr = log.read_text()
    assert master.returncode == 2, stderr[-3000:]
    assert "worker 0" in stderr and "cannot run students" in stderr, stderr[-3000:]
    assert f"profile {here / 'class.toml'}: no such file" in stderr, stderr[-3000:]
    assert "same path on every load machine" in stderr, stderr[-3000:]
