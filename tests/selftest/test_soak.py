"""The soak against the embedded stack: a healthy soak passes, and each fault it exists for fails the measurement
that names it (an outage of the backend or of the proxy, a slow RAM leak, a WebSocket dropped by the proxy)."""
from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.history import History
from comfycheck.polling import wait_until
from comfycheck.stack import EmbeddedStack, FaultSwitch
from comfycheck.stack.proxy import NginxProxy
from comfycheck.stack.supervisor import PROGRAM, rpc
from tests.selftest.helpers import free_port

pytestmark = pytest.mark.selftest


def soak_command(profile_path: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "comfycheck.soak", f"--profile={profile_path}", f"--out={out}", "--quiet", *args]


def run_soak(profile_path: Path, out: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(soak_command(profile_path, out, *args), cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def rounds(out: Path) -> list[tuple[float, int, str]]:
    """The rounds a running soak has written so far (t, up, what failed)."""
    try:
        with sqlite3.connect(f"file:{out / 'samples.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT t, up, failed FROM ticks ORDER BY t").fetchall()
    except sqlite3.Error:
        return []


def figures(out: Path) -> dict[str, dict]:
    return {m["target"] or m["name"]: m for m in json.loads((out / "measurements.json").read_text())}


def failed_keys(out: Path) -> set[str]:
    return {k for k, m in figures(out).items() if m["verdict"] == "FAIL"}


@pytest.fixture
def embedded(profile, deployment):
    """The session's embedded stack, stand-in or real ComfyUI, healthy."""
    if not profile.embedded:
        pytest.skip(f"the soak's self-tests run against the embedded stack; profile {profile.name!r} has none")
    if not profile.stack.real:
        FaultSwitch(profile.stack.control_url).reset()
    return profile


@pytest.fixture
def stand_in(profile, deployment):
    if not profile.embedded or profile.stack.real:
        pytest.skip("the soak's fault self-tests need the embedded stand-in (its fault switches, its one-second "
                    f"restart); profile {profile.name!r} is not that")
    return profile


def test_a_healthy_soak_passes_every_target_and_is_kept_in_the_history(embedded, tmp_path):
    history = tmp_path / "history.sqlite"
    # a canary every 15 s: ComfyUI collects garbage right after each (its timer is 10 s), inside the canary's
    # shadow; a canary every 5 s keeps that timer running and its stalls (265 ms on real ComfyUI) hit the probes
    done = run_soak(embedded.path, tmp_path / "soak", "--duration=75s", "--canary-every=15s", f"--history={history}")
    assert done.returncode == 0, done.stdout + done.stderr
    found = figures(tmp_path / "soak")
    for key in ("availability_pct", "websocket_drops", "canary_success_pct", "canary_drift_s", "ram_growth_mb_per_h"):
        assert found[key]["verdict"] == "pass", found[key]
    for key in ("latency_local_ms", "latency_proxy_ms"):  # timed on a calm host; on a busy one, not judged
        latency = found[key]
        assert latency["verdict"] == "pass" or "while this host was busy with other work" in latency["not_assessed"], \
            latency
    vram = found["vram_growth_mb_per_h"]  # real ComfyUI here runs on the CPU: no VRAM
    assert vram["verdict"] == "pass" or "runs on the CPU" in vram["not_assessed"], vram
    assert found["availability_pct"]["value"] == 100.0
    assert found["canary_success_pct"]["details"]["note"].endswith("succeeded")
    page = (tmp_path / "soak" / "report.html").read_text()
    for part in ("Soak: <span", "Availability", "API latency", "ComfyUI process RSS", "Canary generations",
                 "<h2>Outages</h2><p>None.</p>", "comfycheck-targets"):
        assert part in page, part
    assert "<script" not in page and not re.findall(r'(?:src|href)="(?!#|data:)', page)  # self-contained
    with History(history) as h:
        (run,) = h.runs()
        assert (run.kind, run.verdict, run.outcomes["outages"]) == ("soak", "passed", 0)
        assert {m.key for m in h.measurements(run.id)} >= {"availability_pct", "ram_growth_mb_per_h"}


def test_a_slow_ram_leak_fails_the_ram_growth_target(stand_in, fault_switch, tmp_path):
    fault_switch.set(ram_leak_mb=5.0)  # 5 MB kept per generation, a canary every 2 s
    done = run_soak(stand_in.path, tmp_path / "soak", "--duration=75s", "--canary-every=2s", "--no-history")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert failed_keys(tmp_path / "soak") == {"ram_growth_mb_per_h"}, out
    assert "FAIL  ComfyUI process RAM (RSS) growth per hour" in out and "'ram_growth_mb_per_h': FAIL" in out, out
    growth = figures(tmp_path / "soak")["ram_growth_mb_per_h"]["value"]
    assert 2000 < growth < 20000, growth  # 5 MB every ~2 s is about 9 GB/h


@pytest.mark.parametrize("what", ["backend", "proxy"])
def test_an_outage_is_measured_listed_and_fails_availability(embedded, tmp_path, what):
    out = tmp_path / "soak"
    soak = subprocess.Popen(soak_command(embedded.path, out, "--duration=180s", "--interval=0.5s",
                                         "--canary-every=0", "--no-history"),
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack = EmbeddedStack(embedded)
    try:
        wait_until(lambda: sum(r[1] for r in rounds(out)) >= 4, timeout=30, interval=0.1, what="4 good rounds")
        t_stop = time.time()
        if what == "backend":
            rpc(embedded.stack.supervisor_url).supervisor.stopProcess(PROGRAM)
        else:
            running = stack.running()
            assert running is not None, "the embedded stack is not running"
            NginxProxy.stop(running.proxy_pid)
        try:
            wait_until(lambda: sum(not r[1] for r in rounds(out)) >= 6, timeout=30, interval=0.1,
                       what="6 failed rounds")
        finally:
            t_back = time.time()
            if what == "backend":
                rpc(embedded.stack.supervisor_url).supervisor.startProcess(PROGRAM)
            assert stack.running(), "the embedded stack did not come back"  # restarts a stopped proxy
            t_up = time.time()
        wait_until(lambda: rounds(out)[-1][1] == 1, timeout=90, interval=0.1, what="a good round after the outage")
        soak.send_signal(signal.SIGTERM)  # ends the soak early, with its report
        text, _ = soak.communicate(timeout=60)
    finally:
        if soak.poll() is None:
            soak.kill()
    assert soak.returncode == 1, text
    assert "availability_pct': FAIL" in text and "FAIL  availability" in text, text
    (outage,) = [line for line in text.splitlines() if line.strip().startswith("outage ")]
    expected = {"backend": "backend, proxy, websocket", "proxy": "proxy, websocket"}[what]
    assert f": {expected}: " in outage, outage
    assert ("cannot reach ComfyUI at http://127.0.0.1" if what == "backend" else embedded.public.url) in outage
    ws = figures(out)["websocket_drops"]  # the WebSocket closed with the service: part of the outage, no drop
    assert ws["verdict"] == "pass" and ws["details"]["outage_closes"] >= 1, ws
    down = figures(out)["availability_pct"]["details"]["down_s"]
    assert (t_back - t_stop) - 1.0 <= down <= (t_up - t_stop) + 1.5, (down, t_back - t_stop, t_up - t_stop)
    page = (out / "report.html").read_text()
    assert "outage " in page and f"<td>{expected}</td>" in page and "ended by</th><td>SIGTERM" in page


def test_a_websocket_dropped_by_the_proxy_idle_timeout_fails_websocket_drops(embedded, proxy_faults, tmp_path):
    proxy_faults(read_timeout_s=2)  # shorter than the profile's public.websocket_idle_s (5 s)
    done = run_soak(embedded.path, tmp_path / "soak", "--duration=15s", "--canary-every=0", "--no-history")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "websocket_drops" in failed_keys(tmp_path / "soak"), out
    drops = figures(tmp_path / "soak")["websocket_drops"]
    assert drops["value"] >= 3 and all(1.5 <= s <= 3.0 for s in drops["details"]["silences_s"]), drops
    assert "raise the proxy's read timeout (nginx proxy_read_timeout" in drops["fix"]
    assert "WebSocket dropped after 2." in (tmp_path / "soak" / "report.html").read_text()


def test_a_killed_soak_loses_at_most_its_last_round_and_its_report_is_rebuilt(embedded, tmp_path):
    out = tmp_path / "soak"
    soak = subprocess.Popen(soak_command(embedded.path, out, "--duration=120s", "--interval=0.2s",
                                         "--canary-every=1s", "--no-history"),
                            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(rounds(out)) >= 15, timeout=30, interval=0.05, what="15 rounds")
        soak.kill()
        soak.wait(timeout=10)
    finally:
        if soak.poll() is None:
            soak.kill()
    kept = len(rounds(out))
    assert kept >= 15
    assert not (out / "report.html").exists()
    done = subprocess.run([sys.executable, "-m", "comfycheck.soak", "report", str(out)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"({kept} rounds)" in done.stdout, done.stdout
    assert "ended by</th><td>killed (rebuilt from its samples)" in (out / "report.html").read_text()
    assert figures(out)["availability_pct"]["value"] == 100.0
    again = run_soak(embedded.path, out, "--duration=5s", "--no-history", timeout=60)  # a soak's folder is not reused
    assert again.returncode == 2 and "already holds a soak's samples" in again.stderr, again.stderr
    assert len(rounds(out)) == kept


def test_an_unreachable_backend_stops_the_soak_at_once_naming_the_url(make_profile, tmp_path):
    port = free_port()
    path = make_profile({"comfyui": {"url": f"http://127.0.0.1:{port}"}, "stack": None, "public": None,
                         "forge": None})
    t0 = time.monotonic()
    done = run_soak(path, tmp_path / "soak", "--duration=1h", "--no-history", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot reach ComfyUI at http://127.0.0.1:{port}/system_stats" in done.stderr
    assert str(path) in done.stderr and time.monotonic() - t0 < 20


@pytest.mark.parametrize("args, phrase", [
    (["--duration=5x"], "'5x' is not a duration"),
    (["--interval=0s"], "a duration must be above zero"),
])
def test_a_bad_duration_is_refused_naming_it(tmp_path, args, phrase):
    done = run_soak(PROJECT_ROOT / "profiles" / "local.toml", tmp_path / "soak", *args, timeout=30)
    assert done.returncode == 2 and phrase in done.stderr, done.stderr


def test_a_bad_soak_table_is_refused_naming_the_key(make_profile, tmp_path):
    path = make_profile({"soak": {"canary": "sometimes", "nightly_duration": "soon"}})
    done = run_soak(path, tmp_path / "soak", timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"profile {path}" in done.stderr and "soak.canary: expected \"smoke\" or \"generation\"" in done.stderr
    assert "soak.nightly_duration: expected a duration" in done.stderr


def test_a_proxy_that_refuses_the_websocket_stops_the_soak_at_once(embedded, proxy_faults, tmp_path):
    proxy_faults(ws_upgrade_blocked=True)
    done = run_soak(embedded.path, tmp_path / "soak", "--duration=1h", "--no-history", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the WebSocket wss://" in done.stderr and "the proxy does not pass WebSocket upgrades" in done.stderr, \
        done.stderr


def test_a_soak_the_history_could_not_keep_exits_3_as_the_load_and_class_runs_do(embedded, tmp_path):
    """The long runs keep themselves one way (comfycheck.history.keeping): judged, its report written, but refused
    by the history at the end, a soak says so and exits 3 (exitcodes.NOT_KEPT)."""
    history = tmp_path / "history.sqlite"
    History(history).close()
    with sqlite3.connect(history) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'disk quota'); END")
    done = run_soak(embedded.path, tmp_path / "soak", "--duration=3s", "--canary-every=0", f"--history={history}")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"the soak run could not be kept in {history}: disk quota" in done.stderr, done.stderr
    assert (tmp_path / "soak" / "report.html").is_file() and (tmp_path / "soak" / "measurements.json").is_file()
