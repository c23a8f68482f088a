"""The soak's arithmetic on made-up samples: availability and outages, memory growth, canary drift, durations."""
from __future__ import annotations

import sqlite3

import pytest

from comfycheck.config.duration import clock, format_duration, parse_duration
from comfycheck.config.targets import DEFAULT_TARGETS
from comfycheck.soak.judge import availability, growth_per_hour, judge
from comfycheck.soak.samples import SampleStore, Tick

pytestmark = pytest.mark.selftest


@pytest.fixture
def store(tmp_path):
    with SampleStore(tmp_path / "samples.sqlite", create=True) as s:
        s.set_meta(interval_s=1.0, websocket_idle_s=5.0, public_url="https://x", on_gpu=True, process_watched=True)
        yield s


def fill(store, pattern: str, t0: float = 1000.0, interval: float = 1.0, **columns):
    """One round per character: '.' up, 'b' backend down, 'p' proxy down."""
    for i, c in enumerate(pattern):
        failed = {"." : "", "b": "backend,proxy", "p": "proxy"}[c]
        store.add_tick(Tick(t0 + i * interval, c == ".", failed, direct_ms=None if c == "b" else 2.0 + i % 3,
                            public_ms=None if c != "." else 4.0, error="" if c == "." else f"{c} down at {i}",
                            **{k: f(i) for k, f in columns.items()}))


def test_availability_is_time_weighted_and_outages_are_runs_of_failed_rounds(store):
    fill(store, "." * 10 + "bbb" + "." * 5 + "pp" + "." * 80)
    a = availability(store, 1.0)
    assert (a.rounds, a.total_s, a.down_s) == (100, 100.0, 5.0)
    assert a.pct == pytest.approx(95.0)
    first, second = a.outages
    assert (first.start, first.end, first.duration_s, first.rounds) == (1010.0, 1013.0, 3.0, 3)
    assert first.failed == {"backend", "proxy"} and first.error == "b down at 10"
    assert (second.duration_s, second.failed) == (2.0, {"proxy"})


def test_an_outage_still_going_at_the_end_lasts_to_the_end(store):
    fill(store, "....bb")
    (o,) = availability(store, 1.0).outages
    assert o.ongoing and o.duration_s == 2.0


def test_a_late_round_counts_for_the_time_it_covered(store):
    for t, up in ((0.0, 1), (1.0, 0), (6.0, 1), (7.0, 1)):  # a probe that hung for 5 s before failing
        store.add_tick(Tick(t, bool(up), "" if up else "backend"))
    a = availability(store, 1.0)
    assert (a.total_s, a.down_s) == (8.0, 5.0)


def test_growth_follows_the_floor_not_the_peaks():
    hour = 3600.0
    # a healthy process: 2 GB peaks during work, the floor flat at 1 GB
    healthy = [(float(t), 1000.0 + (2000.0 if t % 60 < 10 else 0.0)) for t in range(0, int(hour), 5)]
    slope, how = growth_per_hour(healthy)
    assert slope is not None and abs(slope) < 1.0 and "lowest value in 12 slices" in how
    leaking = [(float(t), 1000.0 + 0.1 * t + (2000.0 if t % 60 < 10 else 0.0)) for t in range(0, int(hour), 5)]
    assert growth_per_hour(leaking)[0] == pytest.approx(360.0, rel=0.02)


def test_growth_is_not_assessed_on_too_little():
    slope, why = growth_per_hour([(t, 1.0) for t in range(30)])
    assert slope is None and "the slope needs at least 1 min" in why


