"""The JSON messages of one /ws connection, read with a deadline, and whether it survives silence."""
from __future__ import annotations

import json
import time

from .errors import ComfyUnreachable, RunTimeout, WebSocketLost
from .wsclient import WsClosed, WsConnection, WsTimeout


class EventStream:
    """The JSON messages of one /ws connection; binary preview frames are skipped."""

    def __init__(self, ws: WsConnection, url: str):
        self._ws = ws
        self.url = url
        self.sid: str | None = None
        self.greeting: dict | None = None
        self.last_received = time.perf_counter()  # silence is counted from the moment it opened

    def next(self, timeout: float) -> dict | None:
        """The next JSON message, or None when `timeout` seconds pass without one."""
        end = time.perf_counter() + timeout
        while True:
            remaining = end - time.perf_counter()
            if remaining <= 0:
                return None
            try:
                raw = self._ws.recv(remaining)
            except WsClosed as exc:
                raise WebSocketLost(str(exc), time.perf_counter() - self.last_received) from None
            except OSError as exc:
                raise ComfyUnreachable(f"WebSocket {self.url}: {type(exc).__name__}: {exc}") from None
            if raw is None:
                return None
            self.last_received = time.perf_counter()
            if isinstance(raw, str):
                return json.loads(raw)

    def abort(self) -> None:
        """From another thread: end the connection, so that a wait on it ends now."""
        self._ws.abort()

    def send(self, message: dict) -> None:
        self._ws.send_text(json.dumps(message))

    def stays_open_through_silence(self, silence_s: float, timeout: float) -> tuple[bool, float]:
        """Wait for `silence_s` seconds in which the server sends nothing, then prove the connection still
        carries traffic (a ping answered). (True, silence) when it does; (False, silence before it was closed)
        when it was closed; messages from other activity restart the silence, for at most `timeout` seconds."""
        end = time.perf_counter() + timeout
        quiet_since = time.perf_counter()
        while True:
            left = min(silence_s - (time.perf_counter() - quiet_since), end - time.perf_counter())
            if left <= 0:
                break
            try:
                if self.next(left) is not None:
                    quiet_since = time.perf_counter()
            except WebSocketLost:
                return False, time.perf_counter() - quiet_since
        silent = time.perf_counter() - quiet_since
        if silent < silence_s:
            raise RunTimeout(f"WebSocket {self.url}: the server was never silent for {silence_s:g} s within "
                             f"{timeout:g} s (other activity), so the proxy's idle timeout could not be tested")
        try:
            self._ws.ping(10.0)
        except (WsClosed, WsTimeout, OSError):
            return False, silent
        return True, silent
