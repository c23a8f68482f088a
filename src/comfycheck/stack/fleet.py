"""The embedded stack's fleet: the other backends a profile's [class] backends lists beside comfyui.url, each a
stand-in under the same supervisord (no fault switches of its own), all balanced by the stack's nginx."""
from __future__ import annotations

import xmlrpc.client
from pathlib import Path
from urllib.parse import urlsplit

from .. import ComfycheckError
from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError
from ..config.profile import Profile
from ..polling import DeadlineExceeded, wait_until
from . import supervisor


class FleetError(ComfycheckError):
    pass


def other_backends(profile: Profile) -> list[str]:
    main = profile.comfyui.url.rstrip("/")
    return [u for u in profile.classroom.fleet(main) if u != main]


def programs(profile: Profile, state_dir: Path, main_command: list[str]) -> list[supervisor.Program]:
    """A supervisord program for each other backend: the stand-in's own command on that backend's address."""
    others = other_backends(profile)
    if others and profile.stack is not None and profile.stack.real:
        raise FleetError(f"profile {profile.path}: [class] backends: the embedded stack runs a fleet of stand-ins "
                         'only ([stack] comfyui = "standin")')
    out = []
    for url in others:
        parts = urlsplit(url)
        port = parts.port or 80
        cmd = list(main_command)
        for flag, value in (("--host", parts.hostname or ""), ("--port", str(port)), ("--control-port", "0"),
                            ("--data-dir", str(state_dir / f"comfyui-{port}"))):
            cmd[cmd.index(flag) + 1] = value
        out.append(supervisor.Program(supervisor.fleet_program(port), cmd, state_dir / f"standin-{port}.log"))
    return out


def stop(profile: Profile, url: str) -> None:
    """supervisord stops that backend and leaves it stopped (a backend of the fleet down, for the self-tests)."""
    if url.rstrip("/") not in other_backends(profile) or profile.stack is None:
        raise FleetError(f"{url} is not one of the fleet's other backends: {other_backends(profile)}")
    try:
        supervisor.rpc(profile.stack.supervisor_url).supervisor.stopProcess(
            supervisor.fleet_program(urlsplit(url).port or 80))
    except (OSError, xmlrpc.client.Error) as exc:
        raise FleetError(f"supervisord at {profile.stack.supervisor_url} did not stop {url}: {exc}") from None


def answers(url: str) -> bool:
    try:
        with ComfyClient(url, timeout=2.0) as c:
            return bool(c.system_stats().get("system"))
    except ComfyError:
        return False


def bring_back(profile: Profile, timeout: float) -> bool:
    """Start each other backend that supervisord holds stopped (a self-test stopped it); True once all answer."""
    assert profile.stack is not None
    server = supervisor.rpc(profile.stack.supervisor_url).supervisor
    others = other_backends(profile)
    try:
        for url in others:
            name = supervisor.fleet_program(urlsplit(url).port or 80)
            info: dict = server.getProcessInfo(name)  # type: ignore[assignment]
            if info["statename"] != "RUNNING":
                server.startProcess(name)
    except (OSError, xmlrpc.client.Error):
        return False
    try:
        wait_until(lambda: all(answers(u) for u in others), timeout=timeout, interval=0.1,
                   what=f"the fleet's backends {others} answering /system_stats")
    except DeadlineExceeded:
        return False
    return True
