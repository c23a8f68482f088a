"""Killing ComfyUI on purpose and timing how its watchdog brings it back.

Three ways to kill, chosen by the profile's [watchdog] kill:
- local: the process listening on the backend port, found with psutil, gets SIGKILL (terminate on Windows);
- command: a shell command of the user's (WSL, a remote host); {pid} is replaced when the PID is known here;
- supervisor: supervisord's XML-RPC, which also tells the process state and PID.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

from . import ComfycheckError
from .comfy.client import ComfyClient, ComfyError
from .config.profile import Profile
from .config.targets import Target
from .judge.measurements import Measurement
from .probes.process import ProcessId, is_loopback, listening_process


class WatchdogError(ComfycheckError):
    pass


class Killer:
    name = "?"
    sees_process = True  # whether the process is visible from this host (its PID, its spawn time)

    def current(self) -> ProcessId | None:
        raise NotImplementedError

    def successor(self, old: ProcessId | None) -> ProcessId | None:
        """A process that replaced `old`, as soon as it exists (before it listens, where that can be seen)."""
        current = self.current()
        return current if current is not None and current != old else None

    def kill(self, target: ProcessId | None) -> str:
        raise NotImplementedError


class LocalKiller(Killer):
    name = "local"

    def __init__(self, backend_url: str):
        parts = urlsplit(backend_url)
        if not is_loopback(backend_url):
            raise WatchdogError(f"kill = \"local\" needs ComfyUI on this host, but its URL is {backend_url}: "
                                "use kill = \"command\" or \"supervisor\" in [watchdog]")
        self.port = parts.port or 80
        self._cmdline: list[str] | None = None

    def current(self) -> ProcessId | None:
        found = listening_process(self.port)
        if found is not None:
            try:
                self._cmdline = psutil.Process(found.pid).cmdline()
            except psutil.Error:
                pass
        return found

    def successor(self, old: ProcessId | None) -> ProcessId | None:
        # the watchdog starts the same command line again: it counts from its start, not from its first listen
        if self._cmdline:
            for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
                if proc.info["cmdline"] == self._cmdline and (old is None or proc.info["pid"] != old.pid):
                    return ProcessId(proc.info["pid"], proc.info["create_time"])
        return super().successor(old)

    def kill(self, target: ProcessId | None) -> str:
        if target is None:
            raise WatchdogError(f"no process listens on port {self.port}: nothing to kill")
        proc = psutil.Process(target.pid)
        what = " ".join(proc.cmdline()[:3])  # read before the kill: a dead process has no command line
        if sys.platform == "win32":
            proc.terminate()
        else:
            proc.send_signal(signal.SIGKILL)
        return f"SIGKILL to pid {target.pid} ({what}...)"


class CommandKiller(Killer):
    name = "command"

    def __init__(self, command: str, backend_url: str):
        self.command = command
        parts = urlsplit(backend_url)
        # a remote ComfyUI's process is not visible from here: no port to look it up by
        self.local_port = (parts.port or 80) if is_loopback(backend_url) else None
        self.sees_process = self.local_port is not None

    def current(self) -> ProcessId | None:
        return listening_process(self.local_port) if self.local_port else None

    def kill(self, target: ProcessId | None) -> str:
        command = self.command.replace("{pid}", str(target.pid) if target else "")
        env = dict(os.environ, COMFYCHECK_PID=str(target.pid) if target else "")
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0:
            raise WatchdogError(f"kill_command {command!r} exited with {done.returncode}: "
                                f"{(done.stderr or done.stdout).strip()[:300]}")
        return f"ran {command!r}"


class SupervisorKiller(Killer):
    name = "supervisor"

    def __init__(self, url: str, program: str):
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/RPC2") else "/RPC2")
        self.program = program
        self.rpc = xmlrpc.client.ServerProxy(self.url)

    def info(self) -> dict:
        try:
            return self.rpc.supervisor.getProcessInfo(self.program)  # type: ignore[return-value]
        except (OSError, xmlrpc.client.Error) as exc:
            raise WatchdogError(f"supervisord at {self.url}, program {self.program!r}: {exc}") from None

    def current(self) -> ProcessId | None:
        info = self.info()
        if info["statename"] != "RUNNING" or not info["pid"]:
            return None
        return ProcessId(info["pid"], float(info["start"]))

    def kill(self, target: ProcessId | None) -> str:
        try:
            self.rpc.supervisor.signalProcess(self.program, "KILL")
        except (OSError, xmlrpc.client.Error) as exc:
            raise WatchdogError(f"supervisord at {self.url} could not signal {self.program!r}: {exc}") from None
        return f"supervisord signalProcess({self.program!r}, KILL) to pid {target.pid if target else '?'}"


def make_killer(profile: Profile) -> Killer:
    """The profile's [watchdog] kill strategy; WatchdogError naming the key it lacks."""
    w = profile.watchdog
    needs = {"command": ("kill_command", w.kill_command), "supervisor": ("supervisor_url", w.supervisor_url)}
    if w.kill in needs and not needs[w.kill][1]:
        raise WatchdogError(f'kill = "{w.kill}" needs [watchdog] {needs[w.kill][0]}')
    if w.kill == "local":
        return LocalKiller(profile.comfyui.url)
    if w.kill == "command":
        return CommandKiller(w.kill_command, profile.comfyui.url)
    return SupervisorKiller(w.supervisor_url, w.supervisor_program)


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

    def missing(self, direct_url: str, public_url: str | None) -> list[str]:
        """The milestones that were never reached, in words; empty when ComfyUI came back."""
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


def _answers(client: ComfyClient) -> bool:
    try:
        client.request("GET", "/system_stats")
        return True
    except ComfyError:
        return False


def kill_and_watch(killer: Killer, direct: ComfyClient, public: ComfyClient | None, *, deadline_s: float,
                   interval_s: float = 0.1) -> Recovery:
    """Kill ComfyUI, then poll every `interval_s` (<= 0.1 s) until every milestone is seen or the deadline passes."""
    old = killer.current()
    if old is None and killer.name != "command":
        raise WatchdogError(f"ComfyUI's process cannot be found before the kill ({killer.name} strategy)")
    t0 = time.monotonic()
    clock = KillClock()
    rec = Recovery(killer.kill(old), old)
    end = t0 + deadline_s
    can_see_process = killer.sees_process
    while time.monotonic() < end:
        now = time.monotonic() - t0
        rec.polls += 1
        up = _answers(direct)
        if rec.stopped_answering_s is None and not up:
            rec.stopped_answering_s = now
        if can_see_process and rec.new_process_s is None:
            new = killer.successor(old)
            if new is not None:
                spawned = clock.spawned_after(new)
                rec.new, rec.new_process_s = new, max(0.0, spawned) if spawned is not None else now
        if up and rec.direct_200_s is None and (rec.stopped_answering_s is not None or rec.new_process_s is not None):
            rec.direct_200_s = now
        if rec.direct_200_s is not None and public is not None and rec.proxy_200_s is None and _answers(public):
            rec.proxy_200_s = time.monotonic() - t0
        done = rec.direct_200_s is not None and (public is None or rec.proxy_200_s is not None) \
            and (rec.new_process_s is not None or not can_see_process)
        if done:
            break
        time.sleep(max(0.0, interval_s - (time.monotonic() - t0 - now)))
    if not can_see_process:
        rec.notes.append("the process is not visible from this host: no new-process time")
    return rec
