"""The run history: every run lands, whatever runs beside it or kills it; the file upgrades itself."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.targets import DEFAULT_TARGETS
from comfycheck.history import History, HistoryError, store
from comfycheck.judge.measurements import Measurement
from comfycheck.polling import wait_until
from tests.selftest.helpers import suite_command

pytestmark = pytest.mark.selftest


def figures(n: int, value: float = 1.0) -> list[Measurement]:
    t = DEFAULT_TARGETS["generation_s"]
    return [Measurement(f"figure {i}", value + i, "s", t, "test_x") for i in range(n)]


AT_THE_BARRIER = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    from comfycheck.history import History, store
    from comfycheck.judge.measurements import Measurement
    from comfycheck.polling import wait_until
    from comfycheck.config.targets import DEFAULT_TARGETS
    path, here, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    t = DEFAULT_TARGETS["generation_s"]
    with History(path) as h:  # open first: all of them then write at once
        (here / f"ready-{os.getpid()}").touch()
        wait_until(lambda: len(list(here.glob("ready-*"))) >= n, timeout=60, interval=0.001, what="the barrier")
        print(h.append("p", "pytest", started=store.now_iso(), verdict="passed", outcomes={}, versions={},
                       measurements=[Measurement(f"figure {i}", float(i), "s", t) for i in range(60)]))
''')


def test_runs_finishing_at_the_same_moment_all_land(tmp_path):
    path, n = tmp_path / "history.sqlite", 8
    procs = [subprocess.Popen([sys.executable, "-c", AT_THE_BARRIER, str(path), str(tmp_path), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
             for _ in range(n)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [err for _, err in outs]
    ids = sorted(int(out) for out, _ in outs)
    with History(path) as h:
        assert [r.id for r in h.runs("p")] == ids == list(range(1, n + 1))
        assert all(len(h.measurements(i)) == 60 for i in ids)


WRITER = textwrap.dedent('''
    import sys
    from comfycheck.history import History, store
    from comfycheck.judge.measurements import Measurement
    from comfycheck.config.targets import DEFAULT_TARGETS
    t = DEFAULT_TARGETS["generation_s"]
    with History(sys.argv[1]) as h:
        while True:
            run = h.begin("p", "load")
            h.finish(run, verdict="passed", outcomes={}, versions={},
                     measurements=[Measurement(f"figure {i}", float(i), "s", t) for i in range(200)])
            print(run, flush=True)
''')


def test_a_run_killed_at_any_moment_leaves_every_earlier_run_intact(tmp_path):
    """SIGKILL a writer mid-stream, ten times: the file stays readable and every committed run is whole."""
    path = tmp_path / "history.sqlite"
    committed: list[int] = []
    for _ in range(10):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                                  cwd=PROJECT_ROOT)
        assert writer.stdout is not None
        for _line in range(3):  # let it commit a few runs, then kill it wherever it is
            committed.append(int(writer.stdout.readline()))
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    with History(path) as h:
        assert h.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = {r.id: r for r in h.runs("p")}
        for run_id in committed:
            assert runs[run_id].finished and len(h.measurements(run_id)) == 200, run_id
        half = [r for r in runs.values() if r.finished is None]
        assert all(not h.measurements(r.id) for r in half), "a killed run's measurements came in part"


def test_the_schema_upgrades_itself_and_refuses_a_newer_one(tmp_path, monkeypatch):
    path = tmp_path / "history.sqlite"
    with History(path) as h:
        old = h.append("p", "pytest", started="2026-01-01T00:00:00+00:00", verdict="passed", outcomes={"passed": 1},
                       versions={"comfyui": "0.3.59"}, measurements=figures(3))
        assert h.schema_version == store.SCHEMA_VERSION
    step = ["ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''"]
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS + [step])
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    with History(path) as h:
        assert h.schema_version == store.SCHEMA_VERSION
        assert h.db.execute("SELECT note FROM runs WHERE id = ?", (old,)).fetchone() == ("",)
        assert h.runs("p")[0].versions == {"comfyui": "0.3.59"} and len(h.measurements(old)) == 3
    monkeypatch.undo()
    with pytest.raises(HistoryError, match=rf"history {path}: written by a newer comfycheck"):
        History(path)


def test_a_file_that_is_not_a_history_is_named(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a database, a text file someone named .sqlite\n" * 100)
    with pytest.raises(HistoryError, match=rf"history {bad}: file is not a database"):
        History(bad)
    assert bad.read_text().startswith("not a database"), "the file must be left as it was"


CHECKS = '''
import os, pathlib, time

from comfycheck.polling import wait_until


def test_meets_the_others_at_the_barrier():
    here = pathlib.Path(os.environ["BARRIER_DIR"])
    (here / f"ready-{os.getpid()}").touch()
    wait_until(lambda: len(list(here.glob("ready-*"))) >= int(os.environ["BARRIER_N"]), timeout=60,
               interval=0.01, what="the other sessions at the barrier")


def test_a_figure(measure):
    measure("generation_s", float(os.environ.get("FIGURE", "1.0")), name="the figure")
'''


def test_pytest_sessions_finishing_together_both_land_and_a_killed_one_leaves_the_rest(tmp_path):
    checks = tmp_path / "test_barrier.py"
    checks.write_text(CHECKS)
    history = tmp_path / "history.sqlite"
    env = {"BARRIER_DIR": str(tmp_path), "BARRIER_N": "2"}
    procs = [_start(checks, history, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with History(history) as h:
        runs = h.runs()
        assert [(r.verdict, r.outcomes["passed"]) for r in runs] == [("passed", 2)] * 2, runs
        assert {m.name for r in runs for m in h.measurements(r.id)} == {"the figure"}

    # a third session waits at a barrier nobody else reaches: killed there, it leaves a start row and no more
    (tmp_path / "lonely").mkdir()
    lonely = _start(checks, history, {**env, "BARRIER_DIR": str(tmp_path / "lonely")},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any((tmp_path / "lonely").glob("ready-*")), timeout=60, interval=0.05,
                   what="the third session at its barrier")
    finally:
        os.kill(lonely.pid, signal.SIGKILL)
        lonely.wait(10)
    with History(history) as h:
        assert h.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = h.runs()
        assert [r.finished is not None for r in runs] == [True, True, False]
        assert [r.verdict for r in runs[:2]] == ["passed", "passed"]


def _start(checks, history, env, **kw) -> subprocess.Popen:
    cmd, full_env = suite_command(str(checks), f"--history={history}", env=env)
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=full_env, **kw)
