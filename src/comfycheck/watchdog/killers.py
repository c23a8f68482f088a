"""How ComfyUI is killed on purpose. Three ways, chosen by the profile's [watchdog] kill:
- local: the process listening on the backend port, found with psutil, gets SIGKILL (terminate on Windows);
- command: a shell command of the user's (WSL, a remote host); {pid} is replaced when the PID is known here;
- supervisor: supervisord's XML-RPC, which also tells the process state and PID.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import xmlrpc.client
from urllib.parse import urlsplit

import psutil

from .. import ComfycheckError
from ..config.hosts import is_loopback
from ..config.profile import Profile
from ..probes.process import ProcessId, listening_process


class WatchdogError(ComfycheckError):
    pass


def supervisor_rpc(url: str) -> xmlrpc.client.ServerProxy:
    """supervisord's XML-RPC at `url` (the profile's supervisor_url, with or without its /RPC2)."""
    url = url.rstrip("/")
    return xmlrpc.client.ServerProxy(url if url.endswith("/RPC2") else url + "/RPC2")


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
        self.cmdline: list[str] | None = None  # ComfyUI's command line, read before the kill

    def current(self) -> ProcessId | None:
        found = listening_process(self.port)
        if found is not None:
            try:
                self.cmdline = psutil.Process(found.pid).cmdline()
            except psutil.Error:
                pass
        return found

    def successor(self, old: ProcessId | None) -> ProcessId | None:
        # the watchdog starts the same command line again: it counts from its start, not from its first listen
        if self.cmdline:
            for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
                if proc.info["cmdline"] == self.cmdline and (old is None or proc.info["pid"] != old.pid):
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
        self.url = url
        self.program = program
        self.rpc = supervisor_rpc(url)

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
    if w.rollback == "command" and not w.rollback_command:
        raise WatchdogError('rollback = "command" needs [watchdog] rollback_command')
    if w.rollback == "supervisor" and not w.supervisor_url:
        raise WatchdogError('rollback = "supervisor" needs [watchdog] supervisor_url')
    if w.kill == "local":
        return LocalKiller(profile.comfyui.url)
    if w.kill == "command":
        return CommandKiller(w.kill_command, profile.comfyui.url)
    return SupervisorKiller(w.supervisor_url, w.supervisor_program)
