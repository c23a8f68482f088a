"""A soak's samples judged on the targets: availability and its outages, latency percentiles, WebSocket drops,
the canary, memory growth per hour, peak temperature. Everything is read back from the samples file, so the
judgement of a soak that was killed can be made afterwards, and it is the same judgement."""
from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field

from .. import hints
from ..config.duration import format_duration
from ..config.targets import Target, fmt, percentile
from ..config.units import GB, MB
from ..history.keeping import Kept
from ..judge.measurements import Measurement
from ..probes.host import busy_round
from .samples import SampleStore

GROWTH_WINDOWS = 12  # the memory floor is taken in this many windows; their slope is the growth
MIN_GROWTH_SPAN_S = 60.0
WARMUP_SHARE = 0.1
# Latency is the users' view of the API under their load, not the soak's: rounds while the soak's own canary runs,
# and the second after it, are left out. After a prompt ComfyUI's worker runs gc.collect() (at most every 10 s,
# main.py prompt_worker) and, holding the GIL, stalls the API for up to a few hundred ms on a large heap: seen on
# real ComfyUI as a 265 ms p95 under a canary every 5 s, probes and canary starting together
CANARY_SHADOW_S = 1.0
# A p95 of a handful of rounds is their slowest one: where other work kept this host busy in the others, too few
# calm rounds are not judged (a soak on a calm host is judged on every round, however short)
MIN_CALM_ROUNDS = 10


@dataclass
class Outage:
    """A run of consecutive rounds in which something failed, from the first failed round to the next good one."""

    start: float
    end: float
    failed: set[str] = field(default_factory=set)
    error: str = ""  # the first failure's message
    rounds: int = 0
    ongoing: bool = False  # the soak ended before the service came back

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "duration_s": round(self.duration_s, 3),
                "failed": sorted(self.failed), "error": self.error, "rounds": self.rounds, "ongoing": self.ongoing}


@dataclass
class Availability:
    pct: float | None
    total_s: float
    down_s: float
    rounds: int
    outages: list[Outage]


def availability(store: SampleStore, interval_s: float) -> Availability:
    """Time-weighted: each round's state holds until the next round began (the last one for one interval)."""
    total = down = 0.0
    rounds = 0
    outages: list[Outage] = []
    current: Outage | None = None
    prev: tuple | None = None
    for t, up, failed, error in store.ticks("t, up, failed, error"):
        rounds += 1
        if prev is not None:
            total, down = _credit(prev, t, total, down)
        if not up:
            if current is None:
                current = Outage(t, t, error=error or "")
                outages.append(current)
            current.failed.update(f for f in failed.split(",") if f)
            current.rounds += 1
        elif current is not None:
            current.end = t
            current = None
        prev = (t, up)
    if prev is not None:
        end = prev[0] + interval_s
        total, down = _credit(prev, end, total, down)
        if current is not None:
            current.end, current.ongoing = end, True
    pct = 100.0 * (total - down) / total if total > 0 else None
    return Availability(pct, total, down, rounds, outages)


def _credit(prev: tuple, until: float, total: float, down: float) -> tuple[float, float]:
    span = max(0.0, until - prev[0])
    return total + span, down + (0.0 if prev[1] else span)


