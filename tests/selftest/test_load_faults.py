"""The Locust load run against faults: a VRAM leak, a slow generation and failing generations are all caught."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest

from comfycheck import exitcodes
from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.history import History
from comfycheck.load.judge import LoadSummary
from comfycheck.load.locust import locust_command

# each run judges the stand-in's generation times, stability among them: on a host busy with other tests a few
# generations' spread is that host's, so these runs have the machine to themselves (last, in a parallel run)
pytestmark = [pytest.mark.selftest, pytest.mark.timing, pytest.mark.exclusive]


def run_load(profile_path, out, generations=3, time_limit_s=120, history=None):
    cmd = locust_command(profile_path, out, generations=generations, time_limit_s=time_limit_s, history=history,
                         keep=history is not None)
    done = subprocess.run(cmd,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=time_limit_s + 90)
    summary = LoadSummary.read(out / "summary.json") if (out / "summary.json").is_file() else None
    return done, summary


def verdicts(summary: LoadSummary) -> dict:
    return {m.key: m for m in summary.measurements}


@pytest.fixture
def short_profile(make_profile):
    """The local profile, with a run of 3 generations judged on "3 consecutive"."""
    return make_profile({"targets": {"consecutive_generations": 3}, "load": {"settle_s": 3}})


def test_healthy_run_passes_and_writes_the_report_folder(deployment, fault_switch, short_profile, tmp_path):
    done, summary = run_load(short_profile, tmp_path / "run", history=tmp_path / "history.sqlite")
    assert done.returncode == 0, done.stdout + done.stderr
    with History(tmp_path / "history.sqlite") as history:
        (run,) = history.runs()
        assert (run.kind, run.verdict, run.outcomes["generations_ok"]) == ("load", "passed", 3)
        assert run.versions["comfyui"] == "0.33.0" and run.versions["comfycheck"], run.versions
        kept = history.measurements(run.id)
    assert [m.as_dict() for m in kept] == [m.as_dict() for m in summary.measurements], \
        "the history holds the run's own Measurements"
    assert f"kept as run #{run.id} (load)" in done.stdout
    for name in ("summary.json", "generations.csv", "samples.csv", "timeline.png", "generations.png", "index.html"):
        assert (tmp_path / "run" / name).is_file(), name
    assert summary.generations_ok == 3 and summary.verdict == "pass" and summary.source == "system_stats"
    assert "NVML unavailable on this host" in " ".join(summary.notes) or summary.source == "nvml"
    # the run's own /free unloads the model: the first generation loads it again, about twice as long (the stand-in
    # does as a real GPU did), and is told apart; stability and the time target judge the warm ones and pass
    by_name = {m.name: m for m in summary.measurements}
    (cold,) = [m for name, m in by_name.items() if name.endswith("after /free, model load included")]
    warm = verdicts(summary)
    assert cold.target is None and cold.value is not None and warm["generation_s"].value is not None
    assert cold.value > 1.5 * warm["generation_s"].value, (cold.value, warm["generation_s"].value)
    assert warm["generation_time_cv_pct"].verdict == "pass", warm["generation_time_cv_pct"]
    assert summary.sampler.samples > 5
    assert "GENERATE" in done.stdout + done.stderr  # Locust's own request statistics


def test_a_run_the_history_could_not_keep_exits_3_as_every_command_does(deployment, fault_switch, short_profile,
                                                                        tmp_path):
    history = tmp_path / "history.sqlite"
    History(history).close()  # a usable history, which refuses the run when it is kept at the end
    with sqlite3.connect(history) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'disk quota'); END")
    done, summary = run_load(short_profile, tmp_path / "run", history=history)
    assert done.returncode == exitcodes.NOT_KEPT, done.stdout + done.stderr
    assert f"the load run could not be kept in {history}: disk quota" in done.stderr, done.stderr
    assert summary is not None and summary.verdict == "pass", "the run itself was judged and its folder written"


def test_vram_leak_fails_the_leak_check(fault_switch, short_profile, tmp_path):
    fault_switch.set(vram_not_released=True)
    done, summary = run_load(short_profile, tmp_path / "run")
    assert done.returncode == 1, done.stdout + done.stderr
    leak = verdicts(summary)["vram_released_gb"]
    assert leak.verdict == "FAIL" and leak.value > 0.5, leak
    assert any(line.split()[:1] == ["FAIL"] and "VRAM left above the idle baseline after /free" in line
               for line in done.stdout.splitlines()), done.stdout


def test_slow_generation_misses_the_time_target_and_fails_the_exit_code(fault_switch, make_profile, tmp_path):
    fault_switch.set(slow_generation_s=1.2)
    profile = make_profile({"targets": {"consecutive_generations": 2, "generation_s": 1.0}, "load": {"settle_s": 3}})
    done, summary = run_load(profile, tmp_path / "run", generations=2)
    assert done.returncode == 1, done.stdout + done.stderr
    slow = verdicts(summary)["generation_s"]
    assert slow.verdict == "FAIL" and slow.value > 1.2, slow


def test_failing_generations_are_counted_as_failures(fault_switch, short_profile, tmp_path):
    fault_switch.set(generation_fails=True)
    done, summary = run_load(short_profile, tmp_path / "run")
    assert done.returncode == 1
    assert summary.generations_failed == 3 and summary.generations_ok == 0
    assert verdicts(summary)["consecutive_generations"].verdict == "FAIL"
    assert "torch.OutOfMemoryError" in summary.errors[0]
    assert "GENERATE" in done.stdout + done.stderr and "RuntimeError" in done.stdout + done.stderr


def test_cpu_only_comfyui_is_run_and_judged_on_what_can_be_judged(fault_switch, short_profile, tmp_path):
    fault_switch.set(cpu_only=True)
    done, summary = run_load(short_profile, tmp_path / "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary.generations_ok == 3 and summary.on_gpu is False and summary.verdict == "pass"
    rows = verdicts(summary)
    for key in ("consecutive_generations", "generation_s", "generation_time_cv_pct"):
        assert rows[key].verdict == "pass", rows[key]
    for key in ("vram_generation_pct", "vram_generation_gb", "vram_idle_pct", "vram_released_gb"):
        assert rows[key].verdict == "not assessed", rows[key]
        assert "ComfyUI runs on the CPU" in rows[key].note, rows[key]
    assert summary.peak.used_gb > 0, "the cpu device's memory is still sampled and reported"
    assert "system_stats cpu" in summary.device, summary.device


def test_short_try_out_reports_the_consecutive_target_as_not_assessed(deployment, fault_switch, make_profile,
                                                                      tmp_path):
    profile = make_profile({"load": {"settle_s": 3}})  # the documented target: 10 consecutive generations
    done, summary = run_load(profile, tmp_path / "run", generations=3)
    assert done.returncode == 0, done.stdout + done.stderr
    row = verdicts(summary)["consecutive_generations"]
    assert row.verdict == "not assessed" and "3 requested, the target needs 10" in row.note, row


def test_load_run_refused_on_a_profile_that_does_not_allow_it(tmp_path):
    done, summary = run_load(PROJECT_ROOT / "profiles" / "production.example.toml", tmp_path / "run")
    assert done.returncode != 0 and summary is None
    assert "load runs against profile 'production' are not allowed" in done.stderr
