"""The documented targets, in one place, and the verdict on a measurement against one of them."""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    threshold: float
    unit: str
    op: str = "<"

    def met_by(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        return f"{self.op} {_fmt(self.threshold)} {self.unit}".strip()

    def with_threshold(self, threshold: float) -> "Target":
        return Target(self.key, self.label, float(threshold), self.unit, self.op)


# The defaults of the deployment's documented targets; a profile's [targets] table overrides any of them.
DEFAULT_TARGETS: dict[str, Target] = {
    t.key: t
    for t in [
        Target("startup_s", "ComfyUI startup", 30, "s"),
        Target("restart_s", "ComfyUI restart after crash", 30, "s"),
        Target("vram_idle_pct", "VRAM idle", 10, "%"),
        Target("vram_generation_pct", "VRAM during a 512x512 generation", 80, "%"),
        Target("vram_generation_gb", "VRAM during a 512x512 generation", 18, "GB"),
        Target("generation_s", "one 512x512 generation", 30, "s"),
        Target("gpu_temp_idle_c", "GPU temperature idle", 40, "°C"),
        Target("gpu_temp_load_c", "GPU temperature under load", 85, "°C"),
        Target("latency_local_ms", "API latency local (p95)", 20, "ms"),
        Target("latency_proxy_ms", "API latency through the proxy (p95)", 100, "ms"),
        Target("consecutive_generations", "consecutive generations that succeed", 10, "runs", ">="),
        Target("generation_time_cv_pct", "generation time stability (coefficient of variation)", 20, "%"),
        Target("vram_released_gb", "VRAM left above the idle baseline after /free", 0.5, "GB"),
        Target("availability_pct", "availability", 99.9, "%", ">="),
    ]
}


NOT_ASSESSED = "not assessed"


@dataclass
class Measurement:
    """One judged (or informative) figure, whoever measured it: a pytest check, the load run, a later runner.

    verdict: "pass" / "FAIL" against its target, "info" without one, "not assessed" (with the reason in
    `not_assessed`) where the figure could not be taken (no GPU, a run too short for the target)."""

    name: str
    value: float | str | None
    unit: str = ""
    target: Target | None = None
    test: str = ""
    details: dict = field(default_factory=dict)
    not_assessed: str = ""

    @property
    def verdict(self) -> str:
        if self.not_assessed:
            return NOT_ASSESSED
        if self.target is None or not isinstance(self.value, (int, float)):
            return "info"
        return "pass" if self.target.met_by(self.value) else "FAIL"

    @property
    def note(self) -> str:
        return self.not_assessed or str(self.details.get("note", ""))

    def failure_message(self) -> str:
        t = self.target
        assert t is not None
        return (
            f"{self.name}: measured {_fmt(self.value)} {self.unit}, target {t.describe()} "
            f"(target '{t.key}')"
        )

    def as_dict(self) -> dict:
        t = self.target
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": t.key if t else None,
            "key": t.key if t else None,
            "threshold": t.describe() if t else None,
            "target_label": t.label if t else None,
            "target_threshold": t.threshold if t else None,
            "target_op": t.op if t else None,
            "verdict": self.verdict,
            "note": self.note,
            "not_assessed": self.not_assessed,
            "test": self.test,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        """A Measurement as as_dict() wrote it (measurements.json, a load run's summary.json)."""
        target = None
        if d.get("target") and d.get("target_threshold") is not None:
            target = Target(d["target"], d.get("target_label") or d["name"], float(d["target_threshold"]),
                            d.get("unit", ""), d.get("target_op") or "<")
        return cls(d["name"], d.get("value"), d.get("unit", ""), target, d.get("test", ""), dict(d.get("details") or {}),
                   d.get("not_assessed", ""))


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of the samples (p95 of latency samples, say)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def paired_overhead(base: list[float], extra: list[float]) -> tuple[float, float]:
    """Median and p95 of what `extra` adds to `base`, sample by sample (interleaved pairs).

    Subtracting two p95s compares the tails of two noisy samples and can come out negative; the paired
    differences measure the overhead itself."""
    diffs = [e - b for b, e in zip(base, extra)]
    ordered = sorted(diffs)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return median, percentile(diffs, 95)


def _fmt(v: float | str) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 100:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)
