"""Killing ComfyUI on purpose and timing how its watchdog brings it back: the kill strategies (killers), the steady
state before and the rollback after (guard), the recovery's milestones (recovery) and a crash loop named (witness)."""
from __future__ import annotations

from .guard import KillRefused, Rollback, roll_back, steady_state
from .killers import CommandKiller, Killer, LocalKiller, SupervisorKiller, WatchdogError, make_killer
from .recovery import KillClock, Recovery, kill_and_watch
from .witness import CrashLoop, Witness

__all__ = ["CommandKiller", "CrashLoop", "KillClock", "KillRefused", "Killer", "LocalKiller", "Recovery", "Rollback",
           "SupervisorKiller", "WatchdogError", "Witness", "kill_and_watch", "make_killer", "roll_back",
           "steady_state"]
