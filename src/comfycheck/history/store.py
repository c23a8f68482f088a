"""The run history: one SQLite file every pytest session and load run appends to.

WAL mode and one transaction per write: two runs finishing at once both land (the second waits for the first's
lock), and a run killed at any moment leaves every earlier run intact (a half-written run is rolled back by
SQLite; a run killed before it finished keeps its start row, with no end). The schema carries its version
(PRAGMA user_version) and upgrades itself when an older file is opened.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import ComfycheckError
from ..judge.measurements import Measurement
from ..polling import DeadlineExceeded, wait_until

# Each step takes the file from version N-1 to N, in one transaction with the version bump.
MIGRATIONS: list[list[str]] = [
    [  # 1: runs, their checks and their measurements
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,          -- ISO 8601, UTC
            finished TEXT,                  -- NULL: still running, or killed before it finished
            profile TEXT NOT NULL,
            kind TEXT NOT NULL,             -- "pytest -m smoke", "pytest", "load", ...
            verdict TEXT,                   -- passed / failed / nothing checked / interrupted / ...
            outcomes TEXT NOT NULL DEFAULT '{}',   -- JSON: passed, failed, error, skipped, blocked
            versions TEXT NOT NULL DEFAULT '{}',   -- JSON: comfyui, frontend, torch, gpu, comfycheck, ...
            report TEXT NOT NULL DEFAULT '',
            host TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX runs_by_profile ON runs (profile, id)",
        """CREATE TABLE checks (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            nodeid TEXT NOT NULL,
            outcome TEXT NOT NULL,          -- passed / failed / error / skipped
            message TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX checks_by_run ON checks (run_id)",
        """CREATE TABLE measurements (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            target TEXT,                    -- the target's key; NULL for an informative figure
            name TEXT NOT NULL,
            value REAL,                     -- NULL: a text, or a figure not taken
            text TEXT,                      -- the value where it is not a number
            unit TEXT NOT NULL DEFAULT '',
            threshold REAL,
            op TEXT,
            verdict TEXT NOT NULL,
            test TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL              -- the Measurement as as_dict() writes it
        )""",
        "CREATE INDEX measurements_by_run ON measurements (run_id)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
LOCK_TIMEOUT_S = 60.0  # how long a writer waits for another's transaction (a report's worth of rows: milliseconds)


class HistoryError(ComfycheckError):
    """A history file that cannot be used; the message names it."""


@dataclass
class Run:
    id: int
    started: str
    finished: str | None
    profile: str
    kind: str
    verdict: str | None
    outcomes: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    report: str = ""
    host: str = ""

    @property
    def label(self) -> str:
        return f"#{self.id} {self.started[:16].replace('T', ' ')}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class History:
    """One history file. Each method opens its own short transaction; the object may live for a whole run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            wait_until(self._prepared, timeout=LOCK_TIMEOUT_S, interval=0.02, fatal=(sqlite3.DatabaseError,),
                       what="the other writers' hold on the file to end")
        except DeadlineExceeded as exc:
            raise HistoryError(f"history {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"history {self.path}: {exc} (move the file aside, or choose another with "
                               "--history / [results] history)") from None
        except OSError as exc:
            raise HistoryError(f"history {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- schema ---------------------------------------------------------------------------------
    def _prepared(self) -> bool:
        """WAL and the schema, or False where another connection holds the file in a way SQLite answers "locked"
        at once instead of waiting out the lock timeout (two sessions switching a new file to WAL together)."""
        try:
            self._wal()
            self._upgrade()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return False
            raise
        return True

    def _wal(self) -> None:
        # WAL stays set in the file; switching waits on other writers through the connection's lock timeout
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot use write-ahead logging here (journal mode {mode})")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt

    def _upgrade(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"written by a newer comfycheck (schema {version}; this one reads up to "
                                        f"{SCHEMA_VERSION})")
        if version == SCHEMA_VERSION:
            return
        with self._write() as db:  # one upgrader at a time; the others find it done
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {step + 1}")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # --- writing --------------------------------------------------------------------------------
    def begin(self, profile: str, kind: str, *, started: str | None = None, host: str = "") -> int:
        """The run's start row: a run that never finishes still shows (as not finished)."""
        with self._write() as db:
            cur = db.execute("INSERT INTO runs (started, profile, kind, host) VALUES (?, ?, ?, ?)",
                             (started or now_iso(), profile, kind, host))
            return cur.lastrowid

    def finish(self, run_id: int, *, verdict: str, outcomes: dict, versions: dict, measurements: list[Measurement],
               checks: Sequence[tuple[str, str, str]] = (), report: str = "", finished: str | None = None) -> None:
        """Everything the run found, in one transaction: all of it lands, or none of it."""
        rows = [_measurement_row(run_id, seq, m) for seq, m in enumerate(measurements)]
        with self._write() as db:
            db.execute("UPDATE runs SET finished = ?, verdict = ?, outcomes = ?, versions = ?, report = ? "
                       "WHERE id = ?", (finished or now_iso(), verdict, json.dumps(outcomes),
                                        json.dumps(versions), report, run_id))
            db.executemany("INSERT INTO checks (run_id, nodeid, outcome, message) VALUES (?, ?, ?, ?)",
                           [(run_id, *c) for c in checks])
            db.executemany("INSERT INTO measurements (run_id, seq, target, name, value, text, unit, threshold, op, "
                           "verdict, test, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def append(self, profile: str, kind: str, *, started: str, **finish) -> int:
        """A whole run at once (a load run, an import)."""
        run_id = self.begin(profile, kind, started=started, host=finish.pop("host", ""))
        self.finish(run_id, **finish)
        return run_id

    @contextlib.contextmanager
    def _write(self):
        """One write transaction. BEGIN IMMEDIATE takes the write lock at once (waiting up to the lock timeout
        for another run's): no deadlock from two readers both upgrading to writers."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- reading --------------------------------------------------------------------------------
    def runs(self, profile: str | None = None, *, kind: str | None = None, finished_only: bool = False,
             before: int | None = None, limit: int | None = None) -> list[Run]:
        """Runs, oldest first (the newest `limit` of them where a limit is given)."""
        where, args = [], []
        for clause, value in (("profile = ?", profile), ("kind = ?", kind), ("id < ?", before)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if finished_only:
            where.append("finished IS NOT NULL")
        sql = "SELECT id, started, finished, profile, kind, verdict, outcomes, versions, report, host FROM runs"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        rows = self.db.execute(sql, args).fetchall()
        return [Run(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), r[8], r[9])
                for r in reversed(rows)]

    def last_passed(self, profile: str, *, before: int | None = None) -> Run | None:
        """The newest run of the profile, of any kind, that passed and saw the deployment's versions."""
        row = self.db.execute("SELECT id FROM runs WHERE profile = ? AND verdict = 'passed' AND id < ? AND "
                              "versions LIKE '%\"comfyui\"%' ORDER BY id DESC LIMIT 1",
                              (profile, before if before is not None else 2**62)).fetchone()
        return self.runs(profile, before=row[0] + 1, limit=1)[0] if row else None

    def profiles(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT profile FROM runs ORDER BY profile")]

    def figures(self, run_ids: list[int]) -> list[tuple]:
        """(run_id, target, name, value, unit, threshold, op, verdict, test) of the runs' judged figures."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        return self.db.execute(
            f"SELECT run_id, target, name, value, unit, threshold, op, verdict, test FROM measurements "
            f"WHERE run_id IN ({marks}) AND target IS NOT NULL ORDER BY run_id, seq", run_ids).fetchall()

    def measurements(self, run_id: int) -> list[Measurement]:
        rows = self.db.execute("SELECT data FROM measurements WHERE run_id = ? ORDER BY seq", (run_id,))
        return [Measurement.from_dict(json.loads(r[0])) for r in rows]

    def checks(self, run_id: int) -> dict[str, tuple[str, str]]:
        rows = self.db.execute("SELECT nodeid, outcome, message FROM checks WHERE run_id = ?", (run_id,))
        return {r[0]: (r[1], r[2]) for r in rows}


def _measurement_row(run_id: int, seq: int, m: Measurement) -> tuple:
    t = m.target
    return (run_id, seq, t.key if t else None, m.name, m.number, None if m.number is not None else
            (None if m.value is None else str(m.value)), m.unit, t.threshold if t else None, t.op if t else None,
            m.verdict, m.test, json.dumps(m.as_dict(), default=str))


def keep_run(path: Path, profile: str, kind: str, *, started: str, finished: str, verdict: str, versions: dict,
             outcomes: dict, measurements: list[Measurement], report: str) -> int:
    """A run that keeps itself (a load run, a soak), appended whole, with this host's name; its id."""
    with History(path) as history:
        return history.append(profile, kind, started=started, finished=finished, verdict=verdict, versions=versions,
                              outcomes=outcomes, measurements=measurements, report=report, host=socket.gethostname())