def test_judgement_names_each_figure_and_its_verdict(store):
    fill(store, "." * 200, rss=lambda i: int(500e6 + i * 1e6), vram_used=lambda i: int(2e9), pid=lambda i: 42,
         vram_total=lambda i: int(24e9))
    for i, server_s in enumerate([9.0, 1.0, 1.0, 1.1, 1.0, 5.0, 5.2, 5.1, 5.0]):
        store.add_canary(1000.0 + 20 * i, True, server_s, server_s + 0.1)
    store.add_event(1050.0, "ws_drop", 2.0, "closed")
    store.add_event(1090.0, "ws_idle_close", 60.0, "closed")
    found = {m.key or m.name: m for m in judge(store, DEFAULT_TARGETS).measurements}
    assert found["availability_pct"].verdict == "pass"
    assert found["ram_growth_mb_per_h"].verdict == "FAIL"  # 1 MB a second
    assert found["ram_growth_mb_per_h"].value == pytest.approx(3600.0, rel=0.05)
    assert found["vram_growth_mb_per_h"].verdict == "pass"
    assert (found["websocket_drops"].value, found["websocket_drops"].details["idle_closes"]) == (1, 1)
    drift = found["canary_drift_s"]  # the first canary (the warm-up) is left out; 1.0 s then 5.05 s
    assert drift.verdict == "FAIL" and drift.value == pytest.approx(4.05)
    assert found["canary_success_pct"].value == 100.0
    assert found["latency_local_ms"].name == "API latency directly over the soak (p95)"
    assert found["latency_local_ms"].value == 4.0


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400), ("1h30m", 5400),
                                           ("1.5h", 5400), ("45", 45), (" 2 m ", 120), ("1d", 86400)])
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "h", "1h30", "-5s", "0"])
def test_a_bad_duration_is_named(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_print_for_people():
    assert (format_duration(0.42), format_duration(42), format_duration(185), format_duration(3720)) == \
        ("0.4 s", "42 s", "3 min 05 s", "1 h 02 min")
    assert clock(90061) == "25:01:01"


def test_a_write_after_the_end_is_dropped_not_raised(tmp_path):
    store = SampleStore(tmp_path / "samples.sqlite", create=True)
    store.add_canary(1.0, True, 0.5, 0.6)
    store.close()
    store.add_canary(2.0, True, 0.5, 0.6)  # a canary that finished after the soak ended
    with SampleStore(tmp_path / "samples.sqlite") as again:
        assert [c[0] for c in again.canaries()] == [1.0]


def test_a_file_that_is_not_a_samples_file_is_named(tmp_path):
    from comfycheck.soak.samples import SampleFileError
    bad = tmp_path / "notes.sqlite"
    bad.write_text("hello")
    with pytest.raises(SampleFileError, match=str(bad)):
        SampleStore(bad)
    with pytest.raises(SampleFileError, match="no such samples file"):
        SampleStore(tmp_path / "missing.sqlite")


def test_a_process_still_warming_up_is_not_a_leak():
    # +1.5 MB over the first 12 s (caches filling after a restart), flat after: no growth to speak of
    warming = [(float(t), 60.0 + 1.5 * min(t, 12) / 12) for t in range(75)]
    slope, _ = growth_per_hour(warming)
    assert slope is not None and abs(slope) < 1.0


def test_a_websocket_closed_during_an_outage_is_part_of_the_outage_not_a_drop(store):
    fill(store, "." * 20 + "bbbb" + "." * 20)
    store.add_event(1021.5, "ws_drop", 1.0, "closed")  # the server went away
    store.add_event(1035.0, "ws_drop", 2.0, "closed")  # the service answering: the proxy's doing
    j = judge(store, DEFAULT_TARGETS)
    drops = {m.key: m for m in j.measurements}["websocket_drops"]
    assert (drops.value, drops.details["outage_closes"]) == (1, 1) and j.outage_closes == {1021.5}


def test_latency_leaves_out_the_rounds_of_the_soaks_own_canary(store):
    for i in range(100):  # 2 ms, but 300 ms in the second after each canary (ComfyUI's gc.collect() after a prompt)
        store.add_tick(Tick(1000.0 + i, True, direct_ms=300.0 if i % 10 == 1 else 2.0, public_ms=3.0))
    for i in range(0, 100, 10):
        store.add_canary(1000.0 + i + 0.5, True, 0.2, 0.4)
    latency = {m.key: m for m in judge(store, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert latency.value == 2.0 and "(10 during the soak's own canary and 0 on a busy host left out)" \
        in latency.note


def test_latency_timed_while_other_work_saturated_this_host_is_told_apart(store):
    """A round timed while other programs kept every CPU of the measuring host busy times the wait for a CPU
    here: it is left out of the target and told in a figure of its own."""
    for i in range(100):  # 2 ms; 40 ms in the rounds when the host was saturated by other work
        busy = i % 5 == 0
        store.add_tick(Tick(1000.0 + i, True, direct_ms=40.0 if busy else 2.0, public_ms=3.0,
                            host_busy=0.97 if busy else 0.3))
    found = judge(store, DEFAULT_TARGETS).measurements
    latency = {m.key: m for m in found}["latency_local_ms"]
    assert (latency.value, latency.verdict) == (2.0, "pass"), latency
    assert "and 20 on a busy host left out" in latency.note
    (saturated,) = [m for m in found if m.name == "API latency directly while this host was busy (p95)"]
    assert saturated.value == 40.0 and saturated.target is None and "20 rounds" in saturated.note


def test_latency_with_every_round_on_a_saturated_host_is_not_assessed(store):
    for i in range(30):
        store.add_tick(Tick(1000.0 + i, True, direct_ms=40.0, public_ms=45.0, host_busy=0.95))
    latency = {m.key: m for m in judge(store, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert latency.verdict == "not assessed" and "0 answered probe(s) timed on a calm host (at least 10 wanted), " \
        "30 while this host was busy with other work" in latency.not_assessed


def test_a_few_calm_rounds_among_busy_ones_are_not_a_p95(store):
    """Rounds whose average share passes half of the CPUs are busy ones (their probes met every CPU taken); the
    slowest of a handful of calm rounds left between them is not judged as a p95."""
    for i in range(60):  # 9 calm rounds, the slowest 30 ms; 51 rounds with other work on 60 % of the CPUs
        calm = i % 6 == 0 and i < 54
        store.add_tick(Tick(1000.0 + i, True, direct_ms=(30.0 if i == 0 else 2.0) if calm else 25.0,
                            host_busy=0.3 if calm else 0.6))
    latency = {m.key: m for m in judge(store, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert latency.verdict == "not assessed" and "9 answered probe(s) timed on a calm host (at least 10 wanted), " \
        "51 while this host was busy" in latency.not_assessed
    store.add_tick(Tick(1060.0, True, direct_ms=2.0, host_busy=0.49))  # a tenth calm round: judged, and missed
    latency = {m.key: m for m in judge(store, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert latency.verdict == "FAIL" and float(latency.value or 0) > 20, latency


def test_a_short_soak_on_a_calm_host_is_judged_on_its_few_rounds(store):
    for i in range(5):
        store.add_tick(Tick(1000.0 + i, True, direct_ms=3.0, host_busy=0.1))
    latency = {m.key: m for m in judge(store, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert (latency.value, latency.verdict) == (3.0, "pass"), latency


def test_a_samples_file_from_before_the_host_column_is_read_and_judged(tmp_path):
    path = tmp_path / "old.sqlite"
    with SampleStore(path, create=True) as s:
        s.set_meta(interval_s=1.0, websocket_idle_s=5.0, process_watched=False)
        for i in range(10):
            s.add_tick(Tick(1000.0 + i, True, direct_ms=2.0))
    with sqlite3.connect(path) as db:  # the ticks table as soaks wrote it before host_busy
        db.execute("ALTER TABLE ticks DROP COLUMN host_busy")
    with SampleStore(path) as s:
        latency = {m.key: m for m in judge(s, DEFAULT_TARGETS).measurements}["latency_local_ms"]
    assert latency.value == 2.0 and latency.verdict == "pass"
