"""Which loopback ports a process may give the embedded stacks it starts, so that pytest-xdist's workers, and the
pytest runs they start in turn, never reach for the same port.

A process owns a range of ports: the first half for itself, the second half for its children, who find theirs
in $COMFYCHECK_PORTS. The top of the tree owns 10000-25999.
- A serial run takes its free ports (`free_port`: a test's own stack, a Locust master) from its half; the
  profiles' own ports (local.toml's 28xxx, local-real.toml's 29xxx) serve its session's stack.
- pytest-xdist's workers share their controller's children's half, a block each. A worker gives its session's
  embedded profile the first ports of its block in place of the profile's own (`worker_profile`), takes its free
  ports after them, and gives the second half of its block to its children.
- A pytest run started by a self-test (or by a worker of a run started so) does the same within its parent's
  share, however deep.

Everything here lies below Linux's ephemeral range (32768-60999): a port there can be held, now and then, by the
local end of some client connection, and a server then fails to bind it.
"""
from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from .. import ComfycheckError
from ..config.paths import STATE_ROOT

PORTS_ENV = "COMFYCHECK_PORTS"  # "first-last": the ports this process may take (set by its parent)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MIN_BLOCK = 24  # a worker's block: a profile's half dozen ports, a few free ones, its children's share


class PortsError(ComfycheckError):
    pass


@dataclass(frozen=True)
class PortRange:
    start: int
    stop: int  # one past the last

    def __str__(self) -> str:
        return f"{self.start}-{self.stop - 1}"

    def __len__(self) -> int:
        return self.stop - self.start

    @classmethod
    def parse(cls, text: str) -> PortRange:
        match = re.fullmatch(r"\s*(\d+)-(\d+)\s*", text)
        if not match or int(match[1]) > int(match[2]):
            raise PortsError(f"${PORTS_ENV}={text!r}: expected a range of ports, e.g. 10250-10499")
        return cls(int(match[1]), int(match[2]) + 1)

    def halves(self) -> tuple[PortRange, PortRange]:
        mid = self.start + len(self) // 2
        return PortRange(self.start, mid), PortRange(mid, self.stop)

    def block(self, index: int, count: int) -> PortRange:
        """The index-th of `count` equal blocks of this range."""
        size = len(self) // count
        return PortRange(self.start + index * size, self.start + (index + 1) * size)


TOP = PortRange(10000, 26000)


def worker_index(worker: str) -> int:
    match = re.fullmatch(r"gw(\d+)", worker)
    if not match:
        raise PortsError(f"{worker!r} is not a pytest-xdist worker id (gw0, gw1, ...)")
    return int(match[1])


class Ports:
    """One process's ports: those of its profile copies (a worker's only), its free ports, its children's range."""

    def __init__(self, given: PortRange, worker: str | None = None):
        self.worker = worker
        own, self.children = given.halves()
        self.profile_ports = PortRange(own.start, own.start + (len(own) // 4 if worker else 0))
        self.free_ports = PortRange(self.profile_ports.stop, own.stop)
        self._mapped: dict[int, int] = {}
        self._next_free = self.free_ports.start

    def for_profile(self, port: int) -> int:
        """The worker's port in place of a profile's `port`: the same one every time it is asked in this process."""
        if port not in self._mapped:
            if len(self._mapped) >= len(self.profile_ports):
                raise PortsError(f"pytest-xdist worker {self.worker}: more profile ports to place than the "
                                 f"{len(self.profile_ports)} of its block ({self.profile_ports}); run fewer workers")
            self._mapped[port] = self.profile_ports.start + len(self._mapped)
        return self._mapped[port]

    def free(self) -> int:
        """A port of this process's that no one listens on now and that it has not handed out before."""
        for _ in range(len(self.free_ports)):
            port = self._next_free
            self._next_free = port + 1 if port + 1 < self.free_ports.stop else self.free_ports.start
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise PortsError(f"no free loopback port left in {self.free_ports}")


_THIS_PROCESS: list[Ports] = []


def this_process() -> Ports:
    """This process's ports, decided on first use; from then on its children find theirs in $COMFYCHECK_PORTS."""
    if not _THIS_PROCESS:
        _settle(Ports(_given()))
    return _THIS_PROCESS[0]


def become_worker(worker: str, workers: int) -> Ports:
    """This process is pytest-xdist's worker `worker` of `workers`: its block of the share its controller gives its
    children (the controller settled its own ports before it started them)."""
    block = _given().block(worker_index(worker), workers)
    if len(block) < MIN_BLOCK:
        raise PortsError(f"pytest-xdist worker {worker}: {workers} workers leave {len(block)} ports each in "
                         f"{_given()}; run fewer workers")
    return _settle(Ports(block, worker))


def _given() -> PortRange:
    given = os.environ.get(PORTS_ENV)
    return PortRange.parse(given) if given else TOP


def _settle(ports: Ports) -> Ports:
    _THIS_PROCESS[:] = [ports]
    os.environ[PORTS_ENV] = str(ports.children)
    return ports


def free_port() -> int:
    return this_process().free()


def worker_profile(path: Path) -> Path:
    """The profile an xdist worker runs: for an embedded stack, a copy with the worker's own ports in place of each
    loopback port the profile names (written under .comfycheck/workers/); any other profile as it is."""
    ports = this_process()
    if ports.worker is None:
        return path
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if not (data.get("stack") or {}).get("embedded"):
        return path
    copy = STATE_ROOT / "workers" / f"{ports.profile_ports.start}-{ports.worker}" / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    text = tomli_w.dumps(_moved(data, ports))
    tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
    tmp.write_text(f"# {path} with the ports of pytest-xdist worker {ports.worker} (comfycheck.stack.ports)\n"
                   + text, encoding="utf-8")
    os.replace(tmp, copy)
    return copy


def _moved(value, ports: Ports):
    if isinstance(value, dict):
        return {k: _moved(v, ports) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, ports) for v in value]
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.hostname in LOOPBACK_HOSTS and parts.port:
            host = parts.netloc.rsplit(":", 1)[0]
            return urlunsplit(parts._replace(netloc=f"{host}:{ports.for_profile(parts.port)}"))
    return value
