"""The headless Locust command the README gives, as pytest and the self-tests run it (always a subprocess:
Locust's gevent monkey-patching must not reach the process that starts it)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..config.paths import CLASSROOM_LOCUSTFILE, LOCUSTFILE


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


def class_command(profile_path: Path, out_dir: Path, *, students: int | None = None,
                  prompts_each: int | None = None, allow_load: bool = False, history: Path | None = None,
                  keep: bool = True) -> list[str]:
    """A headless class run (loadtests/classroom.py); the [class] table gives what is not passed."""
    cmd = [sys.executable, "-m", "locust", "-f", str(CLASSROOM_LOCUSTFILE), "--headless", "--only-summary",
           "--comfy-profile", str(profile_path), "--report-dir", str(out_dir)]
    cmd += ["--students", str(students)] if students is not None else []
    cmd += ["--prompts-each", str(prompts_each)] if prompts_each is not None else []
    cmd += ["--allow-load"] if allow_load else []
    cmd += ["--history", str(history)] if history is not None else []
    return cmd + ([] if keep else ["--no-history"])


def class_master_args(workers: int, port: int) -> list[str]:
    """What turns class_command into Locust's master of `workers` workers, listening on `port`."""
    return ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(port)]


def class_worker_command(master_host: str, port: int) -> list[str]:
    """A worker of a class run's master (it takes the profile and every option from the master)."""
    return [sys.executable, "-m", "locust", "-f", str(CLASSROOM_LOCUSTFILE), "--worker", "--master-host", master_host,
            "--master-port", str(port)]
