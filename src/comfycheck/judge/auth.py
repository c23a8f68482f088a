"""What the public address says to each kind of credentials: the profile's own, none at all, and wrong ones.

A refusal is 401 or 403, or a redirect to a login page (an auth portal in front of the proxy sends browsers
there); anything else let the request through. HTTP and the WebSocket upgrade are asked separately: a proxy
that guards its pages may still pass /ws untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..comfy.client import ComfyClient, ComfyError, ComfyHTTPError
from ..config.auth import Credentials
from ..config.profile import Profile

REFUSALS = (401, 403)
SPELLINGS = ("", "/api")  # ComfyUI answers every route bare and under /api: a guard on one spelling guards nothing
SHARED_NEEDS_AUTH = ("public.audience = \"shared\" and public.auth = \"none\": anyone who finds the address uses the "
                     "GPU and reaches every endpoint the proxy passes; put authentication in the proxy (bearer, "
                     "basic, a session cookie or a query token; README: Opening ComfyUI to users) and set "
                     "public.auth")
# what each set of credentials is called in a message
OFFERED = {"none": "without credentials", "wrong": "with wrong credentials", "right": "with the profile's credentials"}


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the WebSocket opened
    location: str = ""

    @property
    def refused(self) -> bool:
        if self.status is None:
            return False
        return self.status in REFUSALS or (300 <= self.status < 400 and bool(self.location))

    def __str__(self) -> str:
        if self.status is None:
            return "opened"
        return f"HTTP {self.status}" + (f" to {self.location}" if self.location else "")


def offered_credentials(creds: Credentials, offered: str) -> Credentials:
    return {"none": creds.absent(), "wrong": creds.wrong(), "right": creds}[offered]


def _client(profile: Profile, creds: Credentials, spelling: str | None = None) -> ComfyClient:
    pub = profile.public
    assert pub is not None
    prefix = profile.comfyui.api_prefix if spelling is None else spelling
    return ComfyClient(pub.url, api_prefix=prefix, credentials=creds,
                       timeout=profile.comfyui.timeout_s, ca_bundle=pub.ca_bundle, origin=pub.origin,
                       via_proxy=True)


def http_answer(profile: Profile, creds: Credentials, spelling: str | None = None) -> Answer:
    """GET /system_stats through the proxy with these credentials (no Origin: ComfyUI's own 403 is about that),
    under `spelling` ("" or "/api"; None: the profile's comfyui.api_prefix)."""
    with _client(profile, creds, spelling) as client:
        client.origin = None
        resp = client.request("GET", "/system_stats", expect=())
    return Answer(resp.status_code, resp.headers.get("location", "") if resp.is_redirect else "")


def websocket_answer(profile: Profile, creds: Credentials, spelling: str | None = None) -> Answer:
    """The WebSocket upgrade through the proxy with these credentials and the page's Origin, at /ws or /api/ws."""
    with _client(profile, creds, spelling) as client:
        try:
            with client.websocket():
                return Answer(None)
        except ComfyHTTPError as exc:
            return Answer(exc.status, exc.location)


def let_through(answers: dict[str, Answer], path: str) -> str:
    """The spellings of `path` that were not refused, with what they answered: '' when every one was refused."""
    return "; ".join(f"{spelling}{path} {answer}" for spelling, answer in answers.items() if not answer.refused)


def credentials_problem(profile: Profile) -> str | None:
    """Why the profile's own credentials do not get through the public address over HTTP, or None."""
    pub = profile.public
    assert pub is not None
    creds = pub.credentials
    if creds.missing():
        return f"{creds.missing()}: every client of the suite (checks, load runs, the soak) reads it from there"
    try:
        answer = http_answer(profile, creds)
    except ComfyError as exc:
        return str(exc)
    if not answer.refused:
        return None
    if creds.mode == "none":
        return (f"{pub.url}/system_stats answered {answer} without credentials and the profile sets "
                "public.auth = \"none\": the proxy asks for credentials; set public.auth and its keys")
    return (f"{creds.describe()}: {pub.url}/system_stats answered {answer} with them: the values in the "
            "environment are not the ones the proxy accepts, or it asks for another kind")
