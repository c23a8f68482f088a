"""Which addresses are this machine's loopback: a profile's rules (a backend that must not be public, a stack that
binds only there) and every check that treats loopback apart share this one answer."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL (or bare host name) points at this machine's loopback."""
    host = (urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host) or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
