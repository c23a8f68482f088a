"""Is ComfyUI's install whole after an update: its own packages at the versions it requires, and every custom node
imported. A half-done update (`git pull` without `pip install -r requirements.txt`, a custom node pulled that no
longer imports) is named as such, with the fix, instead of surfacing later as a page that looks different."""
from __future__ import annotations

from dataclasses import dataclass

from .. import hints
from ..comfy import packages
from ..comfy.client import ComfyClient, ComfyError
from ..comfy.startup_log import LOG_CAPACITY, StartupLog, parse
from ..config.profile import Profile
from .measurements import Measurement

SERVED_FRONTEND_JS = "() => window.__COMFYUI_FRONTEND_VERSION__ || null"  # set by the frontend as it mounts


@dataclass
class LogRead:
    """ComfyUI's startup log as this run could read it: the log, or why not (read_logs off, not answered)."""

    log: StartupLog | None
    why_not: str = ""

    def unknown(self) -> str | None:
        """Why the log says nothing about the node imports, or None where it does."""
        if self.log is None:
            return self.why_not
        if not self.log.holds_startup:
            return ("ComfyUI's log (/internal/logs) no longer reaches back to its start: it keeps its last "
                    f"{LOG_CAPACITY} records")
        return None


def read_log(profile: Profile, client: ComfyClient) -> LogRead:
    """/internal/logs on the backend, where the profile allows it ([comfyui] read_logs)."""
    if not profile.comfyui.read_logs:
        return LogRead(None, f"profile {profile.name!r} does not let the suite read ComfyUI's log "
                             "([comfyui] read_logs = false)")
    try:
        return LogRead(parse(client.startup_log()))
    except ComfyError as exc:
        return LogRead(None, f"ComfyUI's log could not be read: {exc}")


def packages_judged(profile: Profile, stats: dict, log: LogRead | None = None) -> Measurement | None:
    """ComfyUI's own packages below their requirement, as a count against its target (0); None where this
    ComfyUI does not list them (older than system.comfy_package_versions)."""
    listed = packages.listed(stats)
    if listed is None:
        return None
    below = [p for p in listed if p.below_required]
    logged = log.log.requirements_command if log is not None and log.log is not None else None
    fix = ""
    if below:
        fix = (f"{'; '.join(p.describe() for p in below)}: a half-done update (ComfyUI's code updated, its "
               f"requirements not): {hints.install_comfyui_requirements(profile.comfyui.venv, logged)}")
    return Measurement(
        profile.targets["comfy_packages_below_required"].label, len(below), "packages",
        profile.targets["comfy_packages_below_required"],
        details={p.name: f"{p.installed or 'not installed'} (requires {p.required})" for p in listed}, fix=fix)


def packages_problem(profile: Profile) -> str | None:
    """The foundation's probe: why ComfyUI's packages are not at its requirements, or None (or not listed)."""
    try:
        with ComfyClient.from_profile(profile) as client:
            stats = client.system_stats()
    except ComfyError as exc:
        return str(exc)
    m = packages_judged(profile, stats)
    return m.failure_message() if m is not None and m.fix else None


def served_frontend_problem(served: str | None, required: str | None) -> str | None:
    """Why the page's frontend is not the one ComfyUI requires: older than it. None where it is (or either is
    unknown: nothing to judge)."""
    if served and required and packages.older(served, required):
        return (f"the page serves frontend {served}, ComfyUI requires {required} (comfyui-frontend-package, "
                "system.required_frontend_version): a half-done update left the older frontend installed")
    return None


def custom_nodes_problem(profile: Profile, missing: list[str], log: LogRead) -> str | None:
    """Why the node classes the service needs are not all there, or a custom node did not import; None: fine.
    The failed imports come from ComfyUI's own log, each with the error it logged."""
    failed = log.log.failed_custom_nodes if log.log is not None and log.log.holds_startup else []
    builtin = log.log.failed_builtin if log.log is not None and log.log.holds_startup else []
    if not (missing or failed or builtin):
        return None
    parts = []
    if missing:
        parts.append(f"node classes missing on the server: {', '.join(missing)}")
    elif failed or builtin:
        parts.append("every node class the profile requires is offered")
    if failed:
        parts.append("custom nodes that failed to import (ComfyUI's log): "
                     + "; ".join(f.describe() for f in failed))
        parts.append("install each node's requirements in ComfyUI's venv (pip install -r custom_nodes/<node>/"
                     "requirements.txt) or update or remove the node, then restart ComfyUI")
    if builtin:
        parts.append(f"ComfyUI's own nodes that failed to import: {', '.join(builtin)} (missing dependencies of "
                     f"an update: {hints.install_comfyui_requirements(profile.comfyui.venv)})")
    if missing and not failed:
        unknown = log.unknown()
        parts.append("the custom node providing them is not installed, or it failed to import"
                     + (f" ({hints.find_comfyui_log(unknown)})" if unknown else
                        ": ComfyUI's log shows no custom node that failed to import, so it is not installed"))
    return "; ".join(parts)
