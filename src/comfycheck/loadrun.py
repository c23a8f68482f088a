"""One load run: N consecutive generations with VRAM/temperature sampled on ComfyUI's own GPU, judged on targets.

Locust drives it (loadtests/locustfile.py); nothing here imports Locust, so pytest can use the same code to read
and embed the results.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import socket
import sqlite3
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .client import ComfyClient, ComfyError
from .gpu import NvmlSource, Sampler
from .gpusource import choose_source
from .polling import DeadlineExceeded, wait_until
from .profile import PROJECT_ROOT, Profile
from . import versions
from .history import History, HistoryError
from .measurements import FAIL, Measurement, overall_verdict
from .targets import Target
from .workflows import generation_workflow, make_unique

LOAD_REPORTS = PROJECT_ROOT / "reports" / "load"
GiB = 1e9  # "GB" as the documented targets (and the backend checks) count it


@dataclass
class Generation:
    n: int
    ok: bool
    wall_s: float
    server_s: float | None  # ComfyUI's own create -> terminal timestamps
    prompt_id: str
    error: str = ""


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
        self.source = None
        self.device_match = ""
        self.gpu_map: list[dict] = []
        self.idle: dict = {}
        self.system_stats: dict = {}
        self.started = dt.datetime.now(dt.timezone.utc)

    # --- before ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.system_stats = self.client.system_stats()
        self.workflow = generation_workflow(self.client, self.profile)
        self.source = self._choose_source()
        self.client.free()
        self.idle = self._settled_sample(deadline_s=self.profile.load.settle_s)
        self.sampler = Sampler(self.source, self.out / "samples.csv", self.hz).start()

    def _choose_source(self):
        choice = choose_source(self.profile, self.client)
        self.notes += choice.notes
        self.device_match = choice.device_match
        self.gpu_map = choice.gpu_map
        return choice.source

    def _settled_sample(self, deadline_s: float) -> dict:
        """Sample until memory stops moving (two readings within 1 %) or the deadline; that is the baseline."""
        readings = [self.source.sample()]

        def settled() -> bool:
            readings.append(self.source.sample())
            a, b = readings[-2:]
            return abs(b.mem_used_bytes - a.mem_used_bytes) <= 0.01 * b.mem_total_bytes

        try:
            wait_until(settled, timeout=deadline_s, interval=0.2, what="VRAM settling at the idle baseline")
        except DeadlineExceeded:
            self.notes.append(f"VRAM was still moving after {deadline_s:g} s; the idle baseline is its last reading")
        last = readings[-1]
        return {"used_gb": round(last.mem_used_bytes / GiB, 3), "pct": round(last.used_pct, 2),
                "temp_c": last.temp_c, "total_gb": round(last.mem_total_bytes / GiB, 2), "device": last.device}

    # --- during ---------------------------------------------------------------------------------
    def one_generation(self) -> Generation:
        n = len(self.generations) + 1
        t0 = time.perf_counter()
        try:
            result = self.client.run(make_unique(self.workflow), timeout=self.profile.comfyui.generation_timeout_s)
        except ComfyError as exc:
            gen = Generation(n, False, time.perf_counter() - t0, None, "", str(exc))
        else:
            server = result.server_total_ms
            gen = Generation(n, result.ok, time.perf_counter() - t0, server / 1000 if server is not None else None,
                             result.prompt_id, result.failure_message())
        self.generations.append(gen)
        return gen

    # --- after ----------------------------------------------------------------------------------
    def finish(self, stopped_by: str) -> dict:
        if self.sampler:
            self.sampler.stop()
        after = self._after_free()
        summary = self._summary(stopped_by, after)
        write_outputs(self.out, summary, self.generations)
        if self.history is not None:
            try:
                summary["history_run"] = keep_in_history(self.history, summary)
            except (HistoryError, sqlite3.Error) as exc:
                summary["history_error"] = f"the run could not be kept in {self.history}: {exc}"
        return summary

    def _after_free(self) -> dict:
        """/free, then wait (bounded) for VRAM to come back to the idle baseline: the leak check."""
        tolerance = self.profile.targets["vram_released_gb"].threshold
        try:
            self.client.free()
        except ComfyError as exc:
            self.notes.append(f"/free after the run failed: {exc}")
        readings = []

        def released() -> bool:
            readings.append(self.source.sample().mem_used_bytes / GiB - self.idle["used_gb"])
            return readings[-1] <= tolerance

        try:
            _, waited = wait_until(released, timeout=self.profile.load.settle_s, interval=0.2,
                                   what="VRAM back at the idle baseline after /free")
        except DeadlineExceeded:
            waited = self.profile.load.settle_s
        return {"used_gb": round(self.idle["used_gb"] + readings[-1], 3), "delta_gb": round(readings[-1], 3),
                "waited_s": round(waited, 2)}

    def _summary(self, stopped_by: str, after: dict) -> dict:
        gens = self.generations
        ok = [g for g in gens if g.ok]
        walls = [g.wall_s for g in ok]
        errors_ms = [(g.wall_s - g.server_s) * 1000 for g in ok if g.server_s is not None]
        s = self.sampler
        peak = s.peak if s else None
        t = self.profile.targets
        on_gpu = getattr(self.source, "gpu", True)
        if not on_gpu:  # memory is still sampled and reported (idle, peak, after /free), but it is RAM, not VRAM
            peak = None
            self.idle = {**self.idle, "pct": None}
            self.notes.append("ComfyUI runs on the CPU (/system_stats lists no GPU): the VRAM targets are not "
                              "assessed; the memory figures are the cpu device's")
        no_gpu = "not assessed: ComfyUI runs on the CPU (/system_stats lists no GPU)"
        streak, needed = _longest_streak(gens), t["consecutive_generations"].threshold
        short = self.wanted < needed and len(ok) == len(gens)  # a try-out run; a failure still fails it
        rows = [
            _row(t["consecutive_generations"], None if short else streak,
                 f"longest run of successes; {len(ok)} of {len(gens)} succeeded ({self.wanted} requested)",
                 none_why=f"not assessed: {self.wanted} requested, the target needs {needed:g}; "
                          f"{len(ok)} of {len(gens)} succeeded"),
            _row(t["generation_s"], max(walls) if walls else None, "slowest successful generation (wall time)"),
            _row(t["generation_time_cv_pct"],
                 100 * statistics.pstdev(walls) / statistics.mean(walls) if len(walls) >= 2 else None,
                 "stability: standard deviation / mean of the wall times"),
            _row(t["vram_generation_pct"], peak.used_pct if peak else None, "peak VRAM during the run",
                 none_why=no_gpu if not on_gpu else "not measured"),
            _row(t["vram_generation_gb"], peak.mem_used_bytes / GiB if peak else None, "peak VRAM during the run",
                 none_why=no_gpu if not on_gpu else "not measured"),
            _row(t["vram_idle_pct"], self.idle.get("pct"), "idle baseline after /free, before the run",
                 none_why=no_gpu if not on_gpu else "not measured"),
            _row(t["vram_released_gb"], after["delta_gb"] if on_gpu else None,
                 "VRAM above the idle baseline after the run and /free", none_why=no_gpu),
            _row(t["gpu_temp_idle_c"], self.idle.get("temp_c"), "temperature at the idle baseline",
                 none_why="not assessed: no temperature without NVML"),
            _row(t["gpu_temp_load_c"], s.max_temp if s else None, "highest temperature during the run",
                 none_why="not assessed: no temperature without NVML"),
        ]
        verdict = overall_verdict(rows)
        return {
            "profile": self.profile.name,
            "report_dir": str(self.out.resolve()),
            "workflow": self.workflow_name,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "stopped_by": stopped_by,
            "generations_requested": self.wanted,
            "generations_ok": len(ok),
            "generations_failed": len(gens) - len(ok),
            "wall_s": {"mean": _r(statistics.mean(walls)) if walls else None,
                       "median": _r(statistics.median(walls)) if walls else None,
                       "max": _r(max(walls)) if walls else None},
            "timing_error_ms": {"median": _r(statistics.median(errors_ms)) if errors_ms else None,
                                "max": _r(max(errors_ms)) if errors_ms else None,
                                "what": "client wall time minus ComfyUI's create->terminal timestamps"},
            "source": self.source.name if self.source else None,
            "device": self.idle.get("device"),
            "device_match": self.device_match,
            "gpu_map": self.gpu_map,
            "idle": self.idle,
            "on_gpu": on_gpu,
            "peak": {"used_gb": _r(s.peak.mem_used_bytes / GiB) if s and s.peak else None,
                     "pct": _r(s.peak.used_pct) if s and s.peak else None},
            "after_free": after,
            "sampler": {"hz": self.hz, "samples": s.count if s else 0, "errors": s.errors if s else 0,
                        "last_error": s.last_error if s else ""},
            "notes": self.notes,
            "measurements": [m.as_dict() for m in rows],
            "versions": {**versions.from_system_stats(self.system_stats),
                         **({"gpu": self.source.gpu.name} if isinstance(self.source, NvmlSource) else {}),
                         "comfycheck": versions.comfycheck()},
            "verdict": verdict,
            "errors": [g.error for g in gens if not g.ok][:10],
        }


def keep_in_history(path: Path, summary: dict) -> int:
    """The load run as a run of kind "load" in the history."""
    failed = summary["verdict"] == FAIL or summary["generations_failed"]
    with History(path) as history:
        return history.append(
            summary["profile"], "load", started=summary["started"], finished=summary["finished"],
            verdict="failed" if failed else "passed", versions=summary["versions"],
            outcomes={"generations_ok": summary["generations_ok"], "generations_failed": summary["generations_failed"]},
            measurements=[Measurement.from_dict(d) for d in summary["measurements"]],
            report=str(Path(summary["report_dir"]) / "index.html"), host=socket.gethostname())


def _longest_streak(gens: list[Generation]) -> int:
    best = run = 0
    for g in gens:
        run = run + 1 if g.ok else 0
        best = max(best, run)
    return best


def _r(v: float | None, nd: int = 3):
    return None if v is None else round(v, nd)


def _row(target: Target, value, what: str, none_why: str = "not measured") -> Measurement:
    if value is None:
        return Measurement(target.label, None, target.unit, target, "load run", {"note": what}, not_assessed=none_why)
    return Measurement(target.label, round(float(value), 3), target.unit, target, "load run", {"note": what})


# --- files ----------------------------------------------------------------------------------------
def write_outputs(out: Path, summary: dict, generations: list[Generation]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    with open(out / "generations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(Generation.__dataclass_fields__))
        w.writeheader()
        for g in generations:
            w.writerow(asdict(g))
    plots(out, summary, generations)
    (out / "index.html").write_text(summary_html(summary))


def plots(out: Path, summary: dict, generations: list[Generation]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .gpu import read_samples

    samples = read_samples(out / "samples.csv") if (out / "samples.csv").is_file() else []
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    if samples:
        t0 = float(samples[0]["t"])
        xs = [float(s["t"]) - t0 for s in samples]
        ax.plot(xs, [int(s["mem_used_bytes"]) / GiB for s in samples], color="#3367d6", label="VRAM used (GB)")
        total = int(samples[0]["mem_total_bytes"]) / GiB
        ax.axhline(total * 0.8, color="#d93025", linestyle="--", linewidth=1, label="80 % of total")
        ax.set_ylim(0, total * 1.02)
        temps = [(x, float(s["temp_c"])) for x, s in zip(xs, samples) if s.get("temp_c")]
        if temps:
            ax2 = ax.twinx()
            ax2.plot(*zip(*temps), color="#e37400", label="temperature (°C)")
            ax2.set_ylabel("°C")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("GB")
    device = str(summary.get("device") or "?").split(" (comfycheck")[0][:70]
    ax.set_title(f"VRAM during the run ({summary.get('source')}: {device})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "timeline.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.bar([g.n for g in generations], [g.wall_s for g in generations],
           color=["#34a853" if g.ok else "#d93025" for g in generations])
    ax.set_xlabel("generation")
    ax.set_ylabel("seconds (wall)")
    ax.set_title("time per generation (red: failed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "generations.png")
    plt.close(fig)


def summary_html(summary: dict) -> str:
    import html

    from .report import targets_table
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary["notes"])
    measurements = [Measurement.from_dict(d) for d in summary["measurements"]]
    return f"""<!doctype html><meta charset="utf-8"><title>comfycheck load run</title>
