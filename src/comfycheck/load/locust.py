"""The headless Locust command the README gives, as pytest and the self-tests run it (always a subprocess:
Locust's gevent monkey-patching must not reach the process that starts it)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..config.paths import LOCUSTFILE


def locust_command(profile_path: Path, out_dir: Path, *, generations: int, time_limit_s: float,
                   allow_load: bool = False, history: Path | None = None, keep: bool = True) -> list[str]:
    """history: where the run is kept (default: the profile's); keep=False: not kept, the caller records its
    figures itself (a pytest session, in its own run)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "-u", "1", "-r", "1", "--only-summary", "--comfy-profile", str(profile_path),
           "--generations", str(generations), "--time-limit-s", str(time_limit_s), "--report-dir", str(out_dir)]
    cmd += ["--allow-load"] if allow_load else []
    cmd += ["--history", str(history)] if history is not None else []
    return cmd + ([] if keep else ["--no-history"])
