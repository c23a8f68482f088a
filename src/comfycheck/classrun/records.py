"""A class run's raw records on disk: one JSON line per prompt (prompts.jsonl), appended as each prompt ends, so a
run cut short keeps every prompt it finished and the judgement is a function of the file alone.

Times: the client's are wall clock (epoch seconds), ComfyUI's its own ms timestamps (create_time from /history,
execution_start and the terminal one from the WebSocket), so the two can be set side by side."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

PROMPTS_JSONL = "prompts.jsonl"
DONE = "success"
LOST = "lost"  # submitted, and never seen reaching a terminal state: ComfyUI no longer knows it
CUT_OFF = "cut off"  # the run stopped waiting (its time limit) while ComfyUI still had it queued or running


@dataclass
class PromptRecord:
    student: str  # "student-07"
    seq: int  # the student's 1st, 2nd, ... prompt
    backend: str  # the address the student submitted to (a balancer's, or a backend's own)
    client_id: str
    status: str  # success / error / interrupted / lost / failed (never accepted)
    prompt_id: str = ""
    number: int | None = None  # ComfyUI's queue number
    submitted_at: float | None = None  # POST /prompt sent
    arrived_at: float | None = None  # a `rate` run: when the prompt arrived (a free student then submits it)
    accept_ms: float | None = None  # POST /prompt answered
    create_ms: int | None = None  # ComfyUI's timestamps
    start_ms: int | None = None
    end_ms: int | None = None
    start_seen_at: float | None = None  # execution_start received on the student's socket
    end_seen_at: float | None = None  # the terminal message received
    downloaded_at: float | None = None  # the output image fetched from /view
    view_ms: float | None = None  # that download alone
    output_bytes: int = 0
    ws_dropped: bool = False  # the student's socket closed under it
    error: str = ""
    served_by: str = ""  # the fleet's backend that holds the prompt, by its own address ("": not found in any)

    @property
    def ok(self) -> bool:
        return self.status == DONE

    @property
    def queue_wait_s(self) -> float | None:
        """ComfyUI's create_time -> execution_start."""
        return _span(self.create_ms, self.start_ms)

    @property
    def execution_s(self) -> float | None:
        """ComfyUI's execution_start -> the terminal event."""
        return _span(self.start_ms, self.end_ms)

    @property
    def result_s(self) -> float | None:
        """What the student waits: submit -> output downloaded (client clock)."""
        if self.submitted_at is None or self.downloaded_at is None:
            return None
        return self.downloaded_at - self.submitted_at

    @property
    def overhead_ms(self) -> float | None:
        """Time to result minus ComfyUI's own create -> terminal and minus the download: the client's share."""
        server = _span(self.create_ms, self.end_ms)
        if self.result_s is None or server is None or self.view_ms is None:
            return None
        return self.result_s * 1000 - server * 1000 - self.view_ms

    @property
    def overhead_parts_ms(self) -> tuple[float, float, float] | None:
        """The overhead in its three parts: submit -> ComfyUI's create_time (the POST's way in), ComfyUI's terminal
        timestamp -> the student's socket received it (the server's delivery), received -> download sent."""
        if None in (self.submitted_at, self.create_ms, self.end_ms, self.end_seen_at, self.downloaded_at,
                    self.view_ms):
            return None
        pre = self.create_ms / 1000 - self.submitted_at  # type: ignore[operator]
        delivery = self.end_seen_at - self.end_ms / 1000  # type: ignore[operator]
        after = self.downloaded_at - self.view_ms / 1000 - self.end_seen_at  # type: ignore[operator]
        return pre * 1000, delivery * 1000, after * 1000

    @property
    def client_queue_wait_s(self) -> float | None:
        """The queue wait as the student's socket saw it: POST answered -> execution_start received."""
        if None in (self.submitted_at, self.accept_ms, self.start_seen_at):
            return None
        return self.start_seen_at - self.submitted_at - self.accept_ms / 1000  # type: ignore[operator]


def queue_ahead(records: list[PromptRecord]) -> dict[tuple[str, int], int]:
    """For each prompt, how many of the run's prompts were queued or running before it when ComfyUI took it: a lower
    `number`, created no later and not yet ended (ComfyUI's own numbers and timestamps; asking /queue per prompt
    would have ComfyUI deep-copy every pending workflow under its queue lock for each student)."""
    known = [r for r in records if r.number is not None and r.create_ms is not None]

    def before(q: PromptRecord, p: PromptRecord) -> bool:
        return (q is not p and q.number < p.number and q.create_ms <= p.create_ms  # type: ignore[operator]
                and (q.end_ms is None or q.end_ms > p.create_ms))  # type: ignore[operator]

    return {(p.student, p.seq): sum(before(q, p) for q in known) for p in known}


def _span(a: int | None, b: int | None) -> float | None:
    return (b - a) / 1000 if a is not None and b is not None else None


def append(path: Path, record: PromptRecord) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(asdict(record)) + "\n")


def rewrite(path: Path, records: list[PromptRecord]) -> None:
    """The records again, completed after the run (which backend served each), replacing the file at once."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    tmp.replace(path)


def read(path: Path) -> list[PromptRecord]:
    """The records of a run; a line cut off by a kill mid-write is left out."""
    known = {f.name for f in fields(PromptRecord)}
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out.append(PromptRecord(**{k: v for k, v in row.items() if k in known}))
    return out
