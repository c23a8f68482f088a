"""The suite over pytest-xdist's workers (comfycheck.parallel, comfycheck.stack.ports): the checks on the deployment
run whole and in order on one worker, a group stays together, an exclusive test runs last with the machine to
itself, every test keeps its own name, and each worker's embedded stack has ports of its own; and a latency timed
while other work holds this host's CPUs is not taken for the server's (comfycheck.probes.host)."""
from __future__ import annotations

import json
import subprocess
import tomllib

import pytest

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.probes import host
from comfycheck.stack import ports
from tests.selftest.helpers import suite_command

pytestmark = pytest.mark.selftest

CHECKS = '''
import json, os, time
import pytest

def note(what, profile=None):
    with open(os.environ["COMFYCHECK_SELFTEST_LOG"], "a") as log:
        log.write(json.dumps({"what": what, "worker": os.environ.get("PYTEST_XDIST_WORKER"), "t": time.time(),
                              "url": profile.comfyui.url if profile else None}) + "\\n")

@pytest.mark.parametrize("n", range(6))
def test_check(n, profile):
    note(f"check {n}", profile)

@pytest.mark.selftest
@pytest.mark.parametrize("n", range(6))
def test_free(n, profile):
    note(f"free {n}", profile)

@pytest.mark.selftest
@pytest.mark.xdist_group("pair")
@pytest.mark.parametrize("n", range(2))
def test_paired(n):
    note(f"pair {n}")

@pytest.mark.selftest
@pytest.mark.exclusive
def test_alone():
    note("alone")
'''


def test_workers_keep_the_checks_in_order_the_groups_together_and_the_exclusive_test_alone(profile, tmp_path):
    checks, log = tmp_path / "test_spread.py", tmp_path / "notes.jsonl"
    checks.write_text(CHECKS)
    cmd, env = suite_command("-n", "3", "-rA", str(checks), env={"COMFYCHECK_SELFTEST_LOG": str(log)})
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "15 passed" in out, out
    assert "@" not in "".join(line for line in out.splitlines() if line.startswith("PASSED")), \
        "every test is reported under its own name:\n" + out
    notes = [json.loads(line) for line in log.read_text().splitlines()]
    by = {n["what"]: n for n in notes}
    checks_run = [n for n in notes if n["what"].startswith("check ")]
    assert [n["what"] for n in checks_run] == [f"check {i}" for i in range(6)], "the checks in their order"
    assert len({n["worker"] for n in checks_run}) == 1, f"the checks on one worker: {checks_run}"
    assert by["pair 0"]["worker"] == by["pair 1"]["worker"], "a group on one worker"
    assert len({n["worker"] for n in notes}) == 3, f"three workers took a share: {notes}"
    assert by["alone"]["t"] > max(n["t"] for n in notes if n["what"] != "alone"), "the exclusive test ran last"
    urls = {n["worker"]: n["url"] for n in notes if n["url"]}
    assert len(set(urls.values())) == len(urls) >= 2 and profile.comfyui.url not in urls.values(), \
        f"each worker's embedded stack on ports of its own: {urls}"


def test_a_workers_profile_moves_every_loopback_port_into_its_block(make_profile, monkeypatch):
    monkeypatch.setenv(ports.PORTS_ENV, "30000-31999")
    monkeypatch.setattr(ports, "_THIS_PROCESS", [])
    mine = ports.become_worker("gw1", 4)  # the block 30500-30999: profiles from 30500, free ports, then children
    assert (str(mine.profile_ports), str(mine.free_ports), str(mine.children)) == \
        ("30500-30561", "30562-30749", "30750-30999")
    page = load_profile(make_profile(name="base.toml")).public_url
    original = make_profile({"public": {"cors_origins": [page, "https://app.example.net:443"]}})
    copy = tomllib.loads(ports.worker_profile(original).read_text())
    before = tomllib.loads(original.read_text())
    assert copy["comfyui"]["url"] != before["comfyui"]["url"]
    moved = [copy["comfyui"]["url"], copy["public"]["url"], copy["public"]["http_url"], copy["forge"]["url"],
             copy["stack"]["control_url"], copy["stack"]["supervisor_url"]]
    assert all(30500 <= int(url.rsplit(":", 1)[1]) < 30562 for url in moved), moved
    assert len(set(moved)) == len(moved)
    assert copy["public"]["cors_origins"] == [copy["public"]["url"], "https://app.example.net:443"], \
        "the page's origin follows the proxy; another host's is left alone"
    assert ports.worker_profile(original).read_text() == ports.worker_profile(original).read_text(), \
        "the same ports every time"
    assert ports.PortRange.parse("30750-30999") == mine.children


def test_a_nested_run_takes_its_ports_from_its_parents_share(monkeypatch):
    monkeypatch.setenv(ports.PORTS_ENV, "30000-30099")
    monkeypatch.setattr(ports, "_THIS_PROCESS", [])
    mine = ports.this_process()
    assert (str(mine.free_ports), str(mine.children)) == ("30000-30049", "30050-30099")
    taken = {mine.free() for _ in range(5)}
    assert len(taken) == 5 and all(30000 <= p < 30050 for p in taken)
    monkeypatch.setenv(ports.PORTS_ENV, "30000-30099")
    with pytest.raises(ports.PortsError, match="run fewer workers"):
        ports.become_worker("gw7", 8)  # 12 ports each
    with pytest.raises(ports.PortsError, match="expected a range of ports"):
        ports.PortRange.parse("30000")


def test_a_latency_that_meets_its_target_is_taken_once(monkeypatch):
    monkeypatch.setattr(host, "_calm_look", lambda: pytest.fail("a passing latency waits for nothing"))
    taken = host.sampled(lambda: 2.0, 30, missed=lambda values: max(values) >= 20)
    assert (taken.values, taken.note()) == ([2.0] * 30, "30 samples")


def test_a_missed_latency_is_confirmed_on_a_calm_host(monkeypatch):
    """The first 30 samples, timed while other work held the CPUs, miss; taken again in calm moments, they are
    the server's: here they pass. A batch timed while the host was saturated all the same is taken once more."""
    times = iter([45.0] * 30 + [2.0] * 40)
    busy = iter([0.2, 0.95, 0.2, 0.2])  # the second batch of the second take: saturated, taken again
    monkeypatch.setattr(host, "_calm_look", lambda: True)
    monkeypatch.setattr(host, "busy_share", lambda before, after: next(busy))
    taken = host.sampled(lambda: next(times), 30, missed=lambda values: max(values) >= 20)
    assert taken.complete and taken.values == [2.0] * 30 and taken.first_missed == [45.0] * 30
    assert taken.note() == ("30 samples timed while this host was not saturated, after the first 30 missed the "
                            "target (1 batch(es) on a saturated host taken again)")


def test_a_miss_never_confirmed_on_a_saturated_host_is_said_so(monkeypatch):
    monkeypatch.setattr(host, "_calm_look", lambda: False)
    taken = host.sampled(lambda: 45.0, 30, missed=lambda values: max(values) >= 20, within_s=0.3)
    assert not taken.complete and taken.values == []
    assert "stayed saturated by other work" in taken.note() and "the wait for a CPU here" in taken.note()
