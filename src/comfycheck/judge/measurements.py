"""The one currency of a judged figure: a Measurement, whoever took it (a pytest check, the load run, a later
runner), and the one way Measurements are written to and read from disk (measurements.json, a load run's summary).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config.targets import Target
from ..config.units import rounded
from ..config.units import shown as written

NOT_ASSESSED = "not assessed"
PASS, FAIL, INFO = "pass", "FAIL", "info"


@dataclass
class Measurement:
    """One judged (or informative) figure.

    verdict: "pass" / "FAIL" against its target, "info" without one, "not assessed" (with the reason in
    `not_assessed`) where the figure could not be taken (no GPU, a run too short for the target). `fix` is what
    the operator should do when the target is missed; `details` is the context (a header, a device, a note)."""

    name: str
    value: float | str | None
    unit: str = ""
    target: Target | None = None
    test: str = ""
    details: dict = field(default_factory=dict)
    not_assessed: str = ""
    fix: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
            self.value = rounded(self.value, self.unit, self.places)  # one figure everywhere (config.units)

    @property
    def places(self) -> int | None:
        return self.target.decimals if self.target is not None else None

    @property
    def shown(self) -> str:
        """The value as every output writes it."""
        if self.number is None:
            return "" if self.value is None else str(self.value)
        return written(self.value, self.unit, self.places)  # type: ignore[arg-type]

    @property
    def verdict(self) -> str:
        if self.not_assessed:
            return NOT_ASSESSED
        if self.target is None or not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            return INFO
        return PASS if self.target.met_by(self.value) else FAIL

    @property
    def key(self) -> str | None:
        return self.target.key if self.target else None

    @property
    def number(self) -> float | None:
        """The value, where it is a number (a trend, a gauge); None for a text or a figure not taken."""
        v = self.value
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def note(self) -> str:
        return self.not_assessed or str(self.details.get("note", ""))

    def summary(self) -> str:
        """One line: '16.00 s (target < 30 s, 'generation_s': pass)'."""
        figure = self.not_assessed if self.not_assessed else f"{self.shown} {self.unit}".strip()
        if self.target is None:
            return figure
        return f"{figure} (target {self.target.describe()}, '{self.target.key}': {self.verdict})"

    def failure_message(self) -> str:
        t = self.target
        assert t is not None
        text = f"{self.name}: measured {self.shown} {self.unit}, target {t.describe()} (target '{t.key}')"
        return text + (f": {self.fix}" if self.fix else "")

    def as_dict(self) -> dict:
        t = self.target
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": t.key if t else None,
            "threshold": t.describe() if t else None,
            "target_label": t.label if t else None,
            "target_threshold": t.threshold if t else None,
            "target_op": t.op if t else None,
            "target_decimals": t.decimals if t else None,
            "verdict": self.verdict,
            "note": self.note,
            "not_assessed": self.not_assessed,
            "fix": self.fix,
            "test": self.test,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        """A Measurement as as_dict() wrote it (measurements.json, a load run's summary.json, the history)."""
        target = None
        if d.get("target") and d.get("target_threshold") is not None:
            target = Target(d["target"], d.get("target_label") or d["name"], float(d["target_threshold"]),
                            d.get("unit", ""), d.get("target_op") or "<", decimals=d.get("target_decimals"))
        return cls(d["name"], d.get("value"), d.get("unit", ""), target, d.get("test", ""),
                   dict(d.get("details") or {}), d.get("not_assessed", ""), d.get("fix", ""))


def portable(m: Measurement) -> dict:
    """Every field as plain data, its target's whole definition included: how a pytest-xdist worker hands a figure
    to the controller, which writes the report and the history."""
    return json.loads(json.dumps(dataclasses.asdict(m), default=str))


def from_portable(d: dict) -> Measurement:
    return Measurement(**{**d, "target": Target(**d["target"]) if d.get("target") else None})


def missed(measurements: list[Measurement]) -> list[Measurement]:
    return [m for m in measurements if m.verdict == FAIL]


def overall_verdict(measurements: list[Measurement]) -> str:
    """FAIL when any target is missed, else pass: the one rule, wherever a set of figures is summed up."""
    return FAIL if missed(measurements) else PASS


def write_json(path: Path, measurements: list[Measurement]) -> None:
    """measurements.json, written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([m.as_dict() for m in measurements], indent=1, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> list[Measurement]:
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a measurements file: {exc}") from None
    return [Measurement.from_dict(r) for r in rows]
