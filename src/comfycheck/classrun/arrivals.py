"""When the prompts of a `rate` class run arrive: a Poisson process at [class] rate_per_min, seeded, with exactly
the run's number of prompts (so the run is bounded in prompts as well as in time)."""
from __future__ import annotations

import random

from ..config.settings import ClassSettings


def arrival_times(settings: ClassSettings) -> list[float]:
    """Seconds after the start at which each prompt arrives: exponential gaps of mean 60 / rate_per_min."""
    rng = random.Random(settings.seed)
    t, out = 0.0, []
    for _ in range(settings.prompts):
        out.append(t)
        t += rng.expovariate(settings.rate_per_min / 60)
    return out
