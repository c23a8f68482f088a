"""A load run judged on the targets, and its typed summary: what summary.json is written from and read back into.

The judgement is a function of the run's records (its generations, the idle baseline, the peak sample, the memory
after /free): the same records give the same verdict."""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..config.targets import Target
from ..config.units import GB, rounded
from ..judge.measurements import Measurement
from ..probes.gpu import Sample
from .samples import Generation

TEST = "load run"  # the test name a load run's figures carry

ON_CPU = "not assessed: ComfyUI runs on the CPU (/system_stats lists no GPU)"
CPU_NOTE = ("ComfyUI runs on the CPU (/system_stats lists no GPU): the VRAM targets are not assessed; the memory "
            "figures are the cpu device's")
NO_TEMPERATURE = "not assessed: no temperature without NVML"


@dataclass
class IdleBaseline:
    """Memory once it settled after /free, before the run: the baseline the leak check comes back to."""

    used_gb: float
    pct: float | None  # None where ComfyUI runs on the CPU: the memory is RAM then, not VRAM
    temp_c: float | None
    total_gb: float
    device: str

    @classmethod
    def of(cls, s: Sample) -> IdleBaseline:
        return cls(round(s.mem_used_bytes / GB, 3), round(s.used_pct, 2), s.temp_c, round(s.mem_total_bytes / GB, 2),
                   s.device)


@dataclass
class AfterFree:
    used_gb: float
    delta_gb: float  # above the idle baseline
    waited_s: float  # for it to come back within the target (or the settle time, when it did not)


@dataclass
class WallTimes:
    mean: float | None
    median: float | None
    max: float | None

    @classmethod
    def of(cls, generations: list[Generation]) -> WallTimes:
        """Of the successful generations."""
        walls = [g.wall_s for g in generations if g.ok]
        if not walls:
            return cls(None, None, None)
        return cls(_r(statistics.mean(walls), "s"), _r(statistics.median(walls), "s"), _r(max(walls), "s"))


@dataclass
class TimingError:
    median: float | None
    max: float | None
    what: str = "client wall time minus ComfyUI's create->terminal timestamps"

    @classmethod
    def of(cls, generations: list[Generation]) -> TimingError:
        errors_ms = [(g.wall_s - g.server_s) * 1000 for g in generations if g.ok and g.server_s is not None]
        if not errors_ms:
            return cls(None, None)
        return cls(_r(statistics.median(errors_ms), "ms"), _r(max(errors_ms), "ms"))


@dataclass
class PeakMemory:
    used_gb: float | None
    pct: float | None

    @classmethod
    def of(cls, peak: Sample | None) -> PeakMemory:
        """The sampler's peak, as sampled (on the CPU too: RAM then, which the VRAM targets do not judge)."""
        return cls(_r(peak.mem_used_bytes / GB, "GB"), _r(peak.used_pct, "%")) if peak else cls(None, None)


@dataclass
class SamplerStats:
    hz: float
    samples: int
    errors: int
    last_error: str


@dataclass
class LoadSummary:
    """A judged load run; summary.json is this, key for key."""

    profile: str
    report_dir: str
    workflow: str
    started: str
    finished: str
    stopped_by: str
    generations_requested: int
    generations_ok: int
    generations_failed: int
    wall_s: WallTimes
    timing_error_ms: TimingError
    source: str | None
    device: str | None
    device_match: str
    gpu_map: list[dict]
    idle: IdleBaseline
    on_gpu: bool
    peak: PeakMemory
    after_free: AfterFree
    sampler: SamplerStats
    notes: list[str]
    measurements: list[Measurement]
    versions: dict[str, str]
    verdict: str
    errors: list[str]

    @property
    def passed(self) -> bool:
        """Every target met and every generation succeeded: the run's exit status 0."""
        return self.verdict == "pass" and not self.generations_failed

    def to_json(self) -> dict:
        d = asdict(replace(self, measurements=[]))
        d["measurements"] = [m.as_dict() for m in self.measurements]
        return d

    @classmethod
    def from_json(cls, d: dict) -> LoadSummary:
        return cls(**{**d, "wall_s": WallTimes(**d["wall_s"]), "timing_error_ms": TimingError(**d["timing_error_ms"]),
                      "idle": IdleBaseline(**d["idle"]), "peak": PeakMemory(**d["peak"]),
                      "after_free": AfterFree(**d["after_free"]), "sampler": SamplerStats(**d["sampler"]),
                      "measurements": [Measurement.from_dict(m) for m in d["measurements"]]})

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def read(cls, path: Path) -> LoadSummary:
        return cls.from_json(json.loads(Path(path).read_text()))


