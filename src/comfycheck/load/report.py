"""A load run's folder: summary.json, generations.csv, the plots and index.html (samples.csv is the sampler's)."""
from __future__ import annotations

import html
from pathlib import Path

from ..outputs.report import images, run_facts, run_page
from ..probes.gpu import read_samples
from .judge import LoadSummary
from .samples import GENERATIONS_CSV, SAMPLES_CSV, Generation, write_generations
from .timeline import timeline

SUMMARY_JSON = "summary.json"
PLOTS = ("timeline.png", "generations.png")


def write_outputs(out: Path, summary: LoadSummary, generations: list[Generation], targets: dict | None = None) -> None:
    """`targets`: the profile's, by key (the timeline draws them)."""
    out.mkdir(parents=True, exist_ok=True)
    summary.write(out / SUMMARY_JSON)
    write_generations(out / GENERATIONS_CSV, generations)
    plots(out, summary, generations, targets)
    (out / "index.html").write_text(summary_html(summary))


def plots(out: Path, summary: LoadSummary, generations: list[Generation], targets: dict | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = read_samples(out / SAMPLES_CSV) if (out / SAMPLES_CSV).is_file() else []
    device = str(summary.device or "?").split(" (comfycheck")[0][:70]
    sampled = device if device.startswith(str(summary.source)) else f"{summary.source}: {device}"
    timeline(plt, out / PLOTS[0], sampled, samples, generations, targets or {})
    _generations_plot(plt, out, generations)


def _generations_plot(plt, out: Path, generations: list[Generation]) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.bar([g.n for g in generations], [g.wall_s for g in generations],
           color=["#34a853" if g.ok else "#d93025" for g in generations])
    ax.set_xlabel("generation")
    ax.set_ylabel("seconds (wall)")
    ax.set_title("time per generation (red: failed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / PLOTS[1])
    plt.close(fig)


def summary_html(summary: LoadSummary) -> str:
    return run_page("Load run", summary.verdict, lead=load_summary_html(summary), measurements=summary.measurements,
                    notes=summary.notes, pictures=images(list(PLOTS)), sections=gpu_map_html(summary.gpu_map),
                    facts=run_facts(summary.profile, summary.started, summary.finished, summary.versions))


def load_summary_html(summary: LoadSummary) -> str:
    """The run in one paragraph: profile, workflow, generations, where the samples came from."""
    return (f"<p>Profile <b>{html.escape(summary.profile)}</b>, workflow {html.escape(summary.workflow)}, "
            f"{summary.generations_ok} of {summary.generations_requested} generations succeeded (stopped by "
            f"{html.escape(summary.stopped_by)}); samples from {html.escape(str(summary.source))} "
            f"({html.escape(str(summary.device))}) {html.escape(summary.device_match)}.</p>")


def gpu_map_html(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h2>GPU map</h2><table><tr>{head}</tr>{body}</table>"
