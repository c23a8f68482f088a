"""A class run judged from its records alone (prompts.jsonl): what each student waited, whether every prompt came
back, whether the one GPU served them first come first served, how much it delivered, and how large a class it
serves within the wait the teacher accepts.

Queue wait and execution come from ComfyUI's own timestamps, so a prompt that waited behind twenty others is not
called a slow generation: execution alone is judged against generation_s (for a 512x512 generation), time to
result against [class] result_within_s."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..config.settings import ClassSettings
from ..config.targets import Target, percentile
from ..config.units import rounded
from ..judge.card import activity
from ..judge.measurements import Measurement
from .fleet import Fleet
from .records import CUT_OFF, LOST, PromptRecord, queue_ahead

TEST = "class run"


@dataclass
class Jump:
    """A prompt that started before one submitted earlier: a FIFO queue never does that."""

    ahead: PromptRecord
    passed: PromptRecord

    def describe(self) -> str:
        a, p = self.ahead, self.passed
        return (f"{a.prompt_id} ({a.student} #{a.seq}, queue number {a.number}) ran before {p.prompt_id} "
                f"({p.student} #{p.seq}, number {p.number}), submitted earlier")


def by_backend(records: list[PromptRecord]) -> dict[str, list[PromptRecord]]:
    """The records of each backend that served them (one queue each); "" gathers those found on none."""
    out: dict[str, list[PromptRecord]] = {}
    for r in records:
        out.setdefault(r.served_by, []).append(r)
    return out


def order_jumps(records: list[PromptRecord]) -> list[Jump]:
    """Each prompt that started ahead of an earlier-submitted one on its backend, with the earliest-submitted one
    it passed. Submission order is that backend's own: its create_time, then its queue number."""
    return [j for group in by_backend(records).values() for j in _jumps(group)]


def _jumps(records: list[PromptRecord]) -> list[Jump]:
    ran = sorted(((r.create_ms, r.number if r.number is not None else 0, r.start_ms, r) for r in records
                  if r.start_ms is not None and r.create_ms is not None), key=lambda x: (x[0], x[1]))
    jumps = []
    for i, (created, number, started, r) in enumerate(ran):
        passed = next((e for c, n, s, e in ran[:i] if s > started and (c, n) < (created, number)), None)
        if passed is not None:
            jumps.append(Jump(r, passed))
    return jumps


def jain_index(values: list[float]) -> float | None:
    """Jain's fairness index: 1 when every value is equal, 1/n when one takes everything."""
    if not values or not any(values):
        return None
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


