"""One definition of each unit of size; every figure says which it is in.

Decimal (GB, MB) where a documented target counts that way ("VRAM < 18 GB", RSS growth in MB/h); binary
(GiB, MiB) where the thing itself is counted in powers of two: a card's memory as NVIDIA sells it ("24 GB" is
24 GiB), upload limits as ComfyUI's --max-upload-size and nginx's client_max_body_size take them.
"""
from __future__ import annotations

MB, GB = 10**6, 10**9
MiB, GiB = 2**20, 2**30

# The one rule for how a figure is written: the decimals its unit resolves (a latency to 10 µs, a share to a tenth
# of a per cent, a temperature to the degree NVML reads), and a count as a whole number. A Measurement rounds its
# value so on creation, so the report, the terminal, JUnit, the Prometheus file and the history carry one figure.
DECIMALS = {"ms": 2, "s": 2, "%": 1, "GB": 2, "MB": 1, "GiB": 2, "MiB": 2, "MB/h": 1, "°C": 0, "W": 1, "days": 1}
COUNTS = frozenset({"runs", "drops", "requests", "users", "prompts", "images", "errors", "bytes", "packages", "nodes",
                     "backends", "operations"})
OTHER_DECIMALS = 2  # a unit not named above


def decimals(unit: str) -> int:
    return 0 if unit in COUNTS else DECIMALS.get(unit, OTHER_DECIMALS)


def rounded(value: float, unit: str, places: int | None = None) -> float | int:
    """A measured value at the resolution of its unit (or `places`, where a target says its own)."""
    if isinstance(value, int):
        return value  # already whole: a count, a status code
    places = decimals(unit) if places is None else places
    return int(round(value)) if places == 0 else round(float(value), places)


def shown(value: float, unit: str, places: int | None = None) -> str:
    """A measured value as every output writes it: '3.13' ms beside '0.62' ms, '10' runs, '42' °C."""
    figure = rounded(value, unit, places)
    if isinstance(figure, int):
        return str(figure)
    return f"{figure:.{decimals(unit) if places is None else places}f}"
