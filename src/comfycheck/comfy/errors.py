"""What can go wrong talking to ComfyUI, as exceptions whose messages say what and where."""
from __future__ import annotations

from typing import Any

from .. import ComfycheckError


class ComfyError(ComfycheckError):
    """Anything that went wrong talking to ComfyUI; the message says what and where."""


class ComfyUnreachable(ComfyError):
    pass


class ComfyHTTPError(ComfyError):
    def __init__(self, message: str, status: int, body: Any = None, location: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body
        self.location = location  # a redirect's Location (a sign-in portal's login page)


class PromptRejected(ComfyHTTPError):
    """POST /prompt answered 400: the workflow failed validation; the message lists node_errors."""


class RunTimeout(ComfyError):
    pass


class WebSocketLost(ComfyError):
    """The /ws connection closed under the client; `silent_s`: seconds since the server last sent anything."""

    def __init__(self, message: str, silent_s: float):
        super().__init__(message)
        self.silent_s = silent_s
