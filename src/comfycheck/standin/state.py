"""The stand-in's state, as its parts (the prompt queue, the storage) use it; StandIn (server.py) sets it all."""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from .nodes import Vram


class State:
    dirs: dict[str, Path]  # input, output, temp, models, user
    faults: dict
    model_step_s: float
    vram: Vram
    max_upload_mib: float
    leaked: list[bytearray]  # the ram_leak_mb fault's memory
    sockets: dict[str, web.WebSocketResponse]
    pending: list[tuple]
    running: tuple | None
    history: OrderedDict[str, dict]
    counter: int
    cache: dict[str, tuple]
    interrupt_flag: bool
    wakeup: asyncio.Event

    def defs(self, only: set[str] | None = None) -> dict[str, dict]:
        """The node definitions the server offers, after faults (`only`: just these classes)."""
        raise NotImplementedError