<style>body{{font-family:sans-serif}}</style>
<h1>Load run: {summary['verdict']}</h1>
{load_summary_html(summary)}
{targets_table(measurements)}
<ul>{notes}</ul>{gpu_map_html(summary.get("gpu_map") or [])}
<img src="timeline.png"><br><img src="generations.png">
"""


def load_summary_html(summary: dict) -> str:
    """The run in one paragraph: profile, workflow, generations, where the samples came from."""
    import html
    return (f"<p>Profile <b>{html.escape(summary['profile'])}</b>, workflow {html.escape(summary['workflow'])}, "
            f"{summary['generations_ok']} of {summary['generations_requested']} generations succeeded (stopped by "
            f"{html.escape(summary['stopped_by'])}); samples from {html.escape(str(summary['source']))} "
            f"({html.escape(str(summary['device']))}) {html.escape(summary['device_match'])}.</p>")


def gpu_map_html(rows: list[dict]) -> str:
    import html
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h2>GPU map</h2><table><tr>{head}</tr>{body}</table>"


def new_report_dir() -> Path:
    return LOAD_REPORTS / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def locust_command(profile_path: Path, out_dir: Path, *, generations: int, time_limit_s: float,
                   allow_load: bool = False, history: Path | None = None, keep: bool = True) -> list[str]:
    """The headless Locust command the README gives, as pytest and the self-tests run it (a subprocess).

    history: where the run is kept (default: the profile's); keep=False: not kept, the caller records its
    figures itself (a pytest session, in its own run)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "loadtests" / "locustfile.py"), "--headless",
           "-u", "1", "-r", "1", "--only-summary", "--comfy-profile", str(profile_path),
           "--generations", str(generations), "--time-limit-s", str(time_limit_s), "--report-dir", str(out_dir)]
    cmd += ["--allow-load"] if allow_load else []
    cmd += ["--history", str(history)] if history is not None else []
    return cmd + ([] if keep else ["--no-history"])