@dataclass
class Capacity:
    service_s: float  # mean execution per image, by ComfyUI's timestamps
    spread_s: float  # p95 execution
    within_s: float
    prompts_each: int
    students: int
    rate_per_min: float | None = None  # a `rate` run's arrivals
    backends: int = 1  # a fleet's backends, each serving one prompt at a time

    @property
    def per_image_s(self) -> float:
        """The time the fleet takes per image, its backends working side by side."""
        return self.service_s / max(1, self.backends)

    @property
    def largest_class(self) -> int:
        """The most students, each with prompts_each prompts, whose last one gets its result within `within_s`."""
        return math.floor(self.within_s / (self.per_image_s * self.prompts_each)) if self.service_s > 0 else 0

    def describe(self) -> str:
        on = "" if self.backends == 1 else f" on each of {self.backends} backends"
        gpu = "the GPU" if self.backends == 1 else f"the {self.backends} GPUs"
        if self.rate_per_min is not None:
            can = 60 / self.per_image_s if self.service_s > 0 else 0.0
            busy = 100 * self.rate_per_min / can if can else 0.0
            return (f"at {self.service_s:.1f} s per image{on} (p95 {self.spread_s:.1f} s) {gpu} take"
                    f"{'s' if self.backends == 1 else ''} {can:.1f} prompts a minute; arrivals at "
                    f"{self.rate_per_min:g} a minute keep {'it' if self.backends == 1 else 'them'} {busy:.0f} % busy"
                    + ("" if busy < 100 else ": the queue grows without end") + f"; a burst class of "
                    f"{math.floor(self.within_s / self.per_image_s) if self.service_s > 0 else 0} is served within "
                    f"{_minutes(self.within_s)} (one prompt each)")
        last_wait = self.students * self.prompts_each * self.per_image_s
        each = f"{self.prompts_each} prompts each" if self.prompts_each > 1 else "one prompt each"
        return (f"at {self.service_s:.1f} s per image{on} (p95 {self.spread_s:.1f} s), a class of "
                f"{self.largest_class} is served within {_minutes(self.within_s)} ({each}); {self.students} "
                f"students wait up to {_minutes(last_wait)}")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def judge(records: list[PromptRecord], targets: dict[str, Target], settings: ClassSettings, *, requested: int,
          ran: tuple[str, bool], fleet: Fleet | None = None) -> tuple[list[Measurement], Capacity | None]:
    """The class run's figures against the targets, and its capacity line (None without a finished prompt)."""
    fleet = fleet or Fleet(sorted({r.served_by for r in records if r.served_by}) or [""])
    label, is_512 = ran
    ok = [r for r in records if r.ok]
    results = [r.result_s for r in ok if r.result_s is not None]
    within = sum(1 for r in ok if r.result_s is not None and r.result_s <= settings.result_within_s)
    lost = [r for r in records if r.status == LOST]
    cut = [r for r in records if r.status == CUT_OFF]  # not lost: the run stopped waiting for them
    failed = [r for r in records if not r.ok and r.status not in (LOST, CUT_OFF)]
    missing = requested - len(records)  # never submitted: the run stopped (time limit) before their turn
    waits = [r.queue_wait_s for r in ok if r.queue_wait_s is not None]
    execs = [r.execution_s for r in ok if r.execution_s is not None]
    t = targets
    rows = [
        _judged(t["class_goodput_pct"], 100 * within / requested if requested else None,
                f"{within} of {requested} prompts within {settings.result_within_s:g} s (submit -> image downloaded)",
                fix="the GPU cannot serve this class within the accepted wait: see the capacity line"),
        _judged(t["class_failures"], len(failed), "; ".join(f"{r.student} #{r.seq} {r.prompt_id}: {r.error}"
                                                           for r in failed[:5]) or "none"),
        _judged(t["class_lost_prompts"], len(lost),
                "; ".join(f"{r.student} #{r.seq} {r.prompt_id or '(no id)'}: {r.error}" for r in lost[:5]) or "none"),
        _judged(t["class_ws_drops"], sum(r.ws_dropped for r in records),
                "a student's socket closed under a waiting prompt",
                fix="the proxy closes idle WebSockets while prompts wait in the queue: raise its read timeout "
                    "(nginx proxy_read_timeout, IIS ARR's proxy timeout) above the longest queue wait"),
    ]
    if cut or missing:
        told = [f"{len(cut)} still queued or running on ComfyUI (not lost): "
                + "; ".join(f"{r.student} #{r.seq} {r.prompt_id}: {r.error}" for r in cut[:3])] if cut else []
        told += [f"{missing} never submitted before the run stopped"] if missing else []
        rows.append(_info("prompts the run stopped waiting for", len(cut) + missing, "prompts", "; ".join(told)))
    jumps = order_jumps(ok)
    rows.append(_judged(t["class_order_inversions"], len(jumps), "; ".join(j.describe() for j in jumps[:5]) or
                        "every prompt started in the order it was submitted",
                        fix="the queue is not first come, first served: a client sent `front`, or the server "
                            "reorders its queue"))
    rows += _spread("time to result", results, "submit -> output downloaded, as each student waits")
    rows += _spread("queue wait", waits, "ComfyUI's create_time -> execution_start")
    ahead = {k: v for group in by_backend(records).values() for k, v in queue_ahead(group).items()}
    if ahead:
        rows.append(_info("most prompts ahead at submit", max(ahead.values()), "prompts", "the class's own prompts "
                          "queued or running before it when ComfyUI took it (its numbers and timestamps)"))
    if is_512:
        rows.append(_judged(t["generation_s"], max(execs) if execs else None,
                            "slowest execution (ComfyUI's execution_start -> success), queue wait apart"))
    else:
        rows += _spread(f"execution of {label}", execs, "ComfyUI's execution_start -> success, queue wait apart")
    if fleet.several:
        rows += fleet_rows(records, fleet, t["class_backends_failing"])
    span = None if fleet.several else _makespan(ok)  # each backend's own clock: per backend, above
    if span:
        rows.append(_info("throughput", 60 * len(ok) / span, "images/min", "successful prompts per minute of the "
                          "run's makespan (first create -> last end, ComfyUI's clock)"))
        rows.append(_info("GPU busy share", 100 * sum(execs) / span, "%", "sum of executions / makespan"))
    per_student: dict[str, float] = {}
    for r in ok:
        per_student[r.student] = per_student.get(r.student, 0.0) + (r.queue_wait_s or 0.0)
    fairness = jain_index(list(per_student.values()))
    if fairness is not None:
        rows.append(_info("Jain's fairness index of the students' total queue waits", fairness, "",
                          "1: every student waited as long; a burst served FIFO is fair and still below 1"))
    lags = [r.submitted_at - r.arrived_at for r in records if r.arrived_at is not None and r.submitted_at is not None]
    if lags:
        rows.append(_info("arrival to submit (p95)", percentile(lags, 95), "s", "a prompt that arrived while every "
                          "student was busy waits for a free one: raise [class] students if this grows"))
    overheads = [r.overhead_ms for r in ok if r.overhead_ms is not None]
    if overheads:
        rows.append(_info("client overhead (p95)", percentile(overheads, 95), "ms",
                          "time to result minus ComfyUI's create -> terminal and the download"))
        parts = [r.overhead_parts_ms for r in ok if r.overhead_parts_ms is not None]
        if parts:
            pre, delivery, after = (percentile([p[i] for p in parts], 95) for i in range(3))
            rows.append(_info("client overhead by part (p95 of each)", f"submit -> create_time {pre:.0f} ms; "
                              f"ComfyUI's end -> socket {delivery:.0f} ms; end received -> download {after:.0f} ms",
                              "", "the way in (POSTs queued in the server), the server's delivery of the end (a "
                                  "busy event loop, its gc between prompts), the client's own step"))
    agree = [abs(r.client_queue_wait_s - r.queue_wait_s) * 1000 for r in ok
             if r.client_queue_wait_s is not None and r.queue_wait_s is not None]
    if agree:
        rows.append(_info("queue wait, client against ComfyUI's timestamps (p95 difference)", percentile(agree, 95),
                          "ms", "POST answered -> execution_start received, against create_time -> execution_start"))
    capacity = None
    if execs:
        rate = settings.shape == "rate"
        capacity = Capacity(statistics.mean(execs), percentile(execs, 95), settings.result_within_s,
                            1 if rate else settings.prompts_each, settings.students,
                            settings.rate_per_min if rate else None, backends=len(fleet.backends))
        rows.append(_info("capacity", capacity.describe(), "", "from the measured service time"))
    return rows, capacity


