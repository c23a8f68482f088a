"""What the soak keeps going beside its round of probes: the page's WebSocket, the canary generation, and the
ComfyUI process it watches on this host."""
from __future__ import annotations

import threading
import time

import psutil

from ..comfy.client import ComfyClient, ComfyError, WebSocketLost
from ..comfy.workflows import make_unique
from ..probes.process import listening_process
from .samples import SampleStore


class _Background:
    """A daemon thread beside the rounds that talks to ComfyUI through its own client, writes to the samples file
    and ends with the soak's stop event."""

    name = ""

    def __init__(self, client: ComfyClient, store: SampleStore, stop: threading.Event):
        self.client = client
        self.store = store
        self.stop = stop
        self._thread = threading.Thread(target=self._run, name=f"comfycheck-soak-{self.name}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError


class HeldWebSocket(_Background):
    """One /ws connection held open the way a browser page holds it: it never pings, so a proxy sees silence
    between generations. When it is closed, it reconnects at once (as the frontend does) and times that.

    A close after less silence than `required_silence_s` (the profile's public.websocket_idle_s) is a drop the
    deployment promised not to have; a close after more silence is the proxy's idle timeout doing its job."""

    name = "websocket"

    def __init__(self, client: ComfyClient, store: SampleStore, stop: threading.Event, *,
                 required_silence_s: float, retry_s: float):
        super().__init__(client, store, stop)
        self.required = required_silence_s
        self.retry_s = retry_s
        self.up = False
        self.drops = 0  # closed before the required silence
        self._down_since: float | None = None

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.client.websocket() as ws:
                    self._opened()
                    try:
                        while not self.stop.is_set():
                            ws.next(1.0)  # messages (queue status of others' prompts) restart the silence
                    except WebSocketLost as lost:
                        self._closed(lost.silent_s, str(lost))
                    except ComfyError as exc:  # reset rather than closed
                        self._closed(time.perf_counter() - ws.last_received, str(exc))
            except (ComfyError, OSError) as exc:  # could not (re)connect: try again shortly
                self.up = False
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    self.store.add_event(time.time(), "ws_unreachable", None, str(exc))
                self.stop.wait(self.retry_s)

    def _opened(self) -> None:
        self.up = True
        if self._down_since is not None:
            self.store.add_event(time.time(), "ws_reconnect", time.monotonic() - self._down_since)
            self._down_since = None

    def _closed(self, silent_s: float, why: str) -> None:
        self.up = False
        self._down_since = time.monotonic()
        early = silent_s < self.required
        self.drops += early
        self.store.add_event(time.time(), "ws_drop" if early else "ws_idle_close", silent_s, why)


class Canary(_Background):
    """A cache-busted generation every `every_s` seconds (the first at once), its server-side time recorded."""

    name = "canary"

    def __init__(self, client: ComfyClient, workflow: dict, store: SampleStore, stop: threading.Event, *,
                 every_s: float, timeout_s: float):
        super().__init__(client, store, stop)
        self.workflow = workflow
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.ran = self.ok = self.failed = 0
        self.last_server_s: float | None = None

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            self.one()
            next_at = max(next_at + self.every_s, time.monotonic())  # a canary slower than the period: no backlog

    def one(self) -> None:
        t, t0 = time.time(), time.perf_counter()
        try:
            result = self.client.run(make_unique(self.workflow), timeout=self.timeout_s)
        except ComfyError as exc:
            ok, server_s, error = False, None, str(exc)
        else:
            server_ms = result.server_total_ms
            server_s = server_ms / 1000 if server_ms is not None else None
            ok, error = result.ok, result.failure_message()
        if self.stop.is_set() and not ok:
            return  # cut short by the end of the soak, not a failure of the service
        self.store.add_canary(t, ok, server_s, time.perf_counter() - t0, error)
        self.ran += 1
        self.ok += ok
        self.failed += not ok
        self.last_server_s = server_s if ok else self.last_server_s


class ProcessWatch:
    """RSS and CPU of the process listening on ComfyUI's port on this host; a new PID there is a restart."""

    def __init__(self, port: int):
        self.port = port
        self.proc: psutil.Process | None = None
        self.last_pid: int | None = None
        self.restarts = 0

    def sample(self) -> tuple[int | None, int | None, float | None]:
        """(pid, rss bytes, cpu % of one core since the last sample); Nones while nothing listens."""
        if self.proc is None or not self.proc.is_running():
            self.proc = self._find()
            if self.proc is None:
                return None, None, None
            if self.last_pid is not None and self.proc.pid != self.last_pid:
                self.restarts += 1
            self.last_pid = self.proc.pid
            self._cpu()  # the first reading primes psutil's CPU counter
        try:
            return self.proc.pid, self.proc.memory_info().rss, self._cpu()
        except psutil.Error:
            self.proc = None
            return None, None, None

    def _find(self) -> psutil.Process | None:
        try:
            found = listening_process(self.port)
            return psutil.Process(found.pid) if found else None
        except psutil.Error:
            return None

    def _cpu(self) -> float | None:
        if self.proc is None:
            return None
        try:
            return self.proc.cpu_percent(None)
        except psutil.Error:
            return None
