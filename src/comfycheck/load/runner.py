"""One load run: N consecutive generations with VRAM/temperature sampled on ComfyUI's own GPU, then judged.

Locust drives it (loadtests/locustfile.py): prepare() at test start, one_generation() per task, finish() when
Locust quits."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

from ..comfy.client import ComfyClient, ComfyError
from ..comfy.workflows import describe, generation_workflow, make_unique
from ..config.profile import Profile
from ..config.units import GB
from ..history import versions
from ..history.keeping import Kept, keep
from ..judge.card import activity
from ..judge.measurements import FAIL, overall_verdict
from ..polling import DeadlineExceeded, wait_until
from ..probes.gpu import NvmlSource, Sample, Sampler, SystemStatsSource, read_samples, sampled_card
from ..probes.gpu_choice import choose_source
from .judge import (
    CPU_NOTE,
    TEST,
    AfterFree,
    IdleBaseline,
    LoadSummary,
    PeakMemory,
    SamplerStats,
    TimingError,
    WallTimes,
    judge,
)
from .report import write_outputs
from .samples import SAMPLES_CSV, Generation


class LoadRun:
    def __init__(self, profile: Profile, out_dir: Path, *, generations: int, sample_hz: float,
                 history: Path | None = None):
        self.profile = profile
        self.history = history  # where the run is appended (kind "load"); None: not kept
        self.out = out_dir
        self.wanted = generations
        self.hz = sample_hz
        self.client = ComfyClient.from_profile(profile)
        self.workflow_name = profile.comfyui.generation_workflow
        self.workflow: dict = {}
        self.generations: list[Generation] = []
        self.notes: list[str] = []
        self.sampler: Sampler | None = None
        self.source: NvmlSource | SystemStatsSource | None = None
        self.device_match = ""
        self.gpu_map: list[dict] = []
        self.idle: IdleBaseline | None = None
        self.system_stats: dict = {}
        self.started = dt.datetime.now(dt.UTC)
        self.kept = Kept(history, "load")  # where it was kept in the history, once judged, or why not
        self.cold_taken = False  # the first generation after prepare()'s /free has been submitted

    # --- before ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.system_stats = self.client.system_stats()
        self.workflow = generation_workflow(self.client, self.profile)
        choice = choose_source(self.profile, self.client)
        self.source, self.device_match, self.gpu_map = choice.source, choice.device_match, choice.gpu_map
        self.notes += choice.notes
        self.client.free()
        self.idle = IdleBaseline.of(self._settled_sample(self.source, deadline_s=self.profile.load.settle_s))
        self.sampler = Sampler(self.source, self.out / SAMPLES_CSV, self.hz).start()

    def _settled_sample(self, source: NvmlSource | SystemStatsSource, deadline_s: float) -> Sample:
        """Sample until memory stops moving (two readings within 1 %) or the deadline; that is the baseline."""
        readings = [source.sample()]

        def settled() -> bool:
            readings.append(source.sample())
            a, b = readings[-2:]
            return abs(b.mem_used_bytes - a.mem_used_bytes) <= 0.01 * b.mem_total_bytes

        try:
            wait_until(settled, timeout=deadline_s, interval=0.2, what="VRAM settling at the idle baseline")
        except DeadlineExceeded:
            self.notes.append(f"VRAM was still moving after {deadline_s:g} s; the idle baseline is its last reading")
        return readings[-1]

    # --- during ---------------------------------------------------------------------------------
    def one_generation(self) -> Generation:
        gen_cold, self.cold_taken = not self.cold_taken, True  # the first submitted after /free runs first (FIFO)
        started, t0 = time.time(), time.perf_counter()
        try:
            result = self.client.run(make_unique(self.workflow), timeout=self.profile.comfyui.generation_timeout_s)
        except ComfyError as exc:
            gen = Generation(0, False, time.perf_counter() - t0, None, "", str(exc))
        else:
            server, execution = result.server_total_ms, result.server_execution_ms
            gen = Generation(0, result.ok, time.perf_counter() - t0, server / 1000 if server is not None else None,
                             result.prompt_id, result.failure_message(),
                             execution / 1000 if execution is not None else None)
        gen.n = len(self.generations) + 1  # in the order they ended (several users run at once with -u N)
        gen.cold, gen.started = gen_cold, started
        self.generations.append(gen)
        return gen

    # --- after ----------------------------------------------------------------------------------
    def finish(self, stopped_by: str) -> LoadSummary:
        """Judge the run, write its folder and keep it in the history (`kept`: where, or why not)."""
        assert self.source is not None and self.idle is not None and self.sampler is not None, "prepare() first"
        s = self.sampler.stop()
        after = self._after_free(self.source, self.idle)
        on_gpu = getattr(self.source, "gpu", True)  # on the CPU, the memory sampled is RAM: still reported
        idle = self.idle if on_gpu else replace(self.idle, pct=None)
        rows = judge(self.profile.targets, requested=self.wanted, generations=self.generations, idle=idle,
                     peak=s.peak, max_temp=s.max_temp, after=after, on_gpu=on_gpu,
                     ran=describe(self.workflow, self.workflow_name))
        spans = [(g.started, g.started + g.wall_s) for g in self.generations if g.started]
        samples = read_samples(self.out / SAMPLES_CSV) if (self.out / SAMPLES_CSV).is_file() else []
        rows += activity(samples, spans).rows("while generating", TEST)
        ok = sum(g.ok for g in self.generations)
        summary = LoadSummary(
            profile=self.profile.name, report_dir=str(self.out.resolve()), workflow=self.workflow_name,
            started=self.started.isoformat(timespec="seconds"),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), stopped_by=stopped_by,
            generations_requested=self.wanted, generations_ok=ok, generations_failed=len(self.generations) - ok,
            wall_s=WallTimes.of(self.generations), timing_error_ms=TimingError.of(self.generations),
            source=self.source.name, device=idle.device, device_match=self.device_match, gpu_map=self.gpu_map,
            idle=idle, on_gpu=on_gpu, peak=PeakMemory.of(s.peak), after_free=after,
            sampler=SamplerStats(self.hz, s.count, s.errors, s.last_error),
            notes=self.notes + ([CPU_NOTE] if not on_gpu else []), measurements=rows,
            versions=versions.of_run(self.system_stats, gpu=sampled_card(self.source)),
            verdict=overall_verdict(rows), errors=[g.error for g in self.generations if not g.ok][:10])
        write_outputs(self.out, summary, self.generations, self.profile.targets)
        failed = summary.verdict == FAIL or summary.generations_failed
        self.kept = keep(self.history, summary.profile, "load", started=summary.started, finished=summary.finished,
                         verdict="failed" if failed else "passed", versions=summary.versions,
                         outcomes={"generations_ok": summary.generations_ok,
                                   "generations_failed": summary.generations_failed},
                         measurements=summary.measurements, report=Path(summary.report_dir) / "index.html")
        return summary

    def _after_free(self, source: NvmlSource | SystemStatsSource, idle: IdleBaseline) -> AfterFree:
        """/free, then wait (bounded) for VRAM to come back to the idle baseline: the leak check."""
        tolerance = self.profile.targets["vram_released_gb"].threshold
        try:
            self.client.free()
        except ComfyError as exc:
            self.notes.append(f"/free after the run failed: {exc}")
        readings: list[float] = []

        def released() -> bool:
            readings.append(source.sample().mem_used_bytes / GB - idle.used_gb)
            return readings[-1] <= tolerance

        try:
            _, waited = wait_until(released, timeout=self.profile.load.settle_s, interval=0.2,
                                   what="VRAM back at the idle baseline after /free")
        except DeadlineExceeded:
            waited = self.profile.load.settle_s
        return AfterFree(round(idle.used_gb + readings[-1], 3), round(readings[-1], 3), round(waited, 2))
