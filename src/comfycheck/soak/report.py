"""The soak's report: one self-contained HTML page (inline SVG, no script) that reads well after a day.

Each chart is drawn from per-pixel-column aggregates computed in SQLite (min, max and mean of each column of
time), so a 24-hour soak's 86,400 rounds cost the same page, and a one-second spike still shows as a spike."""
from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from ..config.duration import format_duration
from ..config.targets import fmt
from ..config.units import GB, MB
from ..judge.measurements import overall_verdict
from ..outputs.report import GREEN, GREY, RED, run_facts, run_page
from .judge import Judgement
from .samples import SampleStore

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 1000, 150, 84, 12, 8, 22
PLOT_W = WIDTH - LEFT - RIGHT
BLUE, ORANGE, PURPLE = "#1a66cc", "#d06000", "#7a3db8"


class Frame:
    """The soak's time axis: seconds since its first round, `columns` aggregates across the plot."""

    def __init__(self, start: float, span: float, columns: int = PLOT_W):
        self.start = start
        self.span = max(span, 1e-6)
        self.columns = columns
        self.bucket = self.span / columns

    def x(self, t: float) -> float:
        return LEFT + PLOT_W * min(1.0, max(0.0, (t - self.start) / self.span))

    def aggregate(self, store: SampleStore, column: str) -> list[tuple[float, float, float, float]]:
        """(time, min, max, mean) of a column of the samples per column of pixels."""
        return [(self.start + (b + 0.5) * self.bucket, lo, hi, mean)
                for b, lo, hi, mean in store.per_bucket(column, self.start, self.bucket)]


def write_report(path: Path, store: SampleStore, meta: dict, judgement: Judgement) -> None:
    first, last, rounds = store.span()
    interval = float(meta.get("interval_s", 1.0))
    frame = Frame(first, (last - first) + interval if rounds else 1.0)
    shade = [(o.start, o.end) for o in judgement.availability.outages]
    charts = [_availability_strip(store, frame, shade, interval), _latency_chart(store, frame, shade, meta),
              _memory_chart(store, frame, shade, "vram_used", "VRAM used", "GB", GB, BLUE,
                            total_expr="vram_total") if meta.get("on_gpu", True) else "",
              _memory_chart(store, frame, shade, "temp_c", "GPU temperature", "°C", 1, ORANGE),
              _memory_chart(store, frame, shade, "rss", "ComfyUI process RSS", "MB", MB, PURPLE),
              _memory_chart(store, frame, shade, "cpu_pct", "ComfyUI process CPU (% of one core)", "%", 1, GREY),
              _canary_chart(store, frame, shade)]
    path.write_text(_page(meta, judgement, "".join(c for c in charts if c), store, frame), encoding="utf-8")


# --- charts ---------------------------------------------------------------------------------------
def _svg(frame: Frame, title: str, body: str, y_labels: list[tuple[float, str]], shade, height=HEIGHT) -> str:
    plot_h = height - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'font-family="sans-serif" font-size="11"><title>{html.escape(title)}</title>',
             f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for a, b in shade:  # outages, on every chart
        x0, x1 = frame.x(a), frame.x(b)
        parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{max(1.0, x1 - x0):.1f}" height="{plot_h}" '
                     f'fill="{RED}" fill-opacity="0.18"><title>outage {format_duration(b - a)}</title></rect>')
    for y, label in y_labels:
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{GREY}">{html.escape(label)}</text>'
                     f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for i in range(7):
        t = frame.start + frame.span * i / 6
        x = frame.x(t)
        label = dt.datetime.fromtimestamp(t).strftime("%H:%M:%S" if frame.span < 3 * 3600 else "%d %H:%M")
        anchor = "start" if i == 0 else "end" if i == 6 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}" fill="{GREY}">{label}</text>')
    parts.append(body + "</svg>")
    return "".join(parts)


def _scale(lo: float, hi: float, height=HEIGHT):
    plot_h = height - TOP - BOTTOM
    span = (hi - lo) or 1.0
    return lambda v: TOP + plot_h * (1 - (min(hi, max(lo, v)) - lo) / span)


def _ticks(lo: float, hi: float, y, unit: str) -> list[tuple[float, str]]:
    return [(y(v), f"{v:,.0f} {unit}" if abs(v) >= 100 else f"{fmt(float(v))} {unit}")
            for v in (lo, (lo + hi) / 2, hi)]


def _section(title: str, svg: str, legend: str = "") -> str:
    return f'<h3>{html.escape(title)}</h3>{legend}<div class="chart">{svg}</div>'


