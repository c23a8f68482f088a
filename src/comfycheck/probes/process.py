"""The processes of this host: which one listens on a port, on which addresses, and whether a URL is this host."""
from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: float  # create time, so a reused PID is not mistaken for the old process

    def __str__(self) -> str:
        return f"pid {self.pid}"


def listening_process(port: int) -> ProcessId | None:
    """The process listening on this TCP port on this host, if any (needs the right to see it)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return ProcessId(conn.pid, psutil.Process(conn.pid).create_time())
            except psutil.Error:
                return None
    return None


def listening_addresses(port: int) -> list[str] | None:
    """The addresses TCP `port` is bound to on this host (0.0.0.0 and :: mean every interface);
    None when this user may not read the host's sockets."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    return sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port})
