"""The `measure` fixture's object: every figure a check takes becomes a Measurement for the report, the
history and JUnit, and a figure against a target fails the check when it misses."""
from __future__ import annotations

import contextlib

import pytest

from ..config.profile import Profile
from ..config.targets import Target
from .measurements import FAIL, Measurement

ITEM_MEASUREMENTS_KEY = pytest.StashKey[list]()  # a test's own Measurements, for its part of the report


class Recorder:
    """Records measurements for the report; a measurement against a target fails the test when missed, at once,
    or, inside `with measure.together():`, once at the end of the block, naming every target missed there."""

    def __init__(self, profile: Profile, store: list, item: pytest.Item):
        self.profile = profile
        self.store = store
        self.nodeid = item.nodeid
        self.item = item
        self._deferred = 0

    def __call__(self, target_key: str, value: float, *, name: str | None = None, fix: str = "",
                 **details) -> Measurement:
        return self.against(self.profile.targets[target_key], value, name=name, fix=fix, **details)

    def against(self, target: Target, value: float, *, name: str | None = None, fix: str = "",
                **details) -> Measurement:
        """A measurement against a target (one of the profile's, or one worked out by the check, such as a
        certificate's renewal point); `fix` is what the operator should do when it is missed."""
        return self.judged(Measurement(name or target.label, float(value), target.unit, target,
                                       details=details, fix=fix))

    def judged(self, m: Measurement) -> Measurement:
        """A Measurement against its target, made by a function the check shares (with a foundation's probe,
        say): kept as this check's, and the check fails when it is missed."""
        m.test = self.nodeid
        self._keep(m)
        if m.verdict == FAIL and not self._deferred:
            pytest.fail(m.failure_message(), pytrace=False)
        return m

    def not_assessed(self, target_key: str, why: str, **details) -> Measurement:
        """A figure against a target that could not be taken this time, and why: kept in the report and the
        history beside the figures that were, neither a pass nor a miss."""
        t = self.profile.targets[target_key]
        return self.judged(Measurement(t.label, None, t.unit, t, details=details, not_assessed=why))

    @contextlib.contextmanager
    def together(self):
        """Record every figure of the block, then fail once if any target was missed (none is lost to the
        first miss)."""
        before = len(self.item.stash.get(ITEM_MEASUREMENTS_KEY, []))
        self._deferred += 1
        try:
            yield self
        finally:
            self._deferred -= 1
        missed = [m for m in self.item.stash.get(ITEM_MEASUREMENTS_KEY, [])[before:] if m.verdict == FAIL]
        if missed:
            pytest.fail("; ".join(m.failure_message() for m in missed), pytrace=False)

    def record(self, m: Measurement) -> Measurement:
        """A Measurement taken elsewhere (the load run), kept as it is: its verdict is not judged again."""
        m.test = f"{self.nodeid} ({m.test})" if m.test else self.nodeid
        self._keep(m)
        return m

    def info(self, name: str, value, unit: str = "", **details) -> Measurement:
        m = Measurement(name, value, unit, None, self.nodeid, details)
        self._keep(m)
        return m

    def _keep(self, m: Measurement) -> None:
        self.store.append(m)
        self.item.stash.setdefault(ITEM_MEASUREMENTS_KEY, []).append(m)
        self.item.user_properties.append((m.name, m.summary()))  # JUnit XML's <property>, for a CI server
