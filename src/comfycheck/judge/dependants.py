"""Root cause first: a check that fails while a foundation it stands on is down is reported as blocked by it.

What a check stands on comes from the fixtures it uses (FIXTURE_NEEDS) and its `needs(...)` marks; the check
that reports a foundation is marked `foundation(key)`. Foundations are probed only when a check fails, so a
healthy run asks nothing extra. Once a foundation is known to have failed in this run (its own check failed, or
a probe said so), what stands on it is reported blocked before it waits on anything, and a failed foundation's
own check is its verdict: it is not probed again. A hung backend costs one timeout, not one per check.
"""
from __future__ import annotations

import pytest

from .foundations import Failure, Foundations

FIXTURE_NEEDS = {
    "deployment": ("stack",),
    "comfy": ("backend",),
    "public_comfy": ("host_origin",),
    "presented": ("public_tls",),
    "comfy_page": ("comfyui_page",),
    "forge": ("forge",),
    "forge_page": ("forge_page",),
}
BLOCKED = "blocked: "


class Dependants:
    def __init__(self, foundations: Foundations):
        self.foundations = foundations
        self.roots: dict[str, str] = {}  # foundation -> the check in this run that reports it
        self.carried: dict[str, str] = {}  # foundation -> the check that failed for it where no root check runs
        self.passed: set[str] = set()

    def in_foundation_order(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """The checks as collected, except that a foundation's own check runs after the checks of the foundations
        it requires (the backend's before the credentials', asked of the backend through the proxy): a failed
        foundation is then known before anything above it waits on it."""
        roots: dict[str, pytest.Item] = {}
        for item in items:
            key = self._own(item)
            if key is not None:
                roots.setdefault(key, item)
        ordered: list[pytest.Item] = []
        placed: set[str] = set()

        def place(item: pytest.Item) -> None:
            if item.nodeid in placed:
                return
            placed.add(item.nodeid)
            key = self._own(item)
            for required in self.foundations.defs[key].requires if key is not None else ():
                if required in roots:
                    place(roots[required])
            ordered.append(item)

        for item in items:
            place(item)
        return ordered

    def collected(self, items: list[pytest.Item]) -> None:
        for item in items:
            mark = item.get_closest_marker("foundation")
            if mark and mark.args[0] in self.foundations.defs:
                self.roots.setdefault(mark.args[0], item.nodeid)

    def _own(self, item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("foundation")
        return mark.args[0] if mark and mark.args[0] in self.foundations.defs else None

    def needs(self, item: pytest.Item) -> list[str]:
        keys = [k for name in getattr(item, "fixturenames", ()) for k in FIXTURE_NEEDS.get(name, ())]
        for mark in item.iter_markers("needs"):
            keys += mark.args
        own = self._own(item)
        if own is not None:
            keys += [own, *self.foundations.defs[own].requires]
        return [k for k in dict.fromkeys(keys) if k in self.foundations.defs]

    def known_blocked(self, item: pytest.Item) -> str | None:
        """Before the check sets up: why it is blocked by a foundation already known to have failed in this run
        (the message to skip it with), or None: it runs. Nothing is probed here."""
        own = self._own(item)
        for key in self.needs(item):
            if key == own:
                continue  # the foundation's own check runs: it is the red line
            failure = self.foundations.failure(key, probe=False)
            if failure is None or not self.foundations.defs[failure.key].skips_dependants:
                continue
            reporter = self._reporter(failure)
            if reporter is not None and reporter != item.nodeid and reporter not in self.passed:
                return self._message(failure, reporter)
        return None

    def _reporter(self, failure: Failure) -> str | None:
        return self.roots.get(failure.key) or self.carried.get(failure.key)

    @staticmethod
    def _message(failure: Failure, reporter: str) -> str:
        return f"{BLOCKED}needs '{failure.title}', which failed in {reporter}"

    def confirm_own_foundation(self, item: pytest.Item) -> None:
        """After a foundation's own check passed: if checks that ran before it were reported as blocked by that
        foundation, the check fails with the probe's verdict, so a blocked check always points at a red one."""
        own = item.get_closest_marker("foundation")
        if own is None:
            return
        failure = self.foundations.results.get(own.args[0])
        if failure is not None and failure.key == own.args[0]:
            pytest.fail(f"{failure.message} (found when an earlier check failed; this check then passed: "
                        "the fault comes and goes)", pytrace=False)

    def blocked_by(self, item: pytest.Item, message: str) -> tuple[Failure, str] | None:
        """The failed foundation under a failing check, and the check that reports it; None: the check's own.
        A foundation's own check that fails (and is not blocked below) is that foundation's verdict."""
        own = self._own(item)
        for key in self.needs(item):
            if key == own:
                continue
            failure = self.foundations.failure(key)
            if failure is None:
                continue
            reporter = self._reporter(failure)
            if reporter is None or reporter == item.nodeid:
                self.carried.setdefault(failure.key, item.nodeid)  # no check here reports it: this one does
                return None
            if reporter in self.passed:
                return None  # its check passed earlier: the foundation broke during the run, this failure is news
            return failure, reporter
        if own is not None and own not in self.foundations.results:
            self.foundations.results[own] = Failure(own, self.foundations.defs[own].title, message)
        return None

    def convert(self, item: pytest.Item, report: pytest.TestReport, message: str) -> None:
        if report.skipped and report.when == "setup" and message.startswith(BLOCKED):
            report.longrepr = (str(item.path), _line(item), f"Skipped: {message}")
            return
        if not report.failed or report.when == "teardown":
            return
        found = self.blocked_by(item, message)
        if found is None:
            return
        failure, reporter = found
        report.outcome = "skipped"  # the cause is told once, by the check that reports it
        report.longrepr = (str(item.path), _line(item), f"Skipped: {self._message(failure, reporter)}")

    def logged(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed:
            self.passed.add(report.nodeid)


def _line(item: pytest.Item) -> int:
    """The check's own line, as pytest numbers it in a skip line (1-based; item.location is 0-based)."""
    return (item.location[1] or 0) + 1
