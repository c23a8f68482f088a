"""How a long run (load, class, soak) is kept in the history: one check before it starts, one way to keep it once
judged, one error handling. A run that was judged but could not be kept says so and exits 3 (exitcodes.NOT_KEPT);
its own folder still holds everything."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..judge.measurements import Measurement
from .store import History, HistoryError, keep_run


@dataclass(frozen=True)
class Kept:
    """Where a run went in the history: its id there, or why it could not be kept; `history` None: not asked."""

    history: Path | None
    kind: str
    run_id: int | None = None
    error: str = ""

    def line(self) -> str:
        if self.error:
            return self.error
        return f"kept as run #{self.run_id} ({self.kind}) in {self.history}" if self.history else "not kept (asked)"


def check_usable(history: Path | None) -> None:
    """Raise HistoryError now, before the run, where the history cannot be written: not after a day of soak."""
    if history is not None:
        History(history).close()


def keep(history: Path | None, profile: str, kind: str, *, started: str, finished: str, verdict: str,
         versions: dict, outcomes: dict, measurements: list[Measurement], report: Path) -> Kept:
    """The run appended to `history` as a run of `kind`; an error is returned in the Kept, never raised."""
    if history is None:
        return Kept(None, kind)
    try:
        run_id = keep_run(history, profile, kind, started=started, finished=finished, verdict=verdict,
                          versions=versions, outcomes=outcomes, measurements=measurements, report=str(report))
    except (HistoryError, sqlite3.Error) as exc:
        return Kept(history, kind, error=f"the {kind} run could not be kept in {history}: {exc}")
    return Kept(history, kind, run_id)
