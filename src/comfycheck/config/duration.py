"""Durations as people write them: "90s", "30m", "24h", "1h30m", "1.5h", or plain seconds."""
from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str | float | int) -> float:
    """Seconds; ValueError naming the text when it is not a duration above zero."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        try:
            seconds = float(s)
        except ValueError:
            parts = _PART.findall(s)
            if not parts or "".join(n + u for n, u in parts) != s:
                raise ValueError(f"{text!r} is not a duration (write it like 90s, 30m, 24h or 1h30m)") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be above zero")
    return seconds


def format_duration(seconds: float) -> str:
    """'1 h 02 min', '3 min 05 s', '42 s', '0.4 s'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec:02d} s"
    return f"{sec} s"


def clock(seconds: float) -> str:
    """'25:03:07' for the live line."""
    s = int(max(0, seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
