"""How a client proves itself to the proxy in front of ComfyUI: the profile's `public.auth` mode and its secrets.

The secrets are read from the environment when the credentials are made and live only in this object: its repr,
every message it writes and every URL it masks leave them out. ComfyClient applies them to HTTP, the WebSocket
upgrade and raw uploads; the UI checks hand them to the browser the way a student's browser carries them.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

AUTH_MODES = ("none", "bearer", "basic", "cookie", "query")
MASK = "***"


@dataclass(frozen=True, repr=False)
class Credentials:
    mode: str = "none"
    secret: str | None = None  # the bearer or query token, the password, the cookie's value
    user: str | None = None  # basic only
    name: str = ""  # the cookie's name, or the query parameter's
    # where each secret comes from, for messages: {"token": "$COMFYCHECK_TOKEN"}
    sources: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"Credentials({self.describe()})"

    # --- what they are, in words -----------------------------------------------------------------
    def describe(self) -> str:
        """public.auth = "basic" (user $U, password $P): never a value."""
        where = ", ".join(f"{what} {env}" for what, env in self.sources)
        named = f", {'cookie' if self.mode == 'cookie' else 'parameter'} {self.name!r}" if self.name else ""
        return f'public.auth = "{self.mode}"' + (f" ({where}{named})" if where else "")

    def missing(self) -> str | None:
        """Why these credentials cannot be sent (an environment variable not set), or None."""
        if self.mode == "none":
            return None
        unset = [env for what, env in self.sources if (self.user if what == "user" else self.secret) is None]
        if unset:
            return f"{self.describe()}: {' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set"
        return None

    def fingerprint(self) -> str:
        """A digest that tells two sets of credentials apart without holding them."""
        return hashlib.sha256(repr((self.mode, self.user, self.secret, self.name)).encode()).hexdigest()

    def secrets(self) -> list[str]:
        """What must never appear in an output: each secret as it is, as it travels (a basic pair in base64), and
        each way a URL or a JSON document writes it (a token with +, / or = changes there); longest first."""
        raw = [s for s in (self.secret,) if s]
        if self.mode == "basic" and self.secret:
            raw.append(self._basic_value())
        spelled = {form for s in raw for form in (s, quote(s, safe=""), quote(s), quote_plus(s), json.dumps(s)[1:-1])}
        return sorted(spelled, key=len, reverse=True)

    # --- variants, for the checks that must be refused -------------------------------------------------
    def wrong(self) -> Credentials:
        """The same mode with a secret that is not the right one."""
        return replace(self, secret=f"comfycheck-wrong-{uuid.uuid4().hex[:12]}", user=self.user or "comfycheck")

    def absent(self) -> Credentials:
        return Credentials()

    # --- on the wire ----------------------------------------------------------------------------------
    def _basic_value(self) -> str:
        return base64.b64encode(f"{self.user or ''}:{self.secret or ''}".encode()).decode()

    def headers(self) -> dict[str, str]:
        if self.mode == "bearer" and self.secret:
            return {"Authorization": f"Bearer {self.secret}"}
        if self.mode == "basic" and self.secret is not None:
            return {"Authorization": f"Basic {self._basic_value()}"}
        return {}

    def cookies(self) -> dict[str, str]:
        return {self.name: self.secret} if self.mode == "cookie" and self.secret else {}

    def params(self) -> dict[str, str]:
        return {self.name: self.secret} if self.mode == "query" and self.secret else {}

    def with_token(self, url: str) -> str:
        """`url` with the query token added (the WebSocket, the page): a URL to use, never to print."""
        params = self.params()
        if not params:
            return url
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != self.name]
        return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))

    def mask(self, text: str) -> str:
        """`text` (a URL, a message) with every secret replaced by ***."""
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text

    # --- in the browser ---------------------------------------------------------------------------------
    def browser_refusal(self) -> str | None:
        """Why a student's browser cannot carry these credentials at all, or None when it can."""
        if self.mode == "bearer":
            return (f"{self.describe()}: a browser does not send a bearer token on its own, so the page cannot be "
                    "opened behind it; students need basic auth, a session cookie or a query token")
        return None

    def browser_context(self) -> dict:
        """Playwright new_context() arguments: basic credentials, sent from the first request on, as a browser
        sends them once the user has typed them (the WebSocket upgrade gets no second chance to ask)."""
        if self.mode == "basic" and self.secret is not None:
            return {"http_credentials": {"username": self.user or "", "password": self.secret, "send": "always"}}
        return {}

    def browser_cookies(self, url: str) -> list[dict]:
        """The session cookie an auth portal would have set, for the page's origin."""
        if self.mode != "cookie" or not self.secret:
            return []
        parts = urlsplit(url)
        return [{"name": self.name, "value": self.secret, "url": f"{parts.scheme}://{parts.netloc}/"}]


def from_environment(mode: str, *, token_env: str = "", user_env: str = "", password_env: str = "",
                     cookie_name: str = "", cookie_env: str = "", query_param: str = "token") -> Credentials:
    """The credentials of a mode, each secret read from the environment variable the profile names."""
    def env(name: str) -> str | None:
        return (os.environ.get(name) or None) if name else None

    if mode == "bearer":
        return Credentials("bearer", env(token_env), sources=(("token", f"${token_env}"),))
    if mode == "query":
        return Credentials("query", env(token_env), name=query_param, sources=(("token", f"${token_env}"),))
    if mode == "basic":
        return Credentials("basic", env(password_env), env(user_env),
                           sources=(("user", f"${user_env}"), ("password", f"${password_env}")))
    if mode == "cookie":
        return Credentials("cookie", env(cookie_env), name=cookie_name, sources=(("value", f"${cookie_env}"),))
    return Credentials()


# which keys each mode needs, for the profile's own check
REQUIRED_KEYS = {"bearer": ("token_env",), "query": ("token_env",), "basic": ("user_env", "password_env"),
                 "cookie": ("cookie_name", "cookie_env"), "none": ()}
AUTH_KEY_MEANS = {"token_env": "the environment variable holding the token",
                  "user_env": "the environment variable holding the user name",
                  "password_env": "the environment variable holding the password",
                  "cookie_name": "the session cookie's name",
                  "cookie_env": "the environment variable holding its value"}
