"""The soak's main loop: one round of probes per interval, each round streamed to the samples file, a live line
on the terminal, and at the end (the duration, Ctrl-C or SIGTERM) the judgement, the report and the history."""
from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..comfy.client import ComfyClient, ComfyError
from ..comfy.system_stats import gpu_devices
from ..comfy.workflows import check_preflight, generation_workflow, load_workflow
from ..config.duration import clock, format_duration
from ..config.hosts import is_loopback
from ..config.profile import Profile
from ..history import versions
from ..history.keeping import keep
from ..judge.measurements import FAIL, overall_verdict, write_json
from ..polling import DeadlineExceeded, wait_until
from ..probes.gpu import NvmlSource, SystemStatsSource, sampled_card
from ..probes.gpu_choice import choose_source
from ..probes.host import HostCpu
from .judge import Judgement, judge
from .probes import Canary, HeldWebSocket, ProcessWatch
from .report import write_report
from .samples import SampleFileError, SampleStore, Tick

GC_TIMER_S = 10.0  # ComfyUI's prompt worker collects garbage at most this often after prompts (main.py)


@dataclass
class SoakPlan:
    duration_s: float
    interval_s: float
    probe_timeout_s: float
    canary_every_s: float  # 0: none
    canary: str  # "smoke" or "generation"