def _legend(*items: tuple[str, str]) -> str:
    return "<p class=legend>" + " ".join(f'<span style="color:{c}">&#9632;</span> {html.escape(t)}'
                                         for t, c in items) + "</p>"


def _band_and_line(frame, rows, y, color) -> str:
    """The min-max envelope of each column, with its mean as a line."""
    if not rows:
        return ""
    top = " ".join(f"{frame.x(t):.1f},{y(hi):.1f}" for t, lo, hi, _ in rows)
    bottom = " ".join(f"{frame.x(t):.1f},{y(lo):.1f}" for t, lo, hi, _ in reversed(rows))
    mean = " ".join(f"{frame.x(t):.1f},{y(m):.1f}" for t, _, _, m in rows)
    return (f'<polygon points="{top} {bottom}" fill="{color}" fill-opacity="0.25" stroke="{color}" '
            f'stroke-opacity="0.4" stroke-width="0.5"/><polyline points="{mean}" fill="none" stroke="{color}" '
            f'stroke-width="1.2"/>')


def _threshold(y, value: float, label: str, color=RED) -> str:
    return (f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{color}" '
            f'stroke-dasharray="5,4"><title>{html.escape(label)}</title></line>')


def _availability_strip(store, frame, shade, interval: float) -> str:
    rows = frame.aggregate(store, "down")
    height = 60
    y = _scale(0, 1, height)
    width = max(1.0, PLOT_W / frame.columns, PLOT_W * interval / frame.span)  # a failed round covers its interval
    bars = "".join(f'<rect x="{frame.x(t - frame.bucket / 2):.1f}" y="{y(hi):.1f}" width="{width:.1f}" '
                   f'height="{y(0) - y(hi):.1f}" fill="{RED}"/>' for t, _, hi, _ in rows if hi > 0)
    up = f'<rect x="{LEFT}" y="{y(0) - 3:.1f}" width="{PLOT_W}" height="3" fill="{GREEN}"/>'
    svg = _svg(frame, "availability", up + bars, [(y(1), "down"), (y(0), "up")], shade, height)
    return _section("Availability (red: a round in which something failed; shaded: outages)", svg)


def _latency_chart(store, frame, shade, meta) -> str:
    targets = meta.get("targets") or {}
    direct = frame.aggregate(store, "direct_ms")
    public = frame.aggregate(store, "public_ms")
    if not direct and not public:
        return ""
    local_t = (targets.get("latency_local_ms") or [20])[0]
    proxy_t = (targets.get("latency_proxy_ms") or [100])[0]
    lows = sorted(m for *_, m in direct + public)
    typical = lows[int(0.99 * (len(lows) - 1))] if lows else 1.0
    top = max(local_t * 1.2, typical * 2, 1.0) if not public else max(proxy_t * 1.2, typical * 2)
    y = _scale(0, top)
    body = _band_and_line(frame, direct, y, BLUE) + _band_and_line(frame, public, y, ORANGE)
    body += _threshold(y, local_t, f"target p95 local < {local_t} ms", BLUE)
    if public:
        body += _threshold(y, proxy_t, f"target p95 through the proxy < {proxy_t} ms", ORANGE)
    svg = _svg(frame, "latency", body, _ticks(0, top, y, "ms"), shade)
    legend = _legend(("direct (band: min-max per column, line: mean)", BLUE),
                     *([("through the proxy", ORANGE)] if public else []),
                     ("dashed: the p95 targets; values above the top are drawn at the top", RED))
    return _section("API latency (GET /system_stats)", svg, legend)


def _memory_chart(store, frame, shade, column, title, unit, divisor, color, total_expr="") -> str:
    rows = [(t, lo / divisor, hi / divisor, m / divisor) for t, lo, hi, m in frame.aggregate(store, column)]
    if not rows:
        return ""
    hi = max(r[2] for r in rows)
    lo = min(r[1] for r in rows)
    extra = ""
    if total_expr:
        totals = frame.aggregate(store, total_expr)
        if totals:
            total = max(r[2] for r in totals) / divisor
            hi, lo = total, 0.0
            extra = f" (of {fmt(total)} {unit})"
    if not total_expr:
        pad = (hi - lo) * 0.1 or max(abs(hi) * 0.05, 1.0)
        lo, hi = (lo - pad if lo - pad > 0 or lo < 0 else 0.0), hi + pad
    y = _scale(lo, hi)
    svg = _svg(frame, title, _band_and_line(frame, rows, y, color), _ticks(lo, hi, y, unit), shade)
    return _section(f"{title}{extra}", svg)


