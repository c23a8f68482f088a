"""How this run compares with the runs before it of the same profile: the report headline's second line."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from ..judge.measurements import FAIL, PASS, Measurement
from . import regression
from .store import History, Run
from .versions import FAILED_TO_IMPORT as FAILED

BAD = ("failed", "error")


@dataclass
class Comparison:
    profile: str
    kind: str
    previous: Run | None
    newly_failing: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    newly_missed: list[str] = field(default_factory=list)
    now_met: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # "ComfyUI 0.3.59 -> 0.3.60"
    # a failing run: the last passing run of the profile (any kind), and what changed since it
    good: Run | None = None
    since_good: list[str] = field(default_factory=list)

    def changed_since_good(self) -> str:
        """The failing run's line: which versions changed since the last run that passed (or that none did)."""
        if self.good is None:
            return ""
        since = f"since run {self.good.label} ({self.good.kind}, passed)"
        if self.since_good:
            return f"{', '.join(self.since_good)} {since}"
        return f"no version changed {since}: not an update"

    def summary(self) -> str:
        if self.previous is None:
            return f"first {self.kind!r} run of profile {self.profile!r} in the history: nothing to compare with"
        p = self.previous
        head = f"compared with {p.label} ({p.verdict or 'did not finish'})"
        parts = [_n(self.newly_failing, "check", "newly failing"), _n(self.fixed, "check", "fixed"),
                 _n(self.newly_missed, "target", "newly missed"), _n(self.now_met, "target", "met again"),
                 _n(self.regressions, "figure", "worse than usual"),
                 "versions changed: " + ", ".join(self.versions) if self.versions else ""]
        parts = [x for x in parts if x]
        return f"{head}: " + ("; ".join(parts) if parts else "no change in checks, targets, figures or versions")

    def lines(self) -> list[str]:
        out = [x for x in (self.changed_since_good(), self.summary()) if x]
        for title, items in (("newly failing", self.newly_failing), ("fixed", self.fixed),
                             ("target newly missed", self.newly_missed), ("target met again", self.now_met),
                             ("worse than usual", self.regressions)):
            out += [f"  {title}: {x}" for x in items]
        return out

    def html(self) -> str:
        colour = "#b00020" if (self.newly_failing or self.newly_missed or self.regressions) else "#555"
        items = "".join(f"<li>{html.escape(x.strip())}</li>" for x in self.lines() if x.startswith("  "))
        since = self.changed_since_good()
        since_html = (f'<p style="margin:0 0 4px 0;font-weight:bold" class="comfycheck-since-good">'
                      f'{html.escape(since)}</p>' if since else "")
        return (f'<div class="comfycheck-comparison" style="border-left:4px solid {colour};padding:4px 8px;'
                f'margin:8px 0">{since_html}<p style="margin:0">{html.escape(self.summary())}</p>'
                f'{f"<ul>{items}</ul>" if items else ""}</div>')


def _n(items: list, noun: str, what: str) -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''} {what}" if items else ""


def series_key(target: str | None, name: str) -> tuple[str, str]:
    return (target or "", name)


def compare(history: History, *, profile: str, kind: str, run_id: int | None, measurements: list[Measurement],
            checks: dict[str, str], versions: dict[str, str], window: int = regression.WINDOW,
            pct: float = regression.PCT, failed: bool = False) -> Comparison:
    """This run (not yet in the history, or `run_id` if it was begun there) against the previous ones; a failed
    run also against the last one of the profile that passed."""
    before = run_id
    last = history.runs(profile, kind=kind, finished_only=True, before=before, limit=1)
    c = Comparison(profile, kind, last[0] if last else None)
    if failed and versions.get("comfyui"):
        c.good = history.last_passed(profile, before=before)
        c.since_good = version_changes(c.good.versions, versions) if c.good else []
    if c.previous is None:
        return c
    prev = c.previous
    then = history.checks(prev.id)
    for nodeid, outcome in checks.items():
        was = then.get(nodeid, ("", ""))[0]
        if outcome in BAD and was == "passed":
            c.newly_failing.append(nodeid)
        elif outcome == "passed" and was in BAD:
            c.fixed.append(nodeid)
    before_verdicts = {series_key(t, n): v for _, t, n, _, _, _, _, v, _ in history.figures([prev.id])}
    for m in measurements:
        verdict_then = before_verdicts.get(series_key(m.key, m.name))
        if m.verdict == FAIL and verdict_then == PASS:
            c.newly_missed.append(m.failure_message())
        elif m.verdict == PASS and verdict_then == FAIL:
            c.now_met.append(f"{m.name} (target '{m.key}')")
    previous = _previous_values(history, profile, before, [m for m in measurements if m.number is not None
                                                           and m.target is not None], window)
    for m in measurements:
        if m.number is None or m.target is None:
            continue
        r = regression.judge(previous.get(series_key(m.key, m.name), []), m.number, op=m.target.op,
                             threshold=m.target.threshold, pct=pct, window=window, news=regression.news_of(m.key))
        if r:
            c.regressions.append(f"{m.name} (target '{m.key}'): {r.describe(m.unit, m.places)}")
    c.versions = version_changes(prev.versions, versions)
    return c


def _previous_values(history: History, profile: str, before: int | None, wanted: list[Measurement],
                     window: int) -> dict[tuple[str, str], list[float]]:
    """The last `window` values of each wanted figure in earlier finished runs of the profile, oldest first."""
    keys = {series_key(m.key, m.name) for m in wanted}
    found: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    cursor = history.db.execute(
        "SELECT m.target, m.name, m.value FROM measurements m JOIN runs r ON r.id = m.run_id "
        "WHERE r.profile = ? AND r.finished IS NOT NULL AND r.id < ? AND m.target IS NOT NULL "
        "AND m.value IS NOT NULL ORDER BY m.run_id DESC, m.seq", (profile, before if before is not None else 2**62))
    open_keys = set(keys)
    for target, name, value in cursor:
        k = (target, name)
        if k in open_keys:
            found[k].append(value)
            if len(found[k]) >= window:
                open_keys.discard(k)
                if not open_keys:
                    break
    return {k: list(reversed(v)) for k, v in found.items()}


LABELS = {"comfyui": "ComfyUI", "comfyui-frontend-package": "comfyui-frontend-package", "torch": "torch",
          "python": "Python", "gpu": "GPU", "custom_nodes": "custom nodes", "comfycheck": "comfycheck"}
RENAMED = {"frontend": "comfyui-frontend-package"}  # the key of runs kept before every package was recorded


def version_changes(old: dict, new: dict) -> list[str]:
    old = {RENAMED.get(k, k): v for k, v in old.items()}
    new = {RENAMED.get(k, k): v for k, v in new.items()}
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: (list(LABELS).index(k) if k in LABELS else 99, k)):
        if old.get(key) != new.get(key) and old.get(key) and new.get(key):
            out.append(f"{LABELS.get(key, key)} {_change(key, old[key], new[key])}")
    return out


def _change(key: str, old: str, new: str) -> str:
    if key != "custom_nodes":
        return f"{old} -> {new}"
    was, now = _names(old), _names(new)  # a list of names: say what came, went, or stopped importing
    failing = {n.removesuffix(FAILED) for n in now if n.endswith(FAILED)}
    parts = [f"{n.removesuffix(FAILED)} fails to import" if n.removesuffix(FAILED) in was else f"+{n}"
             for n in now if n not in was]
    parts += [f"-{n}" for n in was if n not in now and n not in failing]
    return ", ".join(parts)


def _names(text: str) -> list[str]:
    return [] if text == "none" else [n.strip() for n in text.split(", ") if n.strip()]