def growth_per_hour(points: list[tuple[float, float]], windows: int = GROWTH_WINDOWS) -> tuple[float | None, str]:
    """The growth per hour of the memory floor: the lowest value in each of `windows` equal slices of time, and
    the median of the slopes between every two of them (Theil-Sen). A floor ignores the peaks of work (a
    generation's activations) and follows what is never given back (a leak); the median slope ignores a slice
    or two that are off (a process still warming up, a one-off allocation). (None, why) on too little."""
    if len(points) < 2 * windows:
        return None, f"{len(points)} samples after the warm-up; the slope needs at least {2 * windows}"
    t0, t1 = points[0][0], points[-1][0]
    if t1 - t0 < MIN_GROWTH_SPAN_S:
        return None, f"{format_duration(t1 - t0)} sampled after the warm-up; the slope needs at least " \
                     f"{format_duration(MIN_GROWTH_SPAN_S)}"
    width = (t1 - t0) / windows
    floors: dict[int, tuple[float, float]] = {}
    for t, v in points:
        i = min(windows - 1, int((t - t0) / width))
        if i not in floors or v < floors[i][1]:
            floors[i] = (t0 + (i + 0.5) * width, v)
    if len(floors) < windows // 2:
        return None, f"samples in only {len(floors)} of {windows} slices of time"
    ordered = sorted(floors.values())
    slope = statistics.median((b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(ordered) for b in ordered[i + 1:])
    return slope * 3600, f"median slope of the lowest value in {len(floors)} slices of {format_duration(width)}"


def warmup_end(first_tick: float, last_tick: float, first_canary_end: float | None) -> float:
    """Memory is judged after the warm-up: the first canary (it loads the models) and the first tenth of the soak
    (a process restarted just before the soak is still filling its caches)."""
    return max(first_canary_end or first_tick, first_tick + WARMUP_SHARE * (last_tick - first_tick))


@dataclass
class Judgement:
    measurements: list[Measurement]
    availability: Availability
    warmup_end: float | None
    notes: list[str]
    outage_closes: set[float] = field(default_factory=set)  # times of WebSocket closes that were part of an outage
    kept: Kept | None = None  # where the soak was kept in the history, or why not; None: not judged to keep yet


def judge(store: SampleStore, targets: dict[str, Target]) -> Judgement:
    meta = store.meta()
    interval = float(meta.get("interval_s", 1.0))
    notes: list[str] = []
    avail = availability(store, interval)
    m: list[Measurement] = []
    t = targets

    def add(key_or_target, value, *, note: str, none_why: str = "", fix: str = "", name: str = "", unit: str = "",
            **details):
        target = t[key_or_target] if isinstance(key_or_target, str) else key_or_target
        details["note"] = note
        if value is None:
            label, target_unit = (target.label, target.unit) if target else ("", "")
            m.append(Measurement(name or label, None, unit or target_unit, target, "soak", details,
                                 not_assessed=none_why or "not measured"))
        else:
            m.append(Measurement(name or target.label, round(float(value), 4), unit or target.unit, target, "soak",
                                 details, fix=fix))

    outage_text = (f"{len(avail.outages)} outage(s), {format_duration(avail.down_s)} down in "
                   f"{format_duration(avail.total_s)}")
    add("availability_pct", avail.pct, note=outage_text, none_why="no round of probes was recorded",
        fix="see the outage list: what failed first, and when", outages=len(avail.outages),
        down_s=round(avail.down_s, 2), span_s=round(avail.total_s, 2), rounds=avail.rounds)

    for column, key, where in (("direct_ms", "latency_local_ms", "directly"),
                               ("public_ms", "latency_proxy_ms", "through the proxy")):
        values, during, busy = _outside_canaries(store, column)
        if busy:
            add(None, percentile(busy, 95), name=f"API latency {where} while this host was busy (p95)",
                unit="ms", note=f"{len(busy)} rounds timed while other work kept this host's CPUs busy: they time "
                                "the wait for a CPU here as much as the server, and are left out of the target")
        if not values or (busy and len(values) < MIN_CALM_ROUNDS):
            if column == "public_ms" and not meta.get("public_url"):
                continue
            add(key, None, name=f"API latency {where} over the soak (p95)", note=f"GET /system_stats {where}",
                none_why="no probe answered" if not busy else
                f"not assessed: {len(values)} answered probe(s) timed on a calm host (at least {MIN_CALM_ROUNDS} "
                f"wanted), {len(busy)} while this host was busy with other work")
            continue
        p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
        # named apart from the checklist's 30-request p95 (test_backend), so the trend keeps the two series apart
        add(key, p95, name=f"API latency {where} over the soak (p95)",
            note=f"p95 of {len(values)} answered probes {where} ({during} during the soak's own canary and "
                 f"{len(busy)} on a busy host left out)",
            p50_ms=round(p50, 2),
            p99_ms=round(p99, 2), fix="a slow API under a steady trickle of requests: see the latency chart")
        for q, v in (("p50", p50), ("p99", p99)):
            add(None, v, name=f"API latency {where} over the soak ({q})", unit="ms",
                note=f"{q} of {len(values)} answered probes")

    # a close while the backend or the proxy did not answer is part of that outage (availability judges it),
    # not the proxy's idle timeout: a server that is going away is silent for as long as it takes
    margin = 2 * interval + 1.0
    closes = store.events("ws_drop") + store.events("ws_idle_close")
    in_outage = [e for e in closes if store.service_down_between(e[0] - margin, e[0] + margin)]
    drops = [e for e in store.events("ws_drop") if e not in in_outage]
    idle = [e for e in store.events("ws_idle_close") if e not in in_outage]
    reconnects = [e[2] for e in store.events("ws_reconnect") if e[2] is not None]
    required = t["websocket_idle_s"].threshold
    add("websocket_drops", len(drops), note=f"closed by the other side after less than {fmt(required)} s of silence "
        f"({len(idle)} closed after more: an idle timeout above the requirement; {len(in_outage)} during an "
        "outage)",
        fix=f"the proxy closes a silent WebSocket before public.websocket_idle_s ({fmt(required)} s): "
            f"{hints.READ_TIMEOUT}",
        silences_s=[round(e[2] or 0.0, 1) for e in drops[:20]], idle_closes=len(idle), outage_closes=len(in_outage))
    add(None, max(reconnects) if reconnects else None, name="WebSocket reconnect (longest)", unit="s",
        note=f"{len(reconnects)} reconnect(s) after a close", none_why="no reconnect was needed")

    first, last, _ = store.span()
    warmup = warmup_end(first, last, _canary_measurements(store, add))

    rss = [(t_, v / MB) for t_, v in _by_main_pid(store, "rss", warmup)]
    if meta.get("process_watched"):
        slope, how = growth_per_hour(rss)
        add("ram_growth_mb_per_h", slope, note=how, none_why=f"not assessed: {how}",
            fix="ComfyUI's process keeps memory it no longer needs (a leak): see the RSS chart; a scheduled "
                "restart is the stopgap", peak_mb=round(max(v for _, v in rss), 1) if rss else None)
    else:
        add("ram_growth_mb_per_h", None, note="ComfyUI's process RSS",
            none_why="not assessed: ComfyUI does not run on this host (no process to watch)")
    restarts = store.events("restart")
    add(None, len(restarts), name="ComfyUI restarts (a new process on its port)", unit="restarts",
        note="; ".join(e[3] for e in restarts[:5]))

    if meta.get("on_gpu", True):
        vram = [(t_, v / MB) for t_, v in store.series("vram_used", after=warmup)]
        slope, how = growth_per_hour(vram)
        add("vram_growth_mb_per_h", slope, note=how, none_why=f"not assessed: {how}",
            fix="VRAM is not given back between generations: see the VRAM chart")
        peak = store.peak("vram_used")  # the first canary's included
        add(None, peak / GB if peak is not None else None, name="peak VRAM", unit="GB",
            note=str(meta.get("gpu_device", "")))
    else:
        add("vram_growth_mb_per_h", None, note="VRAM", none_why="not assessed: ComfyUI runs on the CPU "
            "(/system_stats lists no GPU)")
    temps = store.column("temp_c")
    add("gpu_temp_load_c", max(temps) if temps else None, name="peak GPU temperature over the soak",
        note="the hottest sample of the soak", none_why="not assessed: no temperature without NVML")
    queue = store.column("queue")
    add(None, max(queue) if queue else None, name="longest queue", unit="prompts", note="running + pending")
    return Judgement(m, avail, warmup, notes, {e[0] for e in in_outage})


def _canary_measurements(store: SampleStore, add) -> float | None:
    """The canary's figures; returns when the first canary ended (the warm-up: it loads the models)."""
    canaries = store.canaries()
    if not canaries:
        why = "not assessed: no canary ran ([soak] canary_every_s = 0, or the soak ended first)"
        add("canary_success_pct", None, note="cache-busted generations", none_why=why)
        add("canary_drift_s", None, note="canary server time", none_why=why)
        return None
    ok = [c for c in canaries if c[1]]
    failures = [c for c in canaries if not c[1]]
    add("canary_success_pct", 100.0 * len(ok) / len(canaries), note=f"{len(ok)} of {len(canaries)} succeeded",
        fix="a generation failed: " + (failures[0][4][:300] if failures else ""), failures=len(failures))
    timed = [c[2] for c in canaries[1:] if c[1] and c[2] is not None]  # the first loads the models
    if len(timed) < 4:
        add("canary_drift_s", None, note="canary server time",
            none_why=f"not assessed: {len(timed)} timed canaries after the first; the drift needs 4")
    else:
        q = max(1, len(timed) // 4)
        first, last = statistics.median(timed[:q]), statistics.median(timed[-q:])
        add("canary_drift_s", last - first, note=f"median of the last {q} minus the first {q} (after the warm-up)",
            first_s=round(first, 3), last_s=round(last, 3),
            change_pct=round(100 * (last - first) / first, 1) if first else None,
            fix="generations got slower over the soak: see the canary chart")
    first_end = canaries[0][0] + canaries[0][3]
    return first_end


def _outside_canaries(store: SampleStore, column: str) -> tuple[list[float], int, list[float]]:
    """The column's values from rounds outside every canary's shadow and timed on a host not busy with other
    work; how many were left out in a shadow; and the values left out as timed on a busy host (the wait for a
    CPU on the measuring host, not the server's). One canary runs at a time, so the shadows are ordered and apart:
    a bisection finds the one a round could fall in."""
    shadows = [(t, t + wall + CANARY_SHADOW_S) for t, _, _, wall, _ in store.canaries()]
    starts = [a for a, _ in shadows]
    kept, left_out, busy = [], 0, []
    for t, v, host_busy in store.ticks(f"t, {column}, host_busy"):
        if v is None:
            continue
        i = bisect.bisect_right(starts, t) - 1
        if i >= 0 and t <= shadows[i][1]:
            left_out += 1
        elif busy_round(host_busy):
            busy.append(v)
        else:
            kept.append(v)
    return kept, left_out, busy


def _by_main_pid(store: SampleStore, column: str, after: float | None) -> list[tuple[float, float]]:
    """The series of the process that ran longest (a restart starts a fresh process: its memory with it)."""
    pid = store.longest_pid()
    return store.series(column, after=after, pid=pid) if pid is not None else []
