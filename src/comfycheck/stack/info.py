"""What the embedded stack's state file holds: its addresses and the processes it started, each known by who it is."""
from __future__ import annotations

from dataclasses import dataclass, field

from .owned import Started


@dataclass
class StackInfo:
    backend_url: str
    control_url: str
    pid: int
    started_at: float
    startup_s: float
    log: str
    owned: bool = False  # this process started it, so this process stops it
    proxy_pid: int = 0
    public_url: str = ""
    forge_pid: int = 0
    forge_url: str = ""
    supervisor_pid: int = 0  # supervisord, the watchdog; `pid` is the stand-in it started first
    supervisor_url: str = ""
    processes: dict[str, dict] = field(default_factory=dict)  # role: owned.Started, recorded as each started

    def remember(self, role: str, pid: int) -> None:
        started = Started.now(pid)
        if started is not None:
            self.processes[role] = started.to_json()

    def own(self, role: str, pid: int) -> bool:
        """`pid` is still the process this stack started as `role` (same start time, same command line)."""
        raw = self.processes.get(role)
        return bool(pid) and raw is not None and raw["pid"] == pid and Started.from_json(raw).running