def _canary_chart(store, frame, shade) -> str:
    canaries = store.canaries()
    if not canaries:
        return ""
    times = [c[2] for c in canaries if c[1] and c[2] is not None]
    top = max(times) * 1.2 if times else 1.0
    y = _scale(0, top)
    dots = []
    for t, ok, server_s, _wall_s, error in canaries:
        if ok and server_s is not None:
            dots.append(f'<circle cx="{frame.x(t):.1f}" cy="{y(server_s):.1f}" r="2.5" fill="{GREEN}">'
                        f'<title>{server_s:.3f} s</title></circle>')
        else:
            dots.append(f'<circle cx="{frame.x(t):.1f}" cy="{y(top):.1f}" r="3.5" fill="{RED}">'
                        f'<title>{html.escape(error[:300])}</title></circle>')
    svg = _svg(frame, "canary", "".join(dots), _ticks(0, top, y, "s"), shade)
    return _section("Canary generations (server time; red at the top: failed)", svg)


# --- the page -------------------------------------------------------------------------------------
def _page(meta: dict, judgement: Judgement, charts: str, store: SampleStore, frame: Frame) -> str:
    a = judgement.availability
    canaries = store.canaries()
    head = (f"{a.pct:.3f} % available" if a.pct is not None else "no round recorded") + \
        f" over {format_duration(a.total_s)}: {len(a.outages)} outage(s), {format_duration(a.down_s)} down"
    if canaries:
        head += f"; canary {sum(c[1] for c in canaries)}/{len(canaries)} succeeded"
    every = format_duration(float(meta.get("canary_every_s") or 0))
    facts = run_facts(f"{meta.get('profile')} ({meta.get('profile_path')})", str(meta.get("started")),
                      str(meta.get("finished") or ""), meta.get("versions") or {})
    facts += [("planned", format_duration(float(meta.get("duration_s", 0)))),
              ("ended by", meta.get("stopped_by") or "killed (rebuilt from its samples)"),
              ("interval", f"{fmt(float(meta.get('interval_s', 1)))} s, probe timeout "
                           f"{fmt(float(meta.get('probe_timeout_s', 5)))} s"),
              ("backend", str(meta.get("comfyui_url"))), ("public", meta.get("public_url") or "-"),
              ("canary", f"{meta.get('canary')} every {every}" if meta.get("canary") else "none"),
              ("GPU samples", f"{meta.get('gpu_source')} {meta.get('gpu_device', '')} {meta.get('device_match', '')}")]
    return run_page("Soak", overall_verdict(judgement.measurements), lead=f"<p><b>{html.escape(head)}</b></p>",
                    measurements=judgement.measurements, notes=[*(meta.get("notes") or []), *judgement.notes],
                    pictures=charts, sections=_outage_table(a.outages) + _event_table(store, judgement.outage_closes),
                    facts=facts)


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _outage_table(outages) -> str:
    if not outages:
        return "<h2>Outages</h2><p>None.</p>"
    rows = "".join(
        f"<tr><td>{_clock(o.start)}</td><td>{_clock(o.end)}{' (still down at the end)' if o.ongoing else ''}</td>"
        f"<td>{format_duration(o.duration_s)}</td><td>{html.escape(', '.join(sorted(o.failed)))}</td>"
        f"<td>{o.rounds}</td><td>{html.escape(o.error[:400])}</td></tr>" for o in outages[:500])
    more = f"<p>... and {len(outages) - 500} more (all in the samples file)</p>" if len(outages) > 500 else ""
    return ("<h2>Outages</h2><table><tr><th>start</th><th>end</th><th>duration</th><th>what failed</th>"
            f"<th>rounds</th><th>first error</th></tr>{rows}</table>{more}")


EVENT_TEXT = {"ws_drop": "WebSocket dropped after {v:.1f} s of silence",
              "ws_idle_close": "WebSocket closed after {v:.1f} s of silence (idle timeout)",
              "ws_reconnect": "WebSocket reopened in {v:.2f} s", "ws_unreachable": "WebSocket cannot connect",
              "restart": "ComfyUI restarted"}


def _event_table(store: SampleStore, outage_closes: set[float]) -> str:
    events = [e for e in store.events() if e[1] in EVENT_TEXT][:200]
    if not events:
        return ""

    def text(t, kind, v) -> str:
        if t in outage_closes:
            return f"WebSocket closed during an outage (after {v or 0.0:.1f} s of silence)"
        return EVENT_TEXT[kind].format(v=v or 0.0)

    rows = "".join(f"<tr><td>{_clock(t)}</td><td>{html.escape(text(t, k, v))}</td>"
                   f"<td>{html.escape(d[:300])}</td></tr>" for t, k, v, d in events)
    return f"<h2>WebSocket and process events</h2><table>{rows}</table>"
