"""HTTP-level behaviour of ComfyUI's server that the stand-in copies: the Origin/Host guard, caching headers."""
from __future__ import annotations

import functools
import ipaddress
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlparse, urlsplit

from aiohttp import web


def now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=64)
def _is_loopback(host: str | None) -> bool:
    """As ComfyUI's server.is_loopback: an IP literal, else every address the name resolves to."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loopback = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            for *_, sockaddr in socket.getaddrinfo(host, None, family, socket.SOCK_STREAM):
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    return loopback
                loopback = True
        except socket.gaierror:
            pass
    return loopback


@web.middleware
async def origin_check(request: web.Request, handler):
    """ComfyUI's guard against cross-site POSTs to a local server: 403 when Host and Origin differ."""
    host = request.headers.get("Host")
    origin = request.headers.get("Origin")
    if host and origin:
        host_domain = host.lower()
        parsed = urlparse(origin)
        origin_domain = parsed.netloc.lower()
        host_parsed = urlsplit("//" + host_domain)
        loopback = _is_loopback(host_parsed.hostname)
        if parsed.port is None:
            host_domain = host_parsed.hostname or ""
        if host_parsed.port is None:
            origin_domain = parsed.hostname or ""
        if loopback and host_domain and origin_domain and host_domain != origin_domain:
            return web.Response(status=403)
    if request.headers.get("Sec-Fetch-Site") == "cross-site" and _is_loopback(urlsplit("//" + (host or "")).hostname):
        return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


@web.middleware
async def cache_control(request: web.Request, handler):
    response = await handler(request)
    if request.path.endswith((".js", ".css")) or response.status == 404:
        response.headers.setdefault("Cache-Control", "no-store")
    return response



def constant_handler(value: Any):
    async def handler(request):
        return web.json_response(value)
    return handler


def canonical_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


