"""What the card did while a run worked: its utilisation and power as NVML read them (the sampler's rows), set
beside what ComfyUI's own timestamps say, so a run can tell whether the card or ComfyUI set the pace."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..config.targets import percentile
from ..config.units import rounded
from .measurements import Measurement


@dataclass(frozen=True)
class CardActivity:
    util_pct: list[float]
    power_w: list[float]

    @property
    def mean_util(self) -> float:
        return statistics.fmean(self.util_pct)

    @property
    def p95_util(self) -> float:
        return percentile(self.util_pct, 95)

    def rows(self, during: str, test: str) -> list[Measurement]:
        """Info figures (no target): the mean utilisation with its p95, and the peak power."""
        out = []
        if self.util_pct:
            out.append(Measurement(f"GPU utilisation {during} (NVML)", rounded(self.mean_util, "%"), "%", None, test,
                                   {"note": f"mean; p95 {self.p95_util:.0f} %"}))
        if self.power_w:
            out.append(Measurement(f"GPU power {during}, peak (NVML)", rounded(max(self.power_w), "W"), "W", None,
                                   test, {"note": "the card's draw"}))
        return out


def activity(samples: list[dict], windows: list[tuple[float, float]] | None = None) -> CardActivity:
    """The utilisation and power samples (samples.csv rows) taken inside any of `windows` (epoch s; None: all)."""
    def inside(t: float) -> bool:
        return windows is None or any(lo <= t <= hi for lo, hi in windows)

    def taken(field: str) -> list[float]:
        return [float(s[field]) for s in samples if s.get(field) not in (None, "") and inside(float(s["t"]))]

    return CardActivity(taken("util_pct"), taken("power_w"))