class Soak:
    def __init__(self, profile: Profile, out: Path, plan: SoakPlan, *, history: Path | None, live=sys.stderr):
        self.profile = profile
        self.out = out
        self.plan = plan
        self.history = history
        self.live = live
        self.stop = threading.Event()
        self.stopped_by = "the duration"
        self.websocket_idle_s = profile.targets["websocket_idle_s"].threshold  # public.websocket_idle_s
        timeout = plan.probe_timeout_s
        self.direct = ComfyClient.from_profile(profile, timeout=timeout)
        self.public = ComfyClient.from_profile(profile, public=True, timeout=timeout) if profile.public else None
        # prepare() opens these: the samples file, the GPU's source, the page's WebSocket
        self.store: SampleStore
        self.gpu: NvmlSource | SystemStatsSource
        self.ws: HeldWebSocket
        self.process: ProcessWatch | None = None  # only where ComfyUI runs on this host
        self.host = HostCpu()  # whether a round's latency was timed on a busy host
        self.canary: Canary | None = None  # only with a canary
        self.system_stats: dict = {}
        self.notes: list[str] = []
        # running figures for the live line (nothing here grows with the duration)
        self.rounds = self.down_rounds = self.outages = 0
        self._was_down = False
        self._canary_failures_seen = 0

    # --- before ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything that can fail fast: both addresses answer, the canary's workflow runs here."""
        self.system_stats = self.direct.system_stats()
        if self.public:
            self.public.system_stats()
        workflow = self._canary_workflow() if self.plan.canary_every_s > 0 else None
        if (self.out / "samples.sqlite").exists():
            raise SampleFileError(f"{self.out / 'samples.sqlite'} already holds a soak's samples: give another --out "
                                  "(python -m comfycheck.soak report rebuilds that soak's report)")
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = SampleStore(self.out / "samples.sqlite", create=True)
        choice = choose_source(self.profile, self.direct)
        self.gpu, self.notes = choice.source, list(choice.notes)
        if workflow is not None and self.plan.canary_every_s < GC_TIMER_S:
            self.notes.append(f"a canary every {self.plan.canary_every_s:g} s keeps ComfyUI's {GC_TIMER_S:g}-s garbage "
                              "collection timer running: its stalls (up to a few hundred ms) fall outside the "
                              "canary's shadow and show in the latency")
        self._sample_gpu(Tick(time.time(), True), self.system_stats)  # names the device before the first round
        if is_loopback(self.profile.comfyui.url):
            self.process = ProcessWatch(urlsplit(self.profile.comfyui.url).port or 80)
        on_gpu = isinstance(self.gpu, NvmlSource) or bool(gpu_devices(self.system_stats))
        pub = self.profile.public
        self.store.set_meta(
            profile=self.profile.name, profile_path=str(self.profile.path), started=_now_iso(), start_t=time.time(),
            duration_s=self.plan.duration_s, interval_s=self.plan.interval_s,
            probe_timeout_s=self.plan.probe_timeout_s, canary_every_s=self.plan.canary_every_s,
            canary=self.plan.canary if workflow else "", comfyui_url=self.profile.comfyui.url,
            public_url=pub.url if pub else "", websocket_idle_s=self.websocket_idle_s,
            gpu_source=self.gpu.name, gpu_device=getattr(self.gpu, "device", ""), device_match=choice.device_match,
            on_gpu=on_gpu, process_watched=self.process is not None, notes=self.notes,
            versions=versions.of_run(self.system_stats, gpu=sampled_card(self.gpu)),
            targets={k: [v.threshold, v.op, v.unit, v.label] for k, v in self.profile.targets.items()})
        origin = pub.origin if pub else None  # what the page's browser sends
        ws_client = ComfyClient.from_profile(self.profile, public=bool(pub), origin=origin,
                                             timeout=self.plan.probe_timeout_s)
        self.ws = HeldWebSocket(ws_client, self.store, self.stop, required_silence_s=self.websocket_idle_s,
                                retry_s=min(1.0, self.plan.interval_s)).start()
        try:  # the page's WebSocket must open at the start: a proxy that refuses upgrades is no outage to time
            wait_until(lambda: self.ws.up, timeout=2 * self.plan.probe_timeout_s, interval=0.05,
                       what=f"the WebSocket {ws_client.ws_url('soak')} opening")
        except DeadlineExceeded as exc:
            self.stop.set()
            last = self.store.events("ws_unreachable")
            raise ComfyError(f"{exc}" + (f": {last[-1][3]}" if last else "")) from None
        if workflow is not None:
            canary_client = ComfyClient.from_profile(self.profile, public=bool(pub), origin=origin)
            self.canary = Canary(canary_client, workflow, self.store, self.stop, every_s=self.plan.canary_every_s,
                                 timeout_s=self.profile.comfyui.generation_timeout_s).start()

    def _canary_workflow(self) -> dict:
        c = self.profile.comfyui
        if self.plan.canary == "generation":
            return generation_workflow(self.direct, self.profile)
        workflow = load_workflow(self.profile.workflow_path(c.smoke_workflow))
        check_preflight(workflow, self.direct.object_info(), c.smoke_workflow)
        return workflow

    # --- during ---------------------------------------------------------------------------------
    def run(self) -> Judgement:
        start = time.monotonic()
        end = start + self.plan.duration_s
        next_at = start
        try:
            while not self.stop.is_set() and time.monotonic() < end:
                self.store.add_tick(self.round())
                self._live(time.monotonic() - start)
                next_at = max(next_at + self.plan.interval_s, time.monotonic())  # a slow round: no burst after
                self.stop.wait(max(0.0, min(next_at, end) - time.monotonic()))
        finally:
            self.stop.set()
            self._live(time.monotonic() - start, final=True)
        return self.finish()

    def round(self) -> Tick:
        tick = Tick(t=time.time(), up=True)
        failed: list[str] = []
        stats = None
        try:
            t0 = time.perf_counter()
            stats = self.direct.system_stats()
            tick.direct_ms = (time.perf_counter() - t0) * 1000
            q = self.direct.queue()
            tick.queue = len(q.get("queue_running", [])) + len(q.get("queue_pending", []))
        except ComfyError as exc:
            failed.append("backend")
            tick.error = str(exc)
        if self.public:
            try:
                tick.public_ms = self.public.timed_get("/system_stats") * 1000
            except ComfyError as exc:
                failed.append("proxy")
                tick.error = tick.error or str(exc)
        tick.ws_up = self.ws.up
        if not self.ws.up:
            failed.append("websocket")
        if self.canary and self.canary.failed > self._canary_failures_seen:
            self._canary_failures_seen = self.canary.failed
            failed.append("canary")
        self._sample_gpu(tick, stats)
        if self.process:
            restarts = self.process.restarts
            tick.pid, tick.rss, tick.cpu_pct = self.process.sample()
            if self.process.restarts > restarts:
                self.store.add_event(tick.t, "restart", None, f"new process pid {tick.pid}")
        tick.host_busy = self.host.busy_share(comfyui_cpu_pct=tick.cpu_pct)
        tick.failed = ",".join(failed)
        tick.up = not failed
        self.rounds += 1
        self.down_rounds += not tick.up
        self.outages += (not tick.up) and not self._was_down
        self._was_down = not tick.up
        return tick

    def _sample_gpu(self, tick: Tick, stats: dict | None) -> None:
        try:
            s = self.gpu.sample() if isinstance(self.gpu, NvmlSource) else (self.gpu.parse(stats) if stats else None)
        except Exception:  # noqa: BLE001 - a missed GPU sample is a gap in the chart, not an outage
            return
        if s is not None:
            tick.vram_used, tick.vram_total, tick.temp_c = s.mem_used_bytes, s.mem_total_bytes, s.temp_c

    def _live(self, elapsed: float, final: bool = False) -> None:
        if self.live is None:
            return
        tty = self.live.isatty()
        every = max(10.0, min(300.0, self.plan.duration_s / 20))
        if not tty and not final and int(elapsed / every) == int((elapsed - self.plan.interval_s) / every):
            return  # a log file gets a line now and then, a terminal one line rewritten
        avail = 100.0 * (self.rounds - self.down_rounds) / self.rounds if self.rounds else 100.0
        parts = [f"soak {clock(elapsed)} / {clock(self.plan.duration_s)}", f"availability {avail:.3f} %",
                 f"outages {self.outages}", f"ws {'up' if self.ws and self.ws.up else 'DOWN'} "
                 f"({self.ws.drops if self.ws else 0} early closes)"]
        if self.canary:
            last = self.canary.last_server_s
            parts.append(f"canary {self.canary.ok}/{self.canary.ran} ok"
                         + (f", last {last:.2f} s" if last is not None and last >= 1 else
                            f", last {1000 * last:.0f} ms" if last is not None else ""))
        line = "  ".join(parts)
        if tty:
            self.live.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.live.write(line + "\n")
        self.live.flush()

    # --- after ----------------------------------------------------------------------------------
    def finish(self) -> Judgement:
        for worker in (self.ws, self.canary):
            if worker:
                worker.join(timeout=5.0)  # a canary still running after that is abandoned: its result is not kept
        self.store.set_meta(finished=_now_iso(), end_t=time.time(), stopped_by=self.stopped_by)
        self.store.close()
        return report_from_samples(self.out, history=self.history)