def fleet_rows(records: list[PromptRecord], fleet: Fleet, target: Target) -> list[Measurement]:
    """Each backend's share, from its own timestamps, and the backends that failed, stalled or went away."""
    groups = by_backend(records)
    rows: list[Measurement] = []
    failing: dict[str, str] = {}
    for url in fleet.backends:
        mine = groups.get(url, [])
        ok = [r for r in mine if r.ok]
        lost = sum(r.status == LOST for r in mine)
        cut = sum(r.status == CUT_OFF for r in mine)
        failed = len(mine) - len(ok) - lost - cut
        stalled = cut if cut and not ok else 0  # it returned none: its queue stood still while the others served
        if lost or failed or stalled or url in fleet.down:
            why = [f"{lost} lost" if lost else "", f"{failed} failed" if failed else "",
                   f"{stalled} still queued or running when the run stopped (it returned none)" if stalled else "",
                   f"not answering at the end ({fleet.down[url]})" if url in fleet.down else ""]
            failing[url] = f"{len(ok)} of {len(mine)} prompts back; " + ", ".join(w for w in why if w)
        waits = [r.queue_wait_s for r in ok if r.queue_wait_s is not None]
        execs = [r.execution_s for r in ok if r.execution_s is not None]
        span = _makespan(ok)
        rows.append(_info(f"backend {url}: prompts back", len(ok), "prompts", f"of {len(mine)} it was given"))
        if waits:
            rows.append(_info(f"backend {url}: queue wait p95", percentile(waits, 95), "s", "its own timestamps"))
        if execs:
            rows.append(_info(f"backend {url}: execution p50", statistics.median(execs), "s", "its own timestamps"))
        if span:
            rows.append(_info(f"backend {url}: throughput", 60 * len(ok) / span, "images/min",
                              "its first create -> its last end"))
            rows.append(_info(f"backend {url}: GPU busy share", 100 * sum(execs) / span, "%",
                              "its executions / its makespan"))
    notes = [f"{url}: {why}" for url, why in failing.items()]
    unplaced = [r for r in groups.get("", []) if r.prompt_id]  # taken by a backend, which no longer holds it
    if unplaced:
        notes.append(f"{len(unplaced)} prompts found on no backend (a backend that went down or restarted loses "
                     "its queue and history)")
    rows.insert(0, _judged(target, len(failing), "; ".join(notes) or f"all {len(fleet.backends)} backends served "
                           "their prompts", fix="see that backend's log; the balancer must send its students to "
                                                "the others"))
    ends = [r.downloaded_at for r in records if r.ok and r.downloaded_at]
    starts = [r.submitted_at for r in records if r.submitted_at]
    if ends and starts and max(ends) > min(starts):
        rows.append(_info("fleet throughput", 60 * len(ends) / (max(ends) - min(starts)), "images/min",
                          f"all {len(fleet.backends)} backends: first submit -> last image downloaded (client clock)"))
    return rows


