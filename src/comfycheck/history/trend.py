"""The trend page: per target, its value across the runs of a profile with the threshold line; a pass/fail
strip per run; the runs whose figures got worse than usual (regression.py's rule), and which versions changed."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from ..config.targets import DEFAULT_TARGETS
from . import regression
from .compare import version_changes
from .store import History, Run

TARGET_ORDER = {key: i for i, key in enumerate(DEFAULT_TARGETS)}


@dataclass
class Point:
    run_id: int
    value: float | None
    verdict: str
    threshold: float | None
    op: str | None
    flag: regression.Regression | None = None


@dataclass
class Series:
    target: str
    name: str
    unit: str
    points: list[Point] = field(default_factory=list)

    @property
    def title(self) -> str:
        label = DEFAULT_TARGETS[self.target].label if self.target in DEFAULT_TARGETS else self.target
        return self.name if self.name == label else f"{self.name} ({label})"


@dataclass
class Flag:
    run_id: int
    target: str
    name: str
    text: str


@dataclass
class Trend:
    profile: str
    runs: list[Run]
    series: list[Series]
    flags: list[Flag]
    versions: list[tuple[Run, list[str]]]

    def flagged_runs(self) -> dict[int, list[str]]:
        """run id -> the targets flagged in it."""
        out: dict[int, list[str]] = {}
        for f in self.flags:
            out.setdefault(f.run_id, [])
            if f.target not in out[f.run_id]:
                out[f.run_id].append(f.target)
        return out


def analyse(history: History, profile: str, *, window: int = regression.WINDOW, pct: float = regression.PCT,
            last: int | None = None, kind: str | None = None) -> Trend:
    runs = history.runs(profile, kind=kind)
    series: dict[tuple[str, str], Series] = {}
    rows = history.db.execute(
        "SELECT m.run_id, m.target, m.name, m.value, m.unit, m.threshold, m.op, m.verdict FROM measurements m "
        "JOIN runs r ON r.id = m.run_id WHERE r.profile = ? AND r.finished IS NOT NULL AND m.target IS NOT NULL"
        + (" AND r.kind = ?" if kind else "") + " ORDER BY m.run_id, m.seq", (profile, kind) if kind else (profile,))
    flags: list[Flag] = []
    for run_id, target, name, value, unit, threshold, op, verdict in rows:
        s = series.get((target, name))
        if s is None:
            s = series[(target, name)] = Series(target, name, unit)
        point = Point(run_id, value, verdict, threshold, op)
        if value is not None and threshold is not None:
            before = [p.value for p in s.points[-window:] if p.value is not None]
            point.flag = regression.judge(before, value, op=op or "<", threshold=threshold, pct=pct, window=window,
                                          news=regression.news_of(target))
            if point.flag:
                flags.append(Flag(run_id, target, name, point.flag.describe(unit, regression.places_of(target))))
        s.points.append(point)
    shown = runs[-last:] if last else runs
    ids = {r.id for r in shown}
    for s in series.values():
        s.points = [p for p in s.points if p.run_id in ids]
    changes = []
    finished = [r for r in runs if r.finished]
    for prev, run in zip(finished, finished[1:], strict=False):
        diff = version_changes(prev.versions, run.versions)
        if diff and run.id in ids:
            changes.append((run, diff))
    ordered = sorted((s for s in series.values() if s.points),
                     key=lambda s: (TARGET_ORDER.get(s.target, len(TARGET_ORDER)), s.target, s.name))
    return Trend(profile, shown, ordered, [f for f in flags if f.run_id in ids], changes)


# --- the page -------------------------------------------------------------------------------------
W, H, PAD_L, PAD_R, PAD_Y = 960, 170, 70, 20, 18
VERDICT_COLOURS = {"passed": "#2a7d2a", "failed": "#b00020", "interrupted": "#e37400"}


def render(trend: Trend, *, generated: str = "") -> str:
    runs = trend.runs
    index = {r.id: i for i, r in enumerate(runs)}
    flagged = trend.flagged_runs()
    parts = [f"""<!doctype html><meta charset="utf-8"><title>comfycheck trend: {html.escape(trend.profile)}</title>
