"""This host's own CPUs while it times a server: a request timed while every CPU here is taken by other work
measures the wait for a CPU on this host, not the server. A latency check takes its samples at once; where they
miss the target, the miss is confirmed by samples taken in moments when this host is not saturated (waiting for
such moments within a bound), and where there were none, it says so instead of a verdict."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import psutil

from ..polling import DeadlineExceeded, wait_until

SATURATED_SHARE = 0.9  # of all this host's CPUs busy: past it, work here waits in line for a CPU
BUSY_ROUND_SHARE = 0.5  # the same over a soak round's whole interval (an average: see busy_round)
CALM_WINDOW_S = 0.25  # how long a look at the CPUs decides that the host is calm (the kernel counts in 10 ms ticks)
SAMPLES_PER_LOOK = 10  # samples taken between two looks (a few milliseconds each)
T = TypeVar("T")


def busy_share(before, after) -> float:
    """The share of all CPUs busy between two psutil.cpu_times() readings (0 to 1)."""
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    return 0.0 if total <= 0 else max(0.0, min(1.0, 1.0 - idle / total))


class HostCpu:
    """This host's CPUs between two looks: busy_share() is the share busy since the previous look."""

    def __init__(self) -> None:
        self.cpus = psutil.cpu_count() or 1
        self._last = psutil.cpu_times()

    def busy_share(self, *, comfyui_cpu_pct: float | None = None) -> float:
        """Since the previous call: the share of all CPUs busy, less what ComfyUI's own process used (its
        psutil cpu_percent, where it runs here): the work that is not the server's."""
        now = psutil.cpu_times()
        share = busy_share(self._last, now)
        self._last = now
        if comfyui_cpu_pct:
            share = max(0.0, share - comfyui_cpu_pct / 100 / self.cpus)
        return round(share, 3)


def saturated(share: float | None) -> bool:
    return share is not None and share >= SATURATED_SHARE


def busy_round(share: float | None) -> bool:
    """Whether a soak round's share (busy_share since the round before) says its probes may have waited for a
    CPU: that share is an average over the whole interval, and past half of the CPUs its probes met the moments
    when every CPU was taken (seen on a 2-core host: 23-34 ms at 0.8 against 3-7 ms when calm)."""
    return share is not None and share >= BUSY_ROUND_SHARE


@dataclass
class Samples(Generic[T]):
    values: list[T]
    wanted: int
    first_missed: list[T] | None = None  # the samples taken at once, where they missed and were taken again
    busy_batches: int = 0  # batches of the second take taken again: the host was saturated while they were timed
    waited_s: float = 0.0  # how long the second take waited for calm moments

    @property
    def complete(self) -> bool:
        return len(self.values) >= self.wanted

    def note(self) -> str:
        if self.first_missed is None:
            return f"{len(self.values)} samples"
        if self.complete:
            return (f"{len(self.values)} samples timed while this host was not saturated, after the first "
                    f"{len(self.first_missed)} missed the target"
                    + (f" ({self.busy_batches} batch(es) on a saturated host taken again)" if self.busy_batches
                       else ""))
        return (f"the samples missed the target, and this host's CPUs then stayed saturated by other work for "
                f"{self.waited_s:.0f} s: only {len(self.values)} of {self.wanted} could be timed on a calm host; a "
                "latency timed now would time the wait for a CPU here, not the server")


def sampled(take: Callable[[], T], wanted: int, missed: Callable[[list[T]], bool], *,
            within_s: float = 60.0) -> Samples[T]:
    """`wanted` values of `take()` (a timed request), taken at once; where missed(values) says they miss the
    target, taken again as timed_when_calm takes them, so that a miss is one of the server's."""
    first = [take() for _ in range(wanted)]
    if not missed(first):
        return Samples(first, wanted)
    again = timed_when_calm(take, wanted, within_s=within_s)
    again.first_missed = first
    return again


def timed_when_calm(take: Callable[[], T], wanted: int, *, within_s: float = 60.0) -> Samples[T]:
    """`wanted` values of `take()`, taken in batches between looks at this host's CPUs: a batch starts after a
    calm look and is kept when the host stayed below saturation while it was taken."""
    values: list[T] = []
    retaken = 0
    t0 = time.monotonic()
    while len(values) < wanted:
        left = within_s - (time.monotonic() - t0)
        try:
            wait_until(_calm_look, timeout=max(0.0, left), interval=0.0, what="this host's CPUs not saturated")
        except DeadlineExceeded:
            break
        before = psutil.cpu_times()
        batch = [take() for _ in range(min(SAMPLES_PER_LOOK, wanted - len(values)))]
        if not saturated(busy_share(before, psutil.cpu_times())):
            values += batch
        else:
            retaken += 1
    return Samples(values, wanted, busy_batches=retaken, waited_s=time.monotonic() - t0)


def _calm_look() -> bool:
    return not saturated(psutil.cpu_percent(interval=CALM_WINDOW_S) / 100)
