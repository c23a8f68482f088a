"""What a pytest session leaves behind beyond its report: a row in the run history (and, asked for, a Prometheus
text file), and the comparison with the previous run of the same profile for the report's headline."""
from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from .. import exitcodes
from ..config.paths import PROJECT_ROOT
from ..config.profile import Profile
from ..history import History, HistoryError
from ..history import versions as seen_versions
from ..history.compare import BAD, Comparison, compare
from ..history.store import now_iso
from ..judge.measurements import FAIL, Measurement
from . import prometheus
from .report import Outcome, counts, run_verdict


def add_options(group) -> None:
    group.addoption("--history", default=None, metavar="PATH",
                    help="run history to append to (SQLite); default: the profile's [results] history, "
                         "else reports/history.sqlite")
    group.addoption("--no-history", action="store_true", default=False,
                    help="keep this run out of the history")
    group.addoption("--prometheus", default=None, metavar="PATH",
                    help="write the run's figures as a Prometheus text file (node_exporter's textfile collector); "
                         "default: the profile's [results] prometheus_file, else none")


def run_kind(config: pytest.Config) -> str:
    """How the run was started, as far as it decides what ran: 'pytest -m smoke', 'pytest tests/ui', ..."""
    parts = ["pytest"]
    if config.option.markexpr:
        parts.append(f"-m {config.option.markexpr!r}" if " " in config.option.markexpr
                     else f"-m {config.option.markexpr}")
    if config.option.keyword:
        parts.append(f"-k {config.option.keyword!r}")
    given = [a for a in config.args if a not in (config.getini("testpaths") or [])]
    if config.args_source == pytest.Config.ArgsSource.ARGS and given:
        parts += [_relative(a) for a in given]
    return " ".join(parts)


def _relative(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return arg


def _writable_folder(path: Path, what: str) -> None:
    """Fail before the run, not after it, where its output could not be written."""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK) or path.is_dir():
        raise pytest.UsageError(f"{what}: cannot write {path} ({folder} is not writable)" if not path.is_dir()
                                else f"{what}: {path} is a folder; give a file name (comfycheck.prom)")


class RunRecord:
    """One pytest session in the history: a start row at session start, everything else at the end."""

    def __init__(self, config: pytest.Config, profile: Profile, outcomes: dict[str, Outcome],
                 measurements: list[Measurement], *, keeps: bool = True):
        """keeps=False: a pytest-xdist worker's record, which only gathers what the worker saw of the deployment
        for the controller (seen()); the controller's keeps the run."""
        self.config = config
        self.profile = profile
        self.outcomes = outcomes
        self.measurements = measurements
        self.system_stats: dict = {}
        self.custom_nodes: str | None = None
        self.run_id: int | None = None
        self.kind = run_kind(config)
        self.history: History | None = None
        self._comparison: Comparison | None = None
        self.started = time.time()
        self.lost = ""  # why the run could not be kept in the history, if it could not
        given = config.getoption("--prometheus")
        configured = profile.results.prometheus_file
        self.prometheus = (Path(given).resolve() if given else profile.resolve(configured) if configured else None)
        if not keeps:
            self.prometheus = None
            return
        if self.prometheus is not None:
            _writable_folder(self.prometheus, "--prometheus / [results] prometheus_file")
        path = self.history_path()
        if path is not None:
            try:
                self.history = History(path)
            except HistoryError as exc:
                raise pytest.UsageError(str(exc)) from None

    def history_path(self) -> Path | None:
        if self.config.getoption("--no-history"):
            return None
        given = self.config.getoption("--history")
        return Path(given).resolve() if given else self.profile.history_path

    def saw_system_stats(self, stats: dict) -> None:
        """The first /system_stats of the run (the `comfy` fixture's): where the versions come from."""
        self.system_stats = self.system_stats or stats

    def saw_custom_nodes(self, loaded: list[str], failed: list[str]) -> None:
        """The custom nodes the server loaded (/object_info) and those its log says failed to import."""
        self.custom_nodes = seen_versions.of_custom_nodes(loaded, failed)

    def seen(self) -> dict:
        """What this record saw of the deployment, as plain data (a worker's, for the controller's saw())."""
        return {"system_stats": self.system_stats, "custom_nodes": self.custom_nodes}

    def saw(self, seen: dict) -> None:
        self.saw_system_stats(seen.get("system_stats") or {})
        if self.custom_nodes is None:
            self.custom_nodes = seen.get("custom_nodes")

    def versions(self) -> dict[str, str]:
        return seen_versions.of_run(self.system_stats, custom_nodes=self.custom_nodes)

    # --- hooks ----------------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.history is not None and not self.config.option.collectonly:
            self.run_id = self.history.begin(self.profile.name, self.kind, host=socket.gethostname())

    def comparison(self) -> Comparison | None:
        """This run against the previous of its profile and kind (computed once, for headline and terminal)."""
        if self.history is None or self.run_id is None:
            return None
        if self._comparison is None:
            checks = {o.nodeid: o.outcome for o in self.outcomes.values()}
            failed = any(o in BAD for o in checks.values()) or any(m.verdict == FAIL for m in self.measurements)
            self._comparison = compare(self.history, profile=self.profile.name, kind=self.kind, run_id=self.run_id,
                                       measurements=self.measurements, checks=checks, versions=self.versions(),
                                       window=self.profile.results.regression_window,
                                       pct=self.profile.results.regression_pct, failed=failed)
        return self._comparison

    @pytest.hookimpl(tryfirst=True)  # before pytest-html writes the report that shows the comparison
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly:
            return
        outcomes = list(self.outcomes.values())
        verdict = run_verdict(outcomes, int(exitstatus))
        if self.prometheus is not None:
            prometheus.write(self.prometheus, profile=self.profile.name, kind=self.kind,
                             measurements=self.measurements, counts=counts(outcomes), success=verdict == "passed",
                             finished_ts=time.time(), duration_s=time.time() - self.started)
        if self.history is None or self.run_id is None:
            return
        html_path = self.config.getoption("htmlpath", None)
        try:
            self.comparison()
            self.history.finish(self.run_id, verdict=verdict, outcomes=counts(outcomes), versions=self.versions(),
                                measurements=self.measurements,
                                checks=[(o.nodeid, o.outcome, o.message) for o in outcomes],
                                report=str(Path(html_path).resolve()) if html_path else "", finished=now_iso())
        except sqlite3.Error as exc:  # the report and measurements.json are still written; the run must not pass
            self.lost = f"run #{self.run_id} could not be kept in {self.history.path}: {exc}"
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                session.exitstatus = exitcodes.NOT_KEPT

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lost:
            terminalreporter.write_line(f"comfycheck: {self.lost}", red=True, bold=True)
        elif self.history is not None and self.run_id is not None:
            c = self.comparison()
            for line in c.lines() if c else []:
                terminalreporter.write_line(f"comfycheck: {line}" if not line.startswith("  ") else line)
            terminalreporter.write_line(f"comfycheck: run #{self.run_id} ({self.kind}) kept in {self.history.path}")
        if self.prometheus is not None and not self.config.option.collectonly:
            terminalreporter.write_line(f"comfycheck: figures written for Prometheus to {self.prometheus}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.history is not None:
            self.history.close()
