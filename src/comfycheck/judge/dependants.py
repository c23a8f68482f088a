"""Root cause first: a check that fails while a foundation it stands on is down is reported as blocked by it.

What a check stands on comes from the fixtures it uses (FIXTURE_NEEDS) and its `needs(...)` marks; the check
that reports a foundation is marked `foundation(key)`. Foundations are probed only when a check fails, so a
healthy run asks nothing extra.
"""
from __future__ import annotations

import pytest

from .foundations import Failure, Foundations

FIXTURE_NEEDS = {
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

    def collected(self, items: list[pytest.Item]) -> None:
        for item in items:
            mark = item.get_closest_marker("foundation")
            if mark and mark.args[0] in self.foundations.defs:
                self.roots.setdefault(mark.args[0], item.nodeid)

    def needs(self, item: pytest.Item) -> list[str]:
        keys = [k for name in getattr(item, "fixturenames", ()) for k in FIXTURE_NEEDS.get(name, ())]
        for mark in item.iter_markers("needs"):
            keys += mark.args
        own = item.get_closest_marker("foundation")
        if own and own.args[0] in self.foundations.defs:
            keys += [own.args[0], *self.foundations.defs[own.args[0]].requires]
        return [k for k in dict.fromkeys(keys) if k in self.foundations.defs]

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

    def blocked_by(self, item: pytest.Item) -> tuple[Failure, str] | None:
        """The failed foundation under a failing check, and the check that reports it; None: the check's own."""
        for key in self.needs(item):
            failure = self.foundations.failure(key)
            if failure is None:
                continue
            reporter = self.roots.get(failure.key) or self.carried.get(failure.key)
            if reporter is None or reporter == item.nodeid:
                self.carried.setdefault(failure.key, item.nodeid)  # no check here reports it: this one does
                return None
            if reporter in self.passed:
                return None  # its check passed earlier: the foundation broke during the run, this failure is news
            return failure, reporter
        return None

    def convert(self, item: pytest.Item, report: pytest.TestReport) -> None:
        if not report.failed or report.when == "teardown":
            return
        found = self.blocked_by(item)
        if found is None:
            return
        failure, reporter = found
        report.outcome = "skipped"  # the cause is told once, by the check that reports it
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {BLOCKED}needs '{failure.title}', which failed in {reporter}")

    def logged(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed:
            self.passed.add(report.nodeid)
