"""A class run's folder: prompts.jsonl (the records, as they came), summary.json, prompts.csv, the timeline (one
row per student: queue wait and execution as bars over time) and index.html."""
from __future__ import annotations

import csv
import html
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..judge.measurements import Measurement
from ..outputs.report import run_page
from .records import PromptRecord

SUMMARY_JSON = "summary.json"
PROMPTS_CSV = "prompts.csv"
TIMELINE_PNG = "timeline.png"


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


def write_outputs(out: Path, summary: ClassSummary, records: list[PromptRecord]) -> None:
    (out / SUMMARY_JSON).write_text(json.dumps(summary.to_json(), indent=1))
    with open(out / PROMPTS_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*(x.name for x in fields(PromptRecord)), "queue_wait_s", "execution_s",
                                          "result_s", "overhead_ms"])
        w.writeheader()
        for r in records:
            w.writerow({**asdict(r), "queue_wait_s": r.queue_wait_s, "execution_s": r.execution_s,
                        "result_s": r.result_s, "overhead_ms": r.overhead_ms})
    timeline(out / TIMELINE_PNG, records, summary)
    (out / "index.html").write_text(summary_html(summary))


def timeline(path: Path, records: list[PromptRecord], summary: ClassSummary) -> None:
    """One row per student; for each prompt its queue wait (light) and execution (dark), on ComfyUI's clock."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = sorted({r.student for r in records})
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.28 * len(students) + 1.2)), dpi=100)
    created = [r.create_ms for r in records if r.create_ms is not None]
    t0 = min(created) if created else 0
    for r in records:
        if r.create_ms is None:
            continue
        y = students.index(r.student)
        start = r.start_ms if r.start_ms is not None else r.end_ms
        if start is not None:
            ax.barh(y, (start - r.create_ms) / 1000, left=(r.create_ms - t0) / 1000, height=0.6, color="#c6dafc")
        if r.start_ms is not None and r.end_ms is not None:
            ax.barh(y, (r.end_ms - r.start_ms) / 1000, left=(r.start_ms - t0) / 1000, height=0.6,
                    color="#34a853" if r.ok else "#d93025")
    ax.set_yticks(range(len(students)), students, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first prompt was queued (ComfyUI's clock)")
    ax.set_title(f"{summary.arrivals}: queue wait (light), execution (green; red: failed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_html(summary: ClassSummary) -> str:
    return run_page("Class run", summary.verdict, class_summary_html(summary), summary.measurements, summary.notes,
                    [TIMELINE_PNG])


def class_summary_html(summary: ClassSummary) -> str:
    return (f"<p>Profile <b>{html.escape(summary.profile)}</b>: {html.escape(summary.arrivals)}, "
            f"running {html.escape(summary.workflow)}; {summary.prompts_ok} of {summary.prompts_requested} came back "
            f"(stopped by {html.escape(summary.stopped_by)}).</p><p><b>{html.escape(summary.capacity)}</b></p>")
