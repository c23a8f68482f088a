"""A class run's pictures: the timeline (one row per student, queue wait and execution as bars), and what each
student waited against the accepted wait, beside the queue's length and VRAM over the run."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..config.units import GB
from ..probes.gpu import read_samples
from .records import PromptRecord


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def timeline(path: Path, records: list[PromptRecord], arrivals: str) -> None:
    """One row per student; for each prompt its queue wait (light) and execution (dark), on ComfyUI's clock."""
    plt = _pyplot()
    students = sorted({r.student for r in records})
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.28 * len(students) + 1.2)), dpi=100)
    t0 = _first_created(records)
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
    ax.set_yticks(range(len(students)), _labels(students, records), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first prompt was queued (ComfyUI's clock)")
    ax.set_title(f"{arrivals}: queue wait (light), execution (green; red: failed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _labels(students: list[str], records: list[PromptRecord]) -> list[str]:
    """On a fleet, each student with the backend that served its first prompt."""
    if len({r.served_by for r in records if r.served_by}) < 2:
        return students
    first: dict[str, str] = {}
    for r in sorted(records, key=lambda r: r.seq):
        if r.served_by:
            first.setdefault(r.student, urlsplit(r.served_by).netloc)
    return [f"{s} @ {first[s]}" if s in first else s for s in students]


def waits(path: Path, records: list[PromptRecord], within_s: float | None, vram_csv: Path | None) -> None:
    """Left: every prompt's time to result, sorted, against the accepted wait. Right: the queue's length (the
    run's prompts created and not yet ended, by ComfyUI's clock) and VRAM used from `vram_csv`, the GPU's
    samples (None where ComfyUI runs on the CPU)."""
    plt = _pyplot()
    fig, (dist, queue) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    results = sorted(r.result_s for r in records if r.result_s is not None)
    if results:
        dist.plot([100 * (i + 1) / len(results) for i in range(len(results))], results, marker=".",
                  color="#3367d6")
    if within_s:
        dist.axhline(within_s, color="#d93025", linestyle="--", linewidth=1, label=f"accepted wait {within_s:g} s")
        dist.legend(loc="upper left", fontsize=8)
    dist.set_xlabel("% of prompts back within")
    dist.set_ylabel("seconds, submit -> image downloaded")
    dist.set_title("time to result", fontsize=9)

    t0 = _first_created(records)
    steps = sorted([(r.create_ms, 1) for r in records if r.create_ms is not None]
                   + [(r.end_ms, -1) for r in records if r.create_ms is not None and r.end_ms is not None])
    xs, ys, depth = [], [], 0
    for t, change in steps:
        xs.append((t - t0) / 1000)
        depth += change
        ys.append(depth)
    if xs:
        queue.step(xs, ys, where="post", color="#3367d6", label="prompts queued or running")
    queue.set_xlabel("seconds since the first prompt was queued")
    queue.set_ylabel("prompts")
    queue.set_title("queue length" + (" and VRAM" if _plot_vram(queue, vram_csv, t0) else ""), fontsize=9)
    queue.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_vram(ax, vram_csv: Path | None, t0_ms: int) -> bool:
    samples = read_samples(vram_csv) if vram_csv is not None and vram_csv.is_file() else []
    if not samples or not t0_ms:
        return False
    vram = ax.twinx()
    vram.plot([float(s["t"]) - t0_ms / 1000 for s in samples], [int(s["mem_used_bytes"]) / GB for s in samples],
              color="#e37400", linewidth=1)
    vram.set_ylabel("VRAM used (GB)", color="#e37400")
    return True


def _first_created(records: list[PromptRecord]) -> int:
    created = [r.create_ms for r in records if r.create_ms is not None]
    return min(created) if created else 0
