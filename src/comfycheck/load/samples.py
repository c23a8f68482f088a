"""A load run's raw records on disk: one row per generation (generations.csv) beside the GPU samples
(samples.csv, written by the sampler as they come)."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

GENERATIONS_CSV = "generations.csv"
SAMPLES_CSV = "samples.csv"


@dataclass
class Generation:
    n: int
    ok: bool
    wall_s: float
    server_s: float | None  # ComfyUI's own create -> terminal timestamps
    prompt_id: str
    error: str = ""
    exec_s: float | None = None  # ComfyUI's own execution_start -> terminal: the generation without its queue wait
    cold: bool = False  # the first after the run's own /free: it loads the model again (RAM or disk to the GPU)
    started: float = 0.0  # wall clock (epoch s) when it was submitted: its span on the timeline, beside the samples

    @property
    def judged_s(self) -> float:
        """What the generation targets judge: the execution by ComfyUI's clock (another user's prompt ahead in
        the queue is not a slow generation), the wall time where ComfyUI's timestamps are missing."""
        return self.exec_s if self.exec_s is not None else self.wall_s


def write_generations(path: Path, generations: list[Generation]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[f.name for f in fields(Generation)])
        w.writeheader()
        for g in generations:
            w.writerow(asdict(g))

