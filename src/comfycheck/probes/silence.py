"""A WebSocket through the proxy held silent in the background, so that waiting for the longest silent phase
(public.websocket_idle_s, 90 s by default) costs the run only what is left of it when every other check is done.

The socket opens when the acceptance layer starts; a thread waits on it for `silence_s` in which ComfyUI sends
nothing (its status broadcasts, when other checks queue prompts, restart the silence, as they do the proxy's
idle timer), then proves with a ping that the connection still carries traffic. The check judges the outcome.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError, RunTimeout
from ..comfy.eventstream import EventStream


@dataclass(frozen=True)
class Silence:
    survived: bool  # False: the proxy closed it, or a ping after the silence got no answer
    silent_s: float  # the silence before it was closed, or the silence it survived
    opened_before_judging_s: float  # how long the socket was held while the other checks ran
    quiet_after_s: float  # when, after it opened, its last silence began (other checks' messages restart it)
    waited_s: float  # what the judgement itself waited: what was left of the silence


class HeldSilence:
    """Opens the WebSocket in a thread of its own (a hung proxy costs the foreground nothing) and keeps it
    silent; `outcome()` waits for whatever is left and returns the Silence, or raises what went wrong."""

    def __init__(self, client: ComfyClient, silence_s: float):
        self.client = client
        self.silence_s = silence_s
        self.attempt_s = 3 * silence_s + 10  # how long one try may wait for a silent stretch
        self._judging = threading.Event()
        self._done = threading.Event()
        self._stream: EventStream | None = None
        self._finished_at = 0.0
        self._result: tuple[bool, float] | None = None
        self._error: ComfyError | None = None
        self._opened_at: float | None = None
        self._thread = threading.Thread(target=self._hold, name="comfycheck-held-silence", daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        try:
            with self.client.websocket() as stream:
                self._stream = stream
                self._opened_at = time.monotonic()
                while True:
                    judged = self._judging.is_set()
                    try:
                        self._result = stream.stays_open_through_silence(self.silence_s, timeout=self.attempt_s)
                        return
                    except RunTimeout:
                        if judged:
                            raise  # a whole try after the other checks were done, and still no silence
        except ComfyError as exc:
            self._error = exc
        finally:
            self._finished_at = time.monotonic()
            self._done.set()
            self.client.close()

    def outcome(self) -> Silence:
        self._judging.set()
        judged_at = time.monotonic()
        bound = 2 * self.attempt_s + 2 * self.client.timeout  # the opening, the try under way, one more
        if not self._done.wait(bound):
            self.abort()
            raise RunTimeout(f"the silent WebSocket through {self.client.base_url} gave no verdict within "
                             f"{bound:g} s of being judged")
        if self._error is not None:
            raise self._error
        assert self._result is not None and self._opened_at is not None
        survived, silent = self._result
        return Silence(survived, silent, opened_before_judging_s=max(0.0, judged_at - self._opened_at),
                       quiet_after_s=max(0.0, self._finished_at - silent - self._opened_at),
                       waited_s=max(0.0, self._finished_at - judged_at))

    def abort(self) -> None:
        """End the wait (the session is over): the thread returns at once."""
        self._judging.set()
        if self._stream is not None and not self._done.is_set():
            self._stream.abort()
