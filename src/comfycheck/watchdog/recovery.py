"""Timing how the watchdog brings ComfyUI back after the kill: each milestone seen by polling, and a crash loop
named when the new processes die as they start."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

from ..comfy.client import ComfyClient, ComfyError
from ..config.targets import Target
from ..judge.measurements import Measurement
from ..probes.process import ProcessId
from .killers import Killer, WatchdogError
from .witness import CrashLoop, Witness


@dataclass
class Recovery:
    """Seconds after the kill until each milestone; None where it was never reached (or cannot be seen)."""

    how: str
    old: ProcessId | None
    new: ProcessId | None = None
    stopped_answering_s: float | None = None
    new_process_s: float | None = None
    direct_200_s: float | None = None
    proxy_200_s: float | None = None
    polls: int = 0
    notes: list[str] = field(default_factory=list)
    loop: CrashLoop | None = None  # the new processes died as they started

    def missing(self, direct_url: str, public_url: str | None) -> list[str]:
        """The milestones that were never reached, in words; empty when ComfyUI came back."""
        if self.loop is not None:
            return [self.loop.describe()]
        gone = []
        if self.new_process_s is None and not self.notes:
            gone.append("no new process appeared (the watchdog did not restart ComfyUI)")
        if self.direct_200_s is None:
            gone.append(f"/system_stats never answered 200 again at {direct_url}")
        if public_url and self.proxy_200_s is None:
            gone.append(f"/system_stats never answered 200 again through the proxy at {public_url}")
        return gone

    def figures(self, targets: dict[str, Target]) -> list[Measurement]:
        """The recovery against the targets: back directly and through the proxy (restart_s), and the new
        process's own startup, from its spawn to its first 200 (startup_s)."""
        timed = [(targets["restart_s"], self.direct_200_s, "ComfyUI back after the kill (direct /system_stats 200)"),
                 (targets["restart_s"], self.proxy_200_s, "ComfyUI back through the proxy after the kill")]
        if self.new_process_s is not None and self.direct_200_s is not None:
            timed.append((targets["startup_s"], self.direct_200_s - self.new_process_s,
                          "startup of the new process (to /system_stats 200)"))
        return [Measurement(name, round(value, 3), target.unit, target) for target, value, name in timed
                if value is not None]


class KillClock:
    """When the kill happened, on the clocks a process's spawn time can be compared with."""

    def __init__(self):
        self.wall = time.time()
        self.boot = time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else None

    def spawned_after(self, proc: ProcessId) -> float | None:
        """Seconds from the kill to `proc`'s spawn: from its start tick in /proc (Linux, 10 ms steps), else its
        create time; None where the process is not visible here. Never "when the watchdog said RUNNING", which
        comes startsecs later under supervisord."""
        if self.boot is not None:
            try:
                with open(f"/proc/{proc.pid}/stat") as f:
                    ticks = int(f.read().rsplit(")", 1)[1].split()[19])
                return ticks / os.sysconf("SC_CLK_TCK") - self.boot
            except (OSError, ValueError, IndexError):
                pass
        try:
            return psutil.Process(proc.pid).create_time() - self.wall
        except psutil.Error:
            return proc.started - self.wall if proc.started else None


def answers(client: ComfyClient) -> bool:
    """ComfyUI answers /system_stats 200 (a poll: any failure is "not now")."""
    try:
        client.request("GET", "/system_stats")
        return True
    except ComfyError:
        return False


def kill_and_watch(killer: Killer, direct: ComfyClient, public: ComfyClient | None, *, deadline_s: float,
                   interval_s: float = 0.1, supervisor_url: str = "", program: str = "") -> Recovery:
    """Kill ComfyUI, then poll every `interval_s` (<= 0.1 s) until every milestone is seen, a crash loop shows
    (read from the supervisord at `supervisor_url`, else this host's processes), or the deadline passes."""
    old = killer.current()
    if old is None and killer.name != "command":
        raise WatchdogError(f"ComfyUI's process cannot be found before the kill ({killer.name} strategy)")
    t0 = time.monotonic()
    clock = KillClock()
    witness = Witness(clock.wall, supervisor_url=supervisor_url, program=program,
                      cmdline=getattr(killer, "cmdline", None), old_pid=old.pid if old else 0)
    rec = Recovery(killer.kill(old), old)
    end = t0 + deadline_s
    can_see_process = killer.sees_process
    while time.monotonic() < end:
        now = time.monotonic() - t0
        rec.polls += 1
        up = answers(direct)
        if rec.stopped_answering_s is None and not up:
            rec.stopped_answering_s = now
        if can_see_process and rec.new_process_s is None:
            new = killer.successor(old)
            if new is not None:
                spawned = clock.spawned_after(new)
                rec.new, rec.new_process_s = new, max(0.0, spawned) if spawned is not None else now
        if up and rec.direct_200_s is None and (rec.stopped_answering_s is not None or rec.new_process_s is not None):
            rec.direct_200_s = now
        if rec.direct_200_s is not None and public is not None and rec.proxy_200_s is None and answers(public):
            rec.proxy_200_s = time.monotonic() - t0
        done = rec.direct_200_s is not None and (public is None or rec.proxy_200_s is not None) \
            and (rec.new_process_s is not None or not can_see_process)
        if done:
            break
        if rec.direct_200_s is None and not up:
            witness.poll()
            if witness.looping():  # waiting longer would only count more deaths
                break
        time.sleep(max(0.0, interval_s - (time.monotonic() - t0 - now)))
    if not can_see_process:
        rec.notes.append("the process is not visible from this host: no new-process time")
    if rec.direct_200_s is None:
        rec.loop = witness.report()
    return rec
