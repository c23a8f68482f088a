"""The stand-in's fault switches, on its control port (not part of ComfyUI's API)."""
from __future__ import annotations

import httpx

from .. import ComfycheckError


class FaultSwitchError(ComfycheckError):
    pass


class FaultSwitch:
    """The stand-in's fault switches (its control port, not ComfyUI's API)."""

    def __init__(self, control_url: str):
        self.url = control_url.rstrip("/") + "/faults"

    def set(self, **faults) -> dict:
        r = httpx.post(self.url, json=faults, timeout=5)
        if r.status_code != 200:
            raise FaultSwitchError(f"setting faults {faults} failed: {r.text}")
        return r.json()

    def reset(self) -> dict:
        return httpx.delete(self.url, timeout=5).json()
