"""python -m comfycheck.history trend --profile production   (and `runs`: the runs kept, one line each)

--profile takes a profile file (its name, history and regression settings are used) or a profile's name."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from .. import ComfycheckError
from ..config.paths import DEFAULT_HISTORY, REPORTS_DIR, resolve
from ..config.profile import ProfileError, load_profile
from . import regression
from .store import History, HistoryError
from .trend import analyse, render


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m comfycheck.history", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name, text in (("trend", "write the trend page (self-contained HTML)"), ("runs", "list the runs kept")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", required=True, help="a profile file, or the name of a profile in the history")
        p.add_argument("--history", default=None, help="the history file (default: the profile's, else "
                       "reports/history.sqlite)")
        p.add_argument("--kind", default=None, help="only runs of this kind ('load', 'pytest -m smoke', ...)")
        p.add_argument("--last", type=int, default=None, help="only the last N runs")
    sub.choices["trend"].add_argument("--out", default=None, help="the page to write (default "
                                      "reports/trend-<profile>.html)")
    args = ap.parse_args(argv)
    try:
        name, history_path, window, pct = _resolve(args.profile, args.history)
        if not history_path.is_file():
            raise HistoryError(f"history {history_path}: no such file (no run has been kept there yet; "
                               "pass --history to read another)")
        with History(history_path) as history:
            if name not in history.profiles():
                known = ", ".join(history.profiles()) or "none"
                raise HistoryError(f"history {history_path}: no runs of profile {name!r} (profiles there: {known})")
            if args.command == "runs":
                for run in history.runs(name, kind=args.kind, limit=args.last):
                    state = run.verdict or "did not finish"
                    print(f"{run.label}  {state:16} {run.kind:28} {_counts(run.outcomes)}  {run.report}")
                return 0
            t0 = time.perf_counter()
            trend = analyse(history, name, window=window, pct=pct, last=args.last, kind=args.kind)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            page = render(trend, generated=f"Written {stamp} from {history_path}; regression window {window} runs, "
                                           f"{pct:g} %.")
        out = Path(args.out) if args.out else REPORTS_DIR / f"trend-{_safe(name)}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except (ComfycheckError, OSError) as exc:
        print(f"comfycheck history: {exc}", file=sys.stderr)
        return 2
    flagged = trend.flagged_runs()
    print(f"trend of {name!r}: {len(trend.runs)} runs, {len(trend.series)} targets, {len(flagged)} runs with figures "
          f"worse than usual, {len(trend.versions)} version changes; {out} ({time.perf_counter() - t0:.2f} s)")
    for run_id, targets in flagged.items():
        print(f"  #{run_id}: {', '.join(targets)}")
    return 0


def _resolve(profile: str, history: str | None) -> tuple[str, Path, int, float]:
    """(profile name, history file, regression window, regression %) from a profile file or a bare name."""
    if profile.endswith(".toml") or Path(profile).is_file():
        p = load_profile(profile)
        path = Path(history).resolve() if history else p.history_path
        if path is None:
            raise ProfileError(f"profile {p.path}: [results] history is \"\", it keeps no history "
                               "(pass --history to read one)")
        return p.name, path, p.results.regression_window, p.results.regression_pct
    path = Path(history).resolve() if history else resolve(DEFAULT_HISTORY)
    return profile, path, regression.WINDOW, regression.PCT


def _counts(outcomes: dict) -> str:
    return " ".join(f"{k} {v}" for k, v in outcomes.items() if v)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


if __name__ == "__main__":
    sys.exit(main())
