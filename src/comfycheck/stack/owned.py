"""The processes the embedded stack started, known by who they are and not by their PID alone.

A state file outlives its processes: after a reboot or a crash its PIDs can belong to anything, the system's own
nginx included. Each process is recorded as it starts (PID, start time, command line) and is signalled only while
the process under that PID is still that one.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import psutil

from ..polling import DeadlineExceeded, wait_until

SAME_START_S = 0.05  # /proc start times step by 10 ms; a PID reused later starts later


@dataclass(frozen=True)
class Started:
    pid: int
    started: float  # psutil's create time
    cmdline: tuple[str, ...]

    @classmethod
    def now(cls, pid: int) -> Started | None:
        """The process under `pid` as it is now; None where there is none (or it is a zombie)."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return cls(pid, proc.create_time(), tuple(proc.cmdline()))
        except psutil.Error:
            return None

    @classmethod
    def from_json(cls, raw: dict) -> Started:
        return cls(int(raw["pid"]), float(raw["started"]), tuple(str(a) for a in raw["cmdline"]))

    def to_json(self) -> dict:
        return {"pid": self.pid, "started": self.started, "cmdline": list(self.cmdline)}

    def differs(self) -> str | None:
        """Why the process under this PID now is not the one recorded (gone, started at another time, another
        command line); None while it is the same process."""
        now = Started.now(self.pid)
        if now is None:
            return "no longer running"
        if abs(now.started - self.started) > SAME_START_S:
            return f"another process now: started at {now.started:.2f}, not {self.started:.2f}"
        was, is_ = " ".join(self.cmdline), " ".join(now.cmdline)
        if not (is_.endswith(was) or was.endswith(is_)):  # nginx retitles: "nginx: master process " + its command
            return f"another process now: {is_[:120]!r}"
        return None

    @property
    def running(self) -> bool:
        return self.differs() is None

    def describe(self) -> str:
        return f"pid {self.pid} ({' '.join(self.cmdline)[:80]})"


def stop(pid: int, what: str, timeout: float = 10) -> None:
    """SIGTERM to the process group this stack started under `pid` (start_new_session), SIGKILL after `timeout`.
    Only for a PID known to be the stack's own: just spawned, or checked with Started.running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_until(lambda: Started.now(pid) is None, timeout=timeout, interval=0.02,
                   what=f"{what} (pid {pid}) stopping")
    except DeadlineExceeded:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
