"""A soak's samples on disk: one SQLite file per soak, written as they come (one short transaction per tick),
so a killed soak loses at most its last interval and its report can be rebuilt from the file.

Readers iterate rows (cursors); nothing here holds a whole series in memory unless the caller asks for it.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from .. import ComfycheckError

SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",  # JSON values
    """CREATE TABLE ticks (
        t REAL NOT NULL,            -- epoch seconds at the start of the round of probes
        up INTEGER NOT NULL,        -- 1: every probe answered in time
        failed TEXT NOT NULL,       -- what failed: "backend", "proxy", "websocket", "canary" (comma-separated)
        direct_ms REAL,             -- GET /system_stats on the backend; NULL when it failed
        public_ms REAL,             -- the same through the public address
        error TEXT,                 -- the first failure's message
        ws_up INTEGER,              -- the held WebSocket was open at this tick
        queue INTEGER,              -- prompts running + pending
        vram_used INTEGER,          -- bytes on ComfyUI's card (NVML, else /system_stats)
        vram_total INTEGER,
        temp_c REAL,
        rss INTEGER,                -- ComfyUI's process, where it runs on this host
        cpu_pct REAL,
        pid INTEGER,
        host_busy REAL              -- this host's CPUs busy since the last round with work other than ComfyUI's (0-1)
    )""",
    "CREATE INDEX ticks_by_t ON ticks (t)",
    """CREATE TABLE events (
        t REAL NOT NULL,
        kind TEXT NOT NULL,         -- ws_drop, ws_reconnect, restart, note
        value REAL,                 -- a drop's silence before it, a reconnect's seconds
        detail TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE canaries (
        t REAL NOT NULL,            -- when it was submitted
        ok INTEGER NOT NULL,
        server_s REAL,              -- ComfyUI's own create -> terminal time
        wall_s REAL NOT NULL,
        error TEXT NOT NULL DEFAULT ''
    )""",
]


@dataclass
class Tick:
    t: float
    up: bool
    failed: str = ""
    direct_ms: float | None = None
    public_ms: float | None = None
    error: str = ""
    ws_up: bool | None = None
    queue: int | None = None
    vram_used: int | None = None
    vram_total: int | None = None
    temp_c: float | None = None
    rss: int | None = None
    cpu_pct: float | None = None
    pid: int | None = None
    host_busy: float | None = None


TICK_COLUMNS = [f.name for f in fields(Tick)]


class SampleFileError(ComfycheckError):
    """A samples file that cannot be read; the message names it."""


class SampleStore:
    def __init__(self, path: Path, *, create: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()  # one connection, three writers (probes, canary, WebSocket): one at a time
        self.closed = False
        if not create and not self.path.is_file():
            raise SampleFileError(f"{self.path}: no such samples file")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if create:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut may lose the last commits, no more
                if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ticks'").fetchone():
                    with self._tx():
                        for statement in SCHEMA:
                            self.db.execute(statement)
            elif not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ticks'").fetchone():
                raise SampleFileError(f"{self.path}: not a soak's samples file (no ticks table)")
            elif "host_busy" not in {row[1] for row in self.db.execute("PRAGMA table_info(ticks)")}:
                self.db.execute("ALTER TABLE ticks ADD COLUMN host_busy REAL")  # a soak's file from before it
        except sqlite3.DatabaseError as exc:
            raise SampleFileError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        """Close; a write that comes later (a canary finishing after the end) is dropped, not an error."""
        with self._lock:
            self.closed = True
            self.db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tx(self):
        return _Transaction(self)

    # --- writing (the runner's thread, and the canary's and WebSocket's through add_event / add_canary) ----
    def set_meta(self, **values) -> None:
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                [(k, json.dumps(v, default=str)) for k, v in values.items()])

    def add_tick(self, tick: Tick) -> None:
        self.add_ticks([tick])

    def add_ticks(self, ticks: list[Tick]) -> None:
        """Rounds in one transaction (the runner commits each as it comes; a benchmark writes a day at once)."""
        marks = ", ".join("?" * len(TICK_COLUMNS))
        try:
            with self._tx():
                self.db.executemany(f"INSERT INTO ticks ({', '.join(TICK_COLUMNS)}) VALUES ({marks})",
                                    [astuple(t) for t in ticks])
        except StoreClosed:
            pass

    def add_event(self, t: float, kind: str, value: float | None = None, detail: str = "") -> None:
        self._insert("INSERT INTO events (t, kind, value, detail) VALUES (?, ?, ?, ?)", (t, kind, value, detail))

    def add_canary(self, t: float, ok: bool, server_s: float | None, wall_s: float, error: str = "") -> None:
        self._insert("INSERT INTO canaries (t, ok, server_s, wall_s, error) VALUES (?, ?, ?, ?, ?)",
                     (t, int(ok), server_s, wall_s, error))

    def _insert(self, sql: str, row: tuple) -> None:
        try:
            with self._tx():
                self.db.execute(sql, row)
        except StoreClosed:
            pass

    # --- reading ----------------------------------------------------------------------------------
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def ticks(self, columns: str = "*") -> Iterator[tuple]:
        """Rows of the ticks table in time order (a cursor: one row at a time)."""
        return self.db.execute(f"SELECT {columns} FROM ticks ORDER BY t")

    def column(self, name: str) -> list:
        """One column's non-NULL values in time order (86,400 floats are ~3 MB)."""
        sql = f"SELECT {_column(name)} FROM ticks WHERE {name} IS NOT NULL ORDER BY t"
        return [r[0] for r in self.db.execute(sql)]

    def series(self, name: str, *, after: float | None = None, pid: int | None = None) -> list[tuple[float, float]]:
        """(t, value) of one column's non-NULL values in time order, from `after` on, of one process if asked."""
        where, args = [f"{_column(name)} IS NOT NULL"], []
        if after:
            where.append("t >= ?")
            args.append(after)
        if pid is not None:
            where.append("pid = ?")
            args.append(pid)
        return self.db.execute(f"SELECT t, {name} FROM ticks WHERE {' AND '.join(where)} ORDER BY t",
                               args).fetchall()

    def peak(self, name: str) -> float | None:
        return self.db.execute(f"SELECT MAX({_column(name)}) FROM ticks").fetchone()[0]

    def longest_pid(self) -> int | None:
        """The process that answered the most rounds (a restart starts a fresh process, its memory with it)."""
        row = self.db.execute("SELECT pid FROM ticks WHERE pid IS NOT NULL GROUP BY pid ORDER BY COUNT(*) DESC "
                              "LIMIT 1").fetchone()
        return row[0] if row else None

    def service_down_between(self, start: float, end: float) -> bool:
        """Whether the backend or the proxy failed a round in [start, end]."""
        return self.db.execute(
            "SELECT 1 FROM ticks WHERE up = 0 AND (failed LIKE '%backend%' OR failed LIKE '%proxy%') "
            "AND t BETWEEN ? AND ? LIMIT 1", (start, end)).fetchone() is not None

    def per_bucket(self, name: str, start: float, width: float) -> list[tuple[int, float, float, float]]:
        """(bucket, min, max, mean) of a column (or "down": 1 for a failed round) in buckets of `width` seconds
        from `start`: a chart's columns of pixels, computed in SQLite."""
        expr = "1 - up" if name == "down" else _column(name)
        sql = (f"SELECT CAST((t - ?) / ? AS INTEGER) AS b, MIN({expr}), MAX({expr}), AVG({expr}) FROM ticks "
               f"WHERE {expr} IS NOT NULL GROUP BY b ORDER BY b")
        return self.db.execute(sql, (start, width)).fetchall()

    def span(self) -> tuple[float, float, int]:
        """(first tick, last tick, tick count)."""
        first, last, n = self.db.execute("SELECT MIN(t), MAX(t), COUNT(*) FROM ticks").fetchone()
        return first or 0.0, last or 0.0, n

    def events(self, kind: str | None = None) -> list[tuple[float, str, float | None, str]]:
        sql, args = "SELECT t, kind, value, detail FROM events", ()  # type: tuple[str, tuple[str, ...]]
        if kind:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return self.db.execute(sql + " ORDER BY t", args).fetchall()

    def canaries(self) -> list[tuple[float, bool, float | None, float, str]]:
        rows = self.db.execute("SELECT t, ok, server_s, wall_s, error FROM canaries ORDER BY t").fetchall()
        return [(t, bool(ok), s, w, e) for t, ok, s, w, e in rows]


def _column(name: str) -> str:
    if name not in TICK_COLUMNS:
        raise ValueError(f"no column {name!r} in ticks")
    return name


class StoreClosed(ComfycheckError):
    pass


class _Transaction:
    def __init__(self, store: SampleStore):
        self.store = store
        self.db = store.db
        self.lock = store._lock

    def __enter__(self):
        self.lock.acquire()
        if self.store.closed:
            self.lock.release()
            raise StoreClosed()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
