"""The load run's timeline, drawn to read on any card: VRAM on an axis that fits what was used (a target line above
the scale is named, not drawn off the page), each generation's span shaded (the cold one apart), the temperature
against its own targets, and the card's utilisation and power in a panel of their own (NVML reads them)."""
from __future__ import annotations

from pathlib import Path

from ..config.units import GB
from .samples import Generation

VRAM, TEMP, UTIL, POWER, TARGET = "#3367d6", "#e37400", "#188038", "#9334e6", "#d93025"
SPAN, COLD = "#dbe7fb", "#f9dcc4"  # a generation's span; the cold first one's


def _num(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def timeline(plt, path: Path, sampled: str, samples: list[dict], generations: list[Generation],
             targets: dict) -> dict:
    """`sampled`: the source and device, as the title names them; `samples`: the sampler's rows (samples.csv);
    `targets`: the profile's, by key. Returns what it drew: the
    VRAM axis' top (GB), the target lines above it, the generations shaded, whether the busy panel is there."""
    busy = [s for s in samples if _num(s.get("util_pct")) is not None or _num(s.get("power_w")) is not None]
    fig, axes = plt.subplots(2 if busy else 1, 1, figsize=(9, 5.6 if busy else 3.6), dpi=100, sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [3, 2]} if busy else None)
    ax = axes[0][0]
    if not samples:
        ax.set_title(f"no GPU samples ({sampled})", fontsize=9)
        _save(fig, plt, path)
        return {"vram_top_gb": None, "off_scale": [], "spans": 0, "busy": False}
    t0 = float(samples[0]["t"])
    xs = [float(s["t"]) - t0 for s in samples]
    used = [int(s["mem_used_bytes"]) / GB for s in samples]
    total = int(samples[0]["mem_total_bytes"]) / GB
    for g in generations:  # each generation's span, as the run submitted and got it back
        if g.started:
            for a in axes[:, 0]:
                a.axvspan(g.started - t0, g.started - t0 + g.wall_s, facecolor=COLD if g.cold else SPAN,
                          edgecolor="white", linewidth=1.5, zorder=0)
    ax.plot(xs, used, color=VRAM, label="VRAM used (GB)")
    top = max(max(used) * 1.25, max(used) + 1.0)
    off_scale = []
    for label, gb in _vram_lines(targets, total):
        if gb <= top:
            ax.axhline(gb, color=TARGET, linestyle="--", linewidth=1, label=label)
        else:
            off_scale.append(f"{label} above the scale")
    ax.set_ylim(0, top)
    ax.set_ylabel("GB")
    temps = [(x, _num(s.get("temp_c"))) for x, s in zip(xs, samples, strict=True) if _num(s.get("temp_c"))]
    if temps:
        tx = ax.twinx()
        tx.plot([x for x, _ in temps], [c for _, c in temps], color=TEMP, label="temperature (°C)")
        limits = [(f"{t.label} {t.threshold:g} °C", t.threshold) for k in ("gpu_temp_idle_c", "gpu_temp_load_c")
                  if (t := targets.get(k)) is not None]
        for label, c in limits:
            tx.axhline(c, color=TEMP, linestyle=":", linewidth=1, label=label)
        seen = [c for _, c in temps] + [c for _, c in limits]  # the targets stay on the axis
        tx.set_ylim(min(seen) - 5, max(seen) + 5)
        tx.set_ylabel("°C")
        tx.legend(loc="upper right", fontsize=7)
    ax.legend(loc="upper left", fontsize=7)
    cold = " (orange: the cold first one, after /free)" if any(g.cold and g.started for g in generations) else ""
    ax.set_title("\n".join([f"VRAM during the run: {sampled}", f"shaded: each generation{cold}", *off_scale]),
                 fontsize=8)
    if busy:
        _busy_panel(axes[1][0], [float(s["t"]) - t0 for s in busy], busy)
    axes[-1][0].set_xlabel("seconds")
    _save(fig, plt, path)
    return {"vram_top_gb": top, "off_scale": off_scale, "spans": sum(1 for g in generations if g.started),
            "busy": bool(busy)}


def _vram_lines(targets: dict, total_gb: float) -> list[tuple[str, float]]:
    lines = []
    if (pct := targets.get("vram_generation_pct")) is not None:
        lines.append((f"{pct.threshold:g} % of the card ({total_gb * pct.threshold / 100:.1f} GB)",
                      total_gb * pct.threshold / 100))
    if (gb := targets.get("vram_generation_gb")) is not None:
        lines.append((f"{gb.threshold:g} GB target", float(gb.threshold)))
    return lines


def _busy_panel(ax, xs: list[float], rows: list[dict]) -> None:
    util = [(x, v) for x, r in zip(xs, rows, strict=True) if (v := _num(r.get("util_pct"))) is not None]
    power = [(x, v) for x, r in zip(xs, rows, strict=True) if (v := _num(r.get("power_w"))) is not None]
    if util:
        ax.plot([x for x, _ in util], [v for _, v in util], color=UTIL, label="GPU utilisation (%)")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.legend(loc="upper left", fontsize=7)
    if power:
        px = ax.twinx()
        px.plot([x for x, _ in power], [v for _, v in power], color=POWER, label="power (W)")
        px.set_ylim(0, max(v for _, v in power) * 1.15 + 1)
        px.set_ylabel("W")
        px.legend(loc="upper right", fontsize=7)


def _save(fig, plt, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
