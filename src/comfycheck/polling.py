"""The one way the suite waits: poll a condition until it holds or a deadline passes."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from . import ComfycheckError

T = TypeVar("T")
# a probe that raises one of these is broken, not waiting: the wait ends with it at once, not at the deadline
PROBE_BUGS: tuple[type[BaseException], ...] = (TypeError, AttributeError, NameError, KeyError, IndexError)


class DeadlineExceeded(ComfycheckError, TimeoutError):
    pass


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    fatal: tuple[type[BaseException], ...] = (),
) -> tuple[T, float]:
    """Call `probe` until it returns something truthy; return (that value, seconds waited).

    Exceptions from `probe` count as "not yet" (the last one is named if the deadline passes), except those in
    `fatal`, which end the wait at once (a process that exited will not start answering), and a bug in the probe
    itself (PROBE_BUGS), which would otherwise pass for a server that never became ready.
    """
    start = time.monotonic()
    deadline = start + timeout
    last: str = "never checked"
    while True:
        try:
            value = probe()
            if value:
                return value, time.monotonic() - start
            last = f"last result: {value!r}"
        except fatal:
            raise
        except PROBE_BUGS:
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure of the probe means "not yet"
            last = f"last error: {type(exc).__name__}: {exc}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"{what}: not reached within {timeout:g} s ({last})")
        # Waiting between probes, bounded by the deadline, is the polling itself, not a fixed sleep.
        time.sleep(min(interval, remaining))
