"""A class run's folder: prompts.jsonl (the records, as they came), summary.json, prompts.csv, the timeline (one
row per student: queue wait and execution as bars over time) and index.html."""
from __future__ import annotations

import csv
import html
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..judge.measurements import Measurement
from ..load.samples import SAMPLES_CSV
from ..outputs.report import images, run_facts, run_page
from . import plots
from .records import PromptRecord, queue_ahead

SUMMARY_JSON = "summary.json"
PROMPTS_CSV = "prompts.csv"
TIMELINE_PNG = "timeline.png"
WAITS_PNG = "waits.png"


@dataclass
class ClassSummary:
    """A judged class run; summary.json is this, key for key."""

    profile: str
    report_dir: str
    workflow: str
    shape: str
    arrivals: str  # how the class arrived, in words
    students: int
    prompts_each: int
    started: str
    finished: str
    stopped_by: str
    prompts_requested: int
    prompts_ok: int
    capacity: str
    verdict: str
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    result_within_s: float | None = None  # the wait the teacher accepts ([class])

    @property
    def passed(self) -> bool:
        return self.verdict == "pass" and self.prompts_ok == self.prompts_requested

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "measurements"}
        return {**d, "measurements": [m.as_dict() for m in self.measurements]}

    @classmethod
    def read(cls, path: Path) -> ClassSummary:
        d = json.loads(Path(path).read_text())
        return cls(**{**d, "measurements": [Measurement.from_dict(m) for m in d["measurements"]]})


def write_outputs(out: Path, summary: ClassSummary, records: list[PromptRecord], *, gpu: bool) -> None:
    """gpu: the samples are a GPU's (not the CPU's memory, where ComfyUI runs with --cpu)."""
    (out / SUMMARY_JSON).write_text(json.dumps(summary.to_json(), indent=1))
    with open(out / PROMPTS_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*(x.name for x in fields(PromptRecord)), "queue_ahead", "queue_wait_s",
                                          "execution_s", "result_s", "overhead_ms"])
        w.writeheader()
        ahead = queue_ahead(records)
        for r in records:
            w.writerow({**asdict(r), "queue_ahead": ahead.get((r.student, r.seq)), "queue_wait_s": r.queue_wait_s,
                        "execution_s": r.execution_s, "result_s": r.result_s, "overhead_ms": r.overhead_ms})
    plots.timeline(out / TIMELINE_PNG, records, summary.arrivals)
    plots.waits(out / WAITS_PNG, records, summary.result_within_s, out / SAMPLES_CSV if gpu else None)
    (out / "index.html").write_text(summary_html(summary))


def summary_html(summary: ClassSummary) -> str:
    return run_page("Class run", summary.verdict, lead=class_summary_html(summary), measurements=summary.measurements,
                    notes=summary.notes, pictures=images([TIMELINE_PNG, WAITS_PNG]),
                    facts=run_facts(summary.profile, summary.started, summary.finished, summary.versions))


def class_summary_html(summary: ClassSummary) -> str:
    return (f"<p>Profile <b>{html.escape(summary.profile)}</b>: {html.escape(summary.arrivals)}, "
            f"running {html.escape(summary.workflow)}; {summary.prompts_ok} of {summary.prompts_requested} came back "
            f"(stopped by {html.escape(summary.stopped_by)}).</p><p><b>{html.escape(summary.capacity)}</b></p>")
