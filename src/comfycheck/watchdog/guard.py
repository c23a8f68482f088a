"""What surrounds the kill on a deployment people use: a steady state before it (healthy, and idle: no prompt of
anyone's running or queued), as Chaos Toolkit checks its steady-state hypothesis, and a rollback after it where
ComfyUI is not back by the deadline (the profile's restart command, or supervisord's start)."""
from __future__ import annotations

import subprocess
import time
import xmlrpc.client
from dataclasses import dataclass

from ..comfy.client import ComfyClient, ComfyError
from ..config.settings import WatchdogSettings
from ..polling import DeadlineExceeded, wait_until
from .killers import WatchdogError, supervisor_rpc
from .recovery import answers


class KillRefused(WatchdogError):
    """The deployment is busy: the kill would end someone's prompt. The message names what runs."""


def _busy(direct: ComfyClient) -> str:
    """What runs or waits on ComfyUI, in words; '' when it is idle."""
    queue = direct.queue()
    running = [item[1] for item in queue.get("queue_running", []) if len(item) > 1]
    pending = queue.get("queue_pending", [])
    if not running and not pending:
        return ""
    said = [f"prompt {', '.join(map(str, running))} running"] if running else []
    return ", ".join(said + ([f"{len(pending)} queued"] if pending else []))


def steady_state(direct: ComfyClient, public: ComfyClient | None, idle_wait_s: float) -> float:
    """Before the kill: ComfyUI answers (directly and through the proxy) and runs nothing of anyone's; a busy one
    is waited for up to `idle_wait_s`, then the kill is refused (KillRefused). Seconds waited."""
    for client, where in ((direct, "directly"), (public, "through the proxy")):
        if client is None:
            continue
        try:
            client.request("GET", "/system_stats")
        except ComfyError as exc:
            raise WatchdogError(f"ComfyUI is not healthy before the kill ({where}: {exc}): the kill was not made; "
                                "the checks of the backend and proxy say what to fix first") from None
    last = [""]

    def idle() -> bool:
        last[0] = _busy(direct)
        return not last[0]

    try:
        _, waited = wait_until(idle, timeout=idle_wait_s, interval=0.5, what="ComfyUI idle before the kill",
                               fatal=(ComfyError,))
    except ComfyError as exc:
        raise WatchdogError(f"ComfyUI's queue could not be read before the kill ({exc}): the kill was not made") \
            from None
    except DeadlineExceeded:
        raise KillRefused(f"the kill was refused: ComfyUI was still busy after {idle_wait_s:g} s ({last[0]}); killing "
                          "it would end those prompts. Run the check when the deployment is idle, or give it "
                          "longer with [watchdog] idle_wait_s") from None
    return waited


@dataclass
class Rollback:
    what: str  # what was done
    back_s: float | None  # ComfyUI answering again after it; None: still down at the deadline

    def describe(self) -> str:
        after = (f"ComfyUI answered again {self.back_s:.1f} s later" if self.back_s is not None else
                 "ComfyUI still did not answer at the deadline: bring it back by hand")
        return f"ROLLBACK RAN: {self.what}; {after}"


def how_to_roll_back(w: WatchdogSettings) -> str:
    """The profile's rollback: "auto" is supervisord's start where a supervisord is known, else none."""
    if w.rollback == "auto":
        return "supervisor" if w.supervisor_url else "none"
    return w.rollback


def roll_back(w: WatchdogSettings, direct: ComfyClient) -> Rollback | None:
    """Bring ComfyUI back the profile's way, then wait (up to rollback_wait_s) for it to answer; None: none."""
    how = how_to_roll_back(w)
    if how == "none":
        return None
    if how == "command":
        done = subprocess.run(w.rollback_command, shell=True, capture_output=True, text=True, timeout=120)
        what = f"ran [watchdog] rollback_command {w.rollback_command!r} (exit {done.returncode})"
    else:
        rpc = supervisor_rpc(w.supervisor_url)
        try:
            rpc.supervisor.stopProcess(w.supervisor_program)  # a crash loop's BACKOFF, or a FATAL program
        except (OSError, xmlrpc.client.Error):
            pass  # NOT_RUNNING: nothing to stop
        try:
            rpc.supervisor.startProcess(w.supervisor_program, False)
            what = f"supervisord at {w.supervisor_url} restarted program {w.supervisor_program!r}"
        except (OSError, xmlrpc.client.Error) as exc:
            return Rollback(f"supervisord at {w.supervisor_url} could not start {w.supervisor_program!r}: {exc}",
                            None)
    t0 = time.monotonic()
    try:
        wait_until(lambda: answers(direct), timeout=w.rollback_wait_s, interval=0.2,
                   what="ComfyUI answering after the rollback")
        return Rollback(what, time.monotonic() - t0)
    except DeadlineExceeded:
        return Rollback(what, None)