<style>body{{font-family:sans-serif;margin:16px}} svg{{display:block}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}} h2{{font-size:16px;margin:18px 0 2px}}
.muted{{color:#555;font-size:13px}}</style>
<h1>Trend of profile {html.escape(trend.profile)}</h1>
<p class="muted">{len(runs)} runs{_span(runs)};
{len(flagged)} with figures worse than usual; {len(trend.versions)} with changed versions. {html.escape(generated)}</p>
<p class="muted">Worse than usual: worse, in the target's direction, than the median of the same figure over the
previous runs by more than the largest of the stated percentage of that median, three robust standard deviations
of those runs, and a share of the threshold (5 %; 25 % for latency p95s) (README: "Run history and trend").</p>"""]
    parts.append("<h2>Runs</h2>" + _strip(runs, flagged))
    if trend.flags:
        rows = "".join(f'<tr class="flag" data-run="{f.run_id}" data-target="{html.escape(f.target)}"><td>'
                       f'{html.escape(_run(runs, f.run_id))}</td><td>{html.escape(f.target)}</td>'
                       f'<td>{html.escape(f.name)}</td><td>{html.escape(f.text)}</td></tr>' for f in trend.flags)
        parts.append("<h2>Worse than usual</h2><table><tr><th>run</th><th>target</th><th>figure</th><th>how</th>"
                     f"</tr>{rows}</table>")
    if trend.versions:
        rows = "".join(f"<tr><td>{html.escape(run.label)}</td><td>{html.escape(', '.join(diff))}</td></tr>"
                       for run, diff in trend.versions)
        parts.append(f"<h2>Versions changed</h2><table><tr><th>run</th><th>what changed</th></tr>{rows}</table>")
    for s in trend.series:
        parts.append(f'<h2>{html.escape(s.title)} <span class="muted">{html.escape(s.target)}</span></h2>'
                     + _chart(s, index, len(runs), runs))
    return "\n".join(parts)


def _span(runs: list[Run]) -> str:
    return f", {html.escape(runs[0].started[:10])} to {html.escape(runs[-1].started[:10])}" if runs else ""


def _run(runs: list[Run], run_id: int) -> str:
    run = next((r for r in runs if r.id == run_id), None)
    return f"{run.label} {run.kind}" if run else f"#{run_id}"


def _x(i: int, n: int) -> float:
    return PAD_L + (W - PAD_L - PAD_R) * ((i + 0.5) / max(n, 1))


def _strip(runs: list[Run], flagged: dict[int, list[str]]) -> str:
    cells = []
    width = (W - PAD_L - PAD_R) / max(len(runs), 1)
    for i, r in enumerate(runs):
        colour = VERDICT_COLOURS.get(r.verdict or "", "#999") if r.finished else "#222"
        state = (r.verdict or "?") if r.finished else "did not finish"
        tip = f"{r.label} {r.kind}: {state}" + (f"; worse than usual: {', '.join(flagged[r.id])}"
                                                  if r.id in flagged else "")
        x = _x(i, len(runs)) - width / 2
        cells.append(f'<rect class="run" data-run="{r.id}" data-verdict="{html.escape(state)}" x="{x:.1f}" y="4" '
                     f'width="{max(width - 1, 0.5):.1f}" height="18" fill="{colour}"><title>{html.escape(tip)}</title>'
                     "</rect>")
        if r.id in flagged:
            cells.append(f'<circle cx="{x + width / 2:.1f}" cy="30" r="3" fill="#e37400"/>')
    return (f'<svg width="{W}" height="36" class="strip"><text x="4" y="18" font-size="11">pass/fail</text>'
            f'{"".join(cells)}</svg>')


def _chart(s: Series, index: dict[int, int], n: int, runs: list[Run]) -> str:
    pts = [(p, p.value) for p in s.points if p.value is not None]
    thresholds = [p.threshold for p in s.points if p.threshold is not None]
    if not pts:
        return '<p class="muted">not assessed in these runs</p>'
    values = [v for _, v in pts] + thresholds[-1:]
    lo, hi = min(values + [0.0]) if min(values) >= 0 else min(values), max(values)
    hi = hi if hi > lo else lo + 1
    hi += (hi - lo) * 0.08

    def y(v: float) -> float:
        return H - PAD_Y - (H - 2 * PAD_Y) * (v - lo) / (hi - lo)

    out = [f'<svg width="{W}" height="{H}" class="series" data-target="{html.escape(s.target)}">',
           f'<line x1="{PAD_L}" y1="{H - PAD_Y}" x2="{W - PAD_R}" y2="{H - PAD_Y}" stroke="#bbb"/>',
           f'<text x="4" y="{y(hi) + 10:.1f}" font-size="11">{_g(hi)} {html.escape(s.unit)}</text>',
           f'<text x="4" y="{H - PAD_Y:.1f}" font-size="11">{_g(lo)} {html.escape(s.unit)}</text>']
    out += _threshold_path(s, index, n, y)
    line = " ".join(f"{_x(index[p.run_id], n):.1f},{y(v):.1f}" for p, v in pts)
    out.append(f'<polyline points="{line}" fill="none" stroke="#3367d6" stroke-width="1.5"/>')
    every = len(pts) <= 200
    for p, v in pts:
        if not (every or p.flag or p.verdict == "FAIL"):
            continue
        colour = "#b00020" if p.verdict == "FAIL" else "#2a7d2a" if p.verdict == "pass" else "#555"
        tip = f"{_run(runs, p.run_id)}: {_g(v)} {s.unit} ({p.verdict})" + (
            f"; worse than usual: {p.flag.describe(s.unit, regression.places_of(s.target))}" if p.flag else "")
        ring = ' stroke="#e37400" stroke-width="3"' if p.flag else ""
        cls = "point regression" if p.flag else "point"
        out.append(f'<circle class="{cls}" data-run="{p.run_id}" cx="{_x(index[p.run_id], n):.1f}" '
                   f'cy="{y(v):.1f}" r="{4 if p.flag else 2.5}" fill="{colour}"{ring}>'
                   f"<title>{html.escape(tip)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def _threshold_path(s: Series, index: dict[int, int], n: int, y) -> list[str]:
    """The threshold as a dashed step line (a profile may change it between runs), with its label."""
    steps: list[tuple[int, float, str | None]] = []
    for p in s.points:
        if p.threshold is not None and (not steps or steps[-1][1] != p.threshold):
            steps.append((index[p.run_id], p.threshold, p.op))
    if not steps:
        return []
    half = (W - PAD_L - PAD_R) / max(n, 1) / 2
    out = []
    for j, (i, t, _op) in enumerate(steps):
        x1 = _x(i, n) - half
        x2 = _x(steps[j + 1][0], n) - half if j + 1 < len(steps) else W - PAD_R
        out.append(f'<line class="threshold" data-threshold="{t:g}" x1="{x1:.1f}" y1="{y(t):.1f}" x2="{x2:.1f}" '
                   f'y2="{y(t):.1f}" stroke="#d93025" stroke-dasharray="5,3"/>')
    _, t, op = steps[-1]
    out.append(f'<text x="{W - PAD_R - 4}" y="{y(t) - 3:.1f}" font-size="11" fill="#d93025" text-anchor="end">'
               f'target {html.escape(op or "")} {_g(t)} {html.escape(s.unit)}</text>')
    return out


def _g(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
