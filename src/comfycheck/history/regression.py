"""When a figure counts as a regression, even while it still meets its target.

The rule: a run's value is flagged when it is worse, in its target's direction, than the median of the same
figure in the previous runs of the same profile (up to `window` of them, at least MIN_RUNS) by more than the
tolerance, the largest of
  * `pct` % of that median (default 25 %: a generation that takes a quarter longer than usual),
  * SPREAD_K robust standard deviations of those runs (1.4826 x the median absolute deviation): a figure that
    always jitters is flagged only beyond its usual spread,
  * the target's `news` share of its threshold (targets.py: 5 %, 25 % for the latency p95s): a change too small
    to matter against the target is not news (0 -> 0.01 GB on a 0.5 GB leak target; a p95 latency of 0.5 ms
    that jumps to 4 ms once, against a 20 ms target).
The median includes earlier flagged runs, so a lasting change is flagged until it makes up half the window,
then becomes the new normal: with the default window of 20 runs, a shift is flagged for 10 nights.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..config.settings import ResultsSettings
from ..config.targets import DEFAULT_TARGETS
from ..config.units import shown

WINDOW = ResultsSettings().regression_window
MIN_RUNS = 5
PCT = ResultsSettings().regression_pct
SPREAD_K = 3.0
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Regression:
    value: float
    baseline: float  # the median of the previous runs
    worse_by: float
    tolerance: float
    runs: int  # how many previous runs the median is of

    def describe(self, unit: str, places: int | None = None) -> str:
        """In the digits of the figure's unit (config.units.shown), as the report writes the figure itself."""
        def g(v: float) -> str:
            return shown(v, unit, places)
        pct = f" ({100 * self.worse_by / abs(self.baseline):+.0f} %)" if self.baseline else ""
        return (f"{g(self.value)} {unit} against a median of {g(self.baseline)} {unit} over the previous "
                f"{self.runs} runs: worse by {g(self.worse_by)} {unit}{pct}, tolerance {g(self.tolerance)} {unit}")


def judge(previous: list[float], value: float, *, op: str, threshold: float, pct: float = PCT,
          window: int = WINDOW, news: float = 0.05) -> Regression | None:
    """The regression of `value` against the last `window` of `previous` (oldest first), or None."""
    recent = previous[-window:]
    if len(recent) < MIN_RUNS:
        return None
    baseline = statistics.median(recent)
    spread = MAD_TO_SIGMA * statistics.median(abs(v - baseline) for v in recent)
    tolerance = max(pct / 100 * abs(baseline), SPREAD_K * spread, news * abs(threshold))
    worse_by = baseline - value if op in (">", ">=") else value - baseline
    if worse_by > tolerance:
        return Regression(value, baseline, worse_by, tolerance, len(recent))
    return None


def news_of(target_key: str | None) -> float:
    """The target's `news` share (targets.py); 5 % for a key this version does not know."""
    t = DEFAULT_TARGETS.get(target_key or "")
    return t.news if t else 0.05


def places_of(target_key: str | None) -> int | None:
    """The target's own decimals (targets.py), where its figures resolve otherwise than their unit."""
    t = DEFAULT_TARGETS.get(target_key or "")
    return t.decimals if t else None