def _makespan(ok: list[PromptRecord]) -> float | None:
    starts = [r.create_ms for r in ok if r.create_ms is not None]
    ends = [r.end_ms for r in ok if r.end_ms is not None]
    return (max(ends) - min(starts)) / 1000 if starts and ends and max(ends) > min(starts) else None


def _spread(name: str, values: list[float], what: str) -> list[Measurement]:
    if not values:
        return [Measurement(name, None, "s", None, TEST, {"note": what}, not_assessed="no prompt finished")]
    return [_info(f"{name} p50", statistics.median(values), "s", what),
            _info(f"{name} p95", percentile(values, 95), "s", what),
            _info(f"{name} max", max(values), "s", what)]


def _info(name: str, value: float | int | str, unit: str, what: str) -> Measurement:
    if isinstance(value, float):
        value = rounded(value, unit)
    return Measurement(name, value, unit, None, TEST, {"note": what})


def _judged(target: Target, value: float | None, what: str, fix: str = "") -> Measurement:
    if value is None:
        return Measurement(target.label, None, target.unit, target, TEST, {"note": what}, not_assessed="nothing ran")
    m = Measurement(target.label, float(value), target.unit, target, TEST, {"note": what})
    if not target.met_by(m.value):  # type: ignore[arg-type]
        m.fix = f"{what}: {fix}" if fix else what
    return m


def what_bounds(rows: list[Measurement], samples: list[dict], window: tuple[float, float] | None) -> str:
    """Which bounds the class, the card or ComfyUI's server side, from the busy share (ComfyUI's own timestamps)
    set beside the card's utilisation and power through NVML while the class ran; the figures join `rows`."""
    card = activity(samples, [window] if window else None)
    if not card.util_pct:
        return ("what bounds the class is not told here: no GPU utilisation (NVML does not see ComfyUI's card; "
                "/system_stats has no such figure)")
    rows += card.rows("while the class ran", TEST)
    mean, p95 = card.mean_util, card.p95_util
    busy = next((m.value for m in rows if m.name == "GPU busy share"), None)
    if not isinstance(busy, int | float):
        return f"the GPU was {mean:.0f} % utilised on average (p95 {p95:.0f} %)"
    if busy < 80:
        return (f"the arrivals bound the class: ComfyUI was busy only {busy:.0f} % of the run (GPU {mean:.0f} % "
                "utilised): it can take more")
    if p95 >= 70:
        return (f"the card bounds the class: ComfyUI was busy {busy:.0f} % of the run and the GPU {mean:.0f} % "
                f"utilised (p95 {p95:.0f} %): a faster card, or another backend, serves more students")
    return (f"ComfyUI's server side bounds the class, not the card: ComfyUI was busy {busy:.0f} % of the run while "
            f"the GPU was at most {p95:.0f} % utilised (p95; mean {mean:.0f} %): per-prompt work outside the card's "
            "kernels sets the pace; another backend serves more students, a faster card would not")
