"""A crash loop named: after the kill, the watchdog starts ComfyUI again and each new process dies as it starts (a
bad argument left in its command line, a custom node that exits). Counted from supervisord's own log where the
profile names it (every spawn and exit, with its status), else from this host's process table (no exit codes)."""
from __future__ import annotations

import datetime as dt
import re
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers.expat import ExpatError

import psutil

from .killers import supervisor_rpc

LOOP_EXITS = 3  # new processes that died: a loop, not a slow start; the wait for a recovery ends there
LOG_BYTES = 16000
TAIL_LINES = 6
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) \w+ (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class CrashLoop:
    started: list[int]  # the new processes' PIDs, in order
    exits: list[str]  # how each ended: "exit status 3", or "gone" where the exit code cannot be seen
    source: str  # where it was read: "supervisord's log" or "this host's process table"
    state: str = ""  # supervisord's state of the program now (BACKOFF, FATAL, ...)
    log_tail: list[str] = field(default_factory=list)  # the last lines ComfyUI wrote

    def describe(self) -> str:
        ended = ", ".join(self.exits) if self.exits else "none has exited yet"
        words = (f"ComfyUI is in a crash loop: {len(self.started)} new process(es) started after the kill "
                 f"(pid {', '.join(map(str, self.started[:8]))}{' ...' if len(self.started) > 8 else ''}) and "
                 f"{len(self.exits)} ended at once ({ended}), read from {self.source}")
        if self.state:
            words += f"; supervisord says {self.state}"
        if self.log_tail:
            words += "; the last lines of ComfyUI's log: " + " | ".join(self.log_tail)
        return words + "; fix what makes it exit (its command line, a custom node), then restart it"


class Witness:
    """Watches the processes that replace ComfyUI after the kill at `killed_at` (wall clock)."""

    def __init__(self, killed_at: float, *, supervisor_url: str = "", program: str = "",
                 cmdline: list[str] | None = None, old_pid: int = 0):
        self.killed_at = killed_at
        self.rpc = supervisor_rpc(supervisor_url) if supervisor_url else None
        self.program = program
        self.cmdline, self.old_pid = cmdline, old_pid
        self.seen: dict[int, bool] = {}  # pid: still alive (process table)

    def poll(self) -> None:
        """The process table: every process with ComfyUI's command line, and which of them are gone."""
        if self.rpc is not None or not self.cmdline:
            return
        alive = {p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                 if p.info["cmdline"] == self.cmdline and p.info["pid"] != self.old_pid}
        for pid in alive:
            self.seen.setdefault(pid, True)
        for pid in self.seen:
            self.seen[pid] = pid in alive

    def report(self, with_log: bool = True) -> CrashLoop | None:
        """The loop so far; None where no new process has died (a slow start is not a loop)."""
        loop = self._from_supervisor(with_log) if self.rpc is not None else self._from_process_table()
        return loop if loop is not None and loop.exits else None

    def looping(self) -> bool:
        loop = self.report(with_log=False)
        return loop is not None and (len(loop.exits) >= LOOP_EXITS or loop.state.startswith("FATAL"))

    def _from_process_table(self) -> CrashLoop | None:
        if not self.seen:
            return None
        return CrashLoop(list(self.seen), ["gone" for alive in self.seen.values() if not alive],
                         "this host's process table (kill = \"supervisor\" with its log tells the exit codes)")

    def _from_supervisor(self, with_log: bool) -> CrashLoop | None:
        assert self.rpc is not None
        try:
            log = str(self.rpc.supervisor.readLog(-LOG_BYTES, 0))
            info: dict = self.rpc.supervisor.getProcessInfo(self.program)  # type: ignore[assignment]
        except (OSError, xmlrpc.client.Error, ExpatError):
            return None
        started: list[int] = []
        exits: list[str] = []
        for line in log.splitlines():
            m = _LINE.match(line)
            if not m or _wall(m.group(1), m.group(2)) < self.killed_at - 1.0:
                continue
            event = m.group(3)
            spawned = re.match(rf"spawned: '{re.escape(self.program)}' with pid (\d+)", event)
            exited = re.match(rf"exited: {re.escape(self.program)} \((exit status \d+|terminated by \w+)", event)
            if spawned:
                started.append(int(spawned.group(1)))
            elif exited and started:  # the killed process's own exit comes before any spawn
                exits.append(exited.group(1))
        state = f"{info.get('statename', '?')}" + (f" ({info['spawnerr']})" if info.get("spawnerr") else "")
        lines = self._program_log(info) if with_log and started else []
        return CrashLoop(started, exits, "supervisord's log", state, lines) if started else None

    def _program_log(self, info: dict) -> list[str]:
        """ComfyUI's last lines: its log file where it is on this host, else through supervisord (whose XML-RPC
        cannot carry the colour codes real ComfyUI writes: they are not XML)."""
        path = Path(str(info.get("stdout_logfile") or ""))
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 8000))
                text = f.read().decode(errors="replace")
        except OSError:
            try:
                text = str(self.rpc.supervisor.tailProcessStdoutLog(self.program, 0, 8000)[0])  # type: ignore
            except (OSError, xmlrpc.client.Error, ExpatError) as exc:
                return [f"(its log cannot be read: {type(exc).__name__})"]
        plain = (_ANSI.sub("", ln).strip() for ln in text.splitlines())
        return [ln for ln in plain if ln][-TAIL_LINES:]


def _wall(stamp: str, millis: str) -> float:
    """supervisord's log time (this host's local time) as a wall-clock timestamp."""
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp() + int(millis) / 1000