def judge(targets: dict[str, Target], *, requested: int, generations: list[Generation], idle: IdleBaseline,
          peak: Sample | None, max_temp: float | None, after: AfterFree, on_gpu: bool,
          ran: tuple[str, bool] = ("one 512x512 generation", True)) -> list[Measurement]:
    """The run's figures against the targets; on the CPU the memory targets are not assessed (it is RAM).
    `ran` is what each generation ran and whether it is a 512x512 generation (comfy.workflows.describe): the
    targets about one 512x512 generation judge only that; another workflow's figures are named by what it ran
    and told, not judged."""
    label, is_512 = ran
    ok = [g for g in generations if g.ok]
    cold = [g for g in ok if g.cold]
    times = [g.judged_s for g in ok if not g.cold]  # a warm model's generations: the targets are about those
    only_cold = "not assessed: the only successful generation was the first after /free, which loads the model " \
                "again; run 2 or more"
    t = targets
    if not on_gpu:
        peak = None
    no_gpu = ON_CPU if not on_gpu else "not measured"
    streak, needed = longest_streak(generations), t["consecutive_generations"].threshold
    short = requested < needed and len(ok) == len(generations)  # a try-out run; a failure still fails it
    return [
        _row(t["consecutive_generations"], None if short else streak,
             f"longest run of successes; {len(ok)} of {len(generations)} succeeded ({requested} requested)",
             none_why=f"not assessed: {requested} requested, the target needs {needed:g}; "
                      f"{len(ok)} of {len(generations)} succeeded"),
        _row(t["generation_s"], max(times) if times else None,
             "slowest successful generation with the model loaded, by ComfyUI's execution_start -> success (a wait "
             "in the queue behind another user's prompt is not counted; the first after /free is told apart)",
             what_ran=None if is_512 else f"{label}, slowest execution",
             none_why=only_cold if cold else "not measured"),
        _row(t["generation_time_cv_pct"],
             100 * statistics.pstdev(times) / statistics.mean(times) if len(times) >= 2 else None,
             "stability: standard deviation / mean of the executions with the model loaded",
             none_why="not assessed: fewer than 2 successful generations with the model loaded"),
        *[Measurement(f"first {label.removeprefix('one ')} after /free, model load included",
                      _r(g.judged_s, "s"), "s", None, TEST,
                      {"note": "the run's own /free unloaded the model: this generation loads it again, so it is "
                               "told apart and judged by no target (the warm ones are)"}) for g in cold],
        _row(t["vram_generation_pct"], peak.used_pct if peak else None, "peak VRAM during the run", none_why=no_gpu,
             what_ran=None if is_512 else f"peak VRAM during {label}"),
        _row(t["vram_generation_gb"], peak.mem_used_bytes / GB if peak else None, "peak VRAM during the run",
             none_why=no_gpu, what_ran=None if is_512 else f"peak VRAM during {label}"),
        _row(t["vram_idle_pct"], idle.pct if on_gpu else None, "idle baseline after /free, before the run",
             none_why=no_gpu),
        _row(t["vram_released_gb"], after.delta_gb if on_gpu else None,
             "VRAM above the idle baseline after the run and /free", none_why=ON_CPU),
        _row(t["gpu_temp_idle_c"], idle.temp_c, "temperature at the idle baseline", none_why=NO_TEMPERATURE),
        _row(t["gpu_temp_load_c"], max_temp, "highest temperature during the run", none_why=NO_TEMPERATURE),
    ]


def longest_streak(generations: list[Generation]) -> int:
    best = run = 0
    for g in generations:
        run = run + 1 if g.ok else 0
        best = max(best, run)
    return best


def _r(v: float | None, unit: str) -> float | None:
    """A summary figure at its unit's resolution: the one digits rule (config.units), as the measurements."""
    return None if v is None else float(rounded(v, unit))


def _row(target: Target, value: float | None, what: str, none_why: str = "not measured",
         what_ran: str | None = None) -> Measurement:
    """A figure against its target; with `what_ran`, a figure of another workflow than the target is about:
    named by what ran and told, without the target."""
    if value is None:
        return Measurement(what_ran or target.label, None, target.unit, target, TEST, {"note": what},
                           not_assessed=none_why)
    if what_ran is not None:
        return Measurement(what_ran, float(value), target.unit, None, TEST,
                           {"note": f"{what}; not judged against '{target.key}' ({target.label} "
                                    f"{target.describe()}): this run drove another workflow"})
    return Measurement(target.label, float(value), target.unit, target, TEST, {"note": what})
