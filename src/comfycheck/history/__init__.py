"""Run history: every run appends to a SQLite file; the trend page and the report's comparison read it."""
from .store import SCHEMA_VERSION, History, HistoryError, Run, keep_run

__all__ = ["History", "HistoryError", "Run", "SCHEMA_VERSION", "keep_run"]