def report_from_samples(out: Path, *, history: Path | None, targets=None) -> Judgement:
    """Judge a samples file, write report.html and measurements.json beside it, and (where asked) keep the soak
    in the history. A soak that was killed is judged up to its last round."""
    with SampleStore(out / "samples.sqlite") as store:
        meta = store.meta()
        targets = targets or _targets_from_meta(meta)
        judgement = judge(store, targets)
        write_json(out / "measurements.json", judgement.measurements)
        write_report(out / "report.html", store, meta, judgement)
    verdict = overall_verdict(judgement.measurements)
    judgement.kept = keep(
        history, meta["profile"], "soak", started=meta["started"], finished=meta.get("finished") or _now_iso(),
        verdict="failed" if verdict == FAIL else "passed", versions=meta.get("versions", {}),
        outcomes={"rounds": judgement.availability.rounds, "outages": len(judgement.availability.outages),
                  "duration_s": round(judgement.availability.total_s, 1)},
        measurements=judgement.measurements, report=(out / "report.html").resolve())
    if judgement.kept.run_id is not None:
        judgement.notes.append(judgement.kept.line())
    return judgement


def _targets_from_meta(meta: dict):
    """The targets the soak was started with (a report rebuilt later judges by the same thresholds)."""
    from ..config.targets import DEFAULT_TARGETS
    targets = dict(DEFAULT_TARGETS)
    for key, (threshold, _op, _unit, _label) in (meta.get("targets") or {}).items():
        if key in targets:
            targets[key] = targets[key].with_threshold(threshold)
    return targets


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def describe(judgement: Judgement, out: Path) -> list[str]:
    """The end of the soak in a few lines for the terminal."""
    a = judgement.availability
    lines = [f"soak: {overall_verdict(judgement.measurements)}: {len(a.outages)} outage(s), "
             f"{format_duration(a.down_s)} down in {format_duration(a.total_s)} ({a.rounds} rounds)"]
    for m in judgement.measurements:
        if m.target is not None:
            lines.append(f"  {m.verdict:>12}  {m.name}: {m.summary()}")
    for o in a.outages[:10]:
        lines.append(f"  outage {dt.datetime.fromtimestamp(o.start).strftime('%H:%M:%S')} for "
                     f"{format_duration(o.duration_s)}: {', '.join(sorted(o.failed))}: {o.error[:160]}")
    lines += [f"  {n}" for n in judgement.notes]
    lines.append(f"soak: report {out / 'report.html'}")
    return lines
