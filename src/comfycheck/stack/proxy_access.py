"""Who the embedded nginx lets in: the authentication the profile's `public.auth` asks of every request (HTTP and
the WebSocket upgrade alike), as the proxy in front of a shared ComfyUI does it.

Each mode is written as an operator would write it: bearer and cookie compare a header, basic is nginx's own
auth_basic with a salted-SHA1 password file, and the query token (ComfyUI-Login's `?token=`) is also accepted
from a cookie the proxy sets on the first request that carried it, so that a browser opened on `/?token=...`
keeps working for the page's own requests and its WebSocket (the page itself is sent on to `/`, off the token).
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from .. import ComfycheckError
from ..config.auth import Credentials

QUERY_COOKIE = "comfycheck_token"
# what a value may hold to be written into nginx.conf as is (the embedded stack's secrets are the self-tests'
# and the user's environment: refuse what would need quoting rather than quote it wrongly)
_PLAIN = re.compile(r"^[A-Za-z0-9._~+/=:-]+$")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ProxyAuthError(ComfycheckError):
    pass


def _plain(value: str | None, what: str) -> str:
    if not value or not _PLAIN.match(value):
        raise ProxyAuthError(f"the embedded proxy cannot require {what}: it must be set and hold only letters, "
                             "digits and ._~+/=:-")
    return value


def _name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ProxyAuthError(f"the embedded proxy cannot use {what} {value!r}: letters, digits and _ only")
    return value


def write_password_file(creds: Credentials, path: Path) -> None:
    """nginx's auth_basic_user_file, the password salted and hashed ({SSHA}), readable by its owner only."""
    salt = os.urandom(8)
    digest = hashlib.sha1((creds.secret or "").encode() + salt).digest()
    line = f"{creds.user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"
    write_private(path, line)


def write_private(path: Path, text: str) -> None:
    """`text` in a file only its owner can read, from its first byte (a config or password file with secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file written before with wider rights keeps them through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


def render_auth(creds: Credentials, password_file: Path) -> tuple[str, str]:
    """The http block's maps and the location's lines that refuse a request without these credentials (401)."""
    mode = creds.mode
    if mode == "none":
        return "", ""
    if mode == "bearer":
        token = _plain(creds.secret, "a bearer token")
        return "", f'if ($http_authorization != "Bearer {token}") {{ return 401; }}'
    if mode == "basic":
        if not creds.user or ":" in creds.user or not _PLAIN.match(creds.user):
            raise ProxyAuthError("the embedded proxy's basic auth needs a user name of letters, digits and ._~+/=-")
        write_password_file(creds, password_file)
        return "", f'auth_basic "comfycheck"; auth_basic_user_file {password_file};'
    if mode == "cookie":
        name = _name(creds.name, "the cookie name")
        value = _plain(creds.secret, f"the cookie {name}")
        return "", f'if ($cookie_{name} != "{value}") {{ return 401; }}'
    if mode == "query":
        param = _name(creds.name, "the query parameter")
        token = _plain(creds.secret, "a query token")
        maps = f"""
    map $arg_{param} $comfycheck_query_ok {{
        default 0;
        "{token}" 1;
    }}
    map $cookie_{QUERY_COOKIE} $comfycheck_cookie_ok {{
        default 0;
        "{token}" 1;
    }}
    map "$comfycheck_query_ok$comfycheck_cookie_ok" $comfycheck_authorized {{
        "00" 0;
        default 1;
    }}
    map $comfycheck_query_ok $comfycheck_set_token {{
        1 "{QUERY_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict";
        default "";
    }}
    map "$request_method $uri $comfycheck_query_ok" $comfycheck_page_with_token {{
        "GET / 1" 1;
        default 0;
    }}"""
        # the page opened on /?token=... is sent on to / with the cookie: the token leaves the address bar, and
        # with it every Referer the page's own requests would carry
        lines = ('if ($comfycheck_authorized = 0) { return 401; }\n'
                 '            add_header Set-Cookie $comfycheck_set_token always;\n'
                 '            if ($comfycheck_page_with_token) { return 302 /; }')
        return maps, lines
    raise ProxyAuthError(f"unknown auth mode {mode!r}")
