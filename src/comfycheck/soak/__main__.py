"""python -m comfycheck.soak: hours of probing, judged on the targets.

    python -m comfycheck.soak --duration 24h [--interval 1s] [--profile P] [--out DIR]
    python -m comfycheck.soak report DIR        rebuild DIR/report.html from DIR/samples.sqlite (a killed soak)

Exit status (comfycheck.exitcodes): 0 every target met, 1 a target missed, 2 the soak could not start (bad
profile, unreachable address), 3 the soak ran but could not be kept in the history.
"""
from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
from pathlib import Path

from .. import ComfycheckError, exitcodes
from ..config.duration import format_duration, parse_duration
from ..config.paths import new_report_dir
from ..config.profile import ProfileError, load_profile
from ..history.keeping import check_usable
from ..judge.measurements import FAIL, overall_verdict
from ..stack import EmbeddedStack, StackError
from .runner import Soak, SoakPlan, describe, report_from_samples


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _canary_every(text: str) -> float:
    return 0.0 if text.strip() in ("0", "off", "never") else _seconds(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m comfycheck.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", help="deployment profile (TOML); default $COMFYCHECK_PROFILE, else profiles/local.toml")
    p.add_argument("--duration", type=_seconds, help="how long: 90s, 30m, 24h (default: [soak] duration, 24h)")
    p.add_argument("--interval", type=_seconds, help="one round of probes this often (default: [soak] interval_s, 1s)")
    p.add_argument("--probe-timeout", type=_seconds, help="a probe slower than this counts as down "
                   "(default: [soak] probe_timeout_s, 5s)")
    p.add_argument("--canary-every", type=_canary_every, help="a canary generation this often; 0: none "
                   "(default: [soak] canary_every_s, 10m)")
    p.add_argument("--canary", choices=("smoke", "generation"), help="the canary's workflow (default: [soak] canary)")
    p.add_argument("--nightly", action="store_true", help="the nightly job's short soak: [soak] nightly_duration")
    p.add_argument("--out", type=Path, help="folder for samples.sqlite, report.html, measurements.json "
                   "(default: reports/soak/<date-time>)")
    p.add_argument("--history", type=Path, help="run history to append to (default: the profile's [results] history)")
    p.add_argument("--no-history", action="store_true", help="keep this soak out of the history")
    p.add_argument("--quiet", action="store_true", help="no live line")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return rebuild(argv[1:])
    args = parser().parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"comfycheck soak: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    s = profile.soak
    if args.nightly and s.nightly_duration == "off" and not args.duration:
        print(f"comfycheck soak: no nightly soak: [soak] nightly_duration = \"off\" in {profile.path}", file=sys.stderr)
        return 0
    duration = args.duration or parse_duration(s.nightly_duration if args.nightly else s.duration)
    plan = SoakPlan(duration_s=duration, interval_s=args.interval or s.interval_s,
                    probe_timeout_s=args.probe_timeout or s.probe_timeout_s,
                    canary_every_s=s.canary_every_s if args.canary_every is None else args.canary_every,
                    canary=args.canary or s.canary)
    history = None if args.no_history else (args.history.resolve() if args.history else profile.history_path)
    out = (args.out or new_report_dir("soak")).resolve()
    stack = EmbeddedStack(profile) if profile.embedded else None
    try:
        owned = stack is not None and stack.up().owned  # as pytest does: the embedded stack, started if need be
    except StackError as exc:
        print(f"comfycheck soak: embedded stack of profile {profile.path}: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    try:
        return _soak(profile, out, plan, history, args.quiet)
    finally:
        if owned and stack is not None:
            stack.down()


def _soak(profile, out: Path, plan: SoakPlan, history: Path | None, quiet: bool) -> int:
    soak = Soak(profile, out, plan, history=history, live=None if quiet else sys.stderr)
    try:
        check_usable(history)  # a history that cannot be used stops the soak now, not after a day
        soak.prepare()
    except (ComfycheckError, OSError) as exc:  # an unreachable address, a workflow, the history, the out folder
        print(f"comfycheck soak: cannot start against profile {profile.path}: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN

    def stop(signum, _frame):
        soak.stopped_by = signal.Signals(signum).name
        soak.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"comfycheck soak: {profile.name} for {format_duration(plan.duration_s)}, a round every "
          f"{plan.interval_s:g} s; samples in {out / 'samples.sqlite'} (Ctrl-C ends it with a report)",
          file=sys.stderr)
    judgement = soak.run()
    for line in describe(judgement, out):
        print(line)
    return _exit(judgement, out)


def _exit(judgement, out: Path) -> int:
    """The soak's exit status (exitcodes): judged but not kept says so, above a missed target."""
    if judgement.kept is not None and judgement.kept.error:
        print(f"comfycheck soak: {judgement.kept.error}; keep it later with: comfycheck soak report {out} "
              "--history FILE", file=sys.stderr)
        return exitcodes.NOT_KEPT
    return exitcodes.MISSED if overall_verdict(judgement.measurements) == FAIL else exitcodes.OK


def rebuild(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m comfycheck.soak report",
                                description="Rebuild a soak's report from its samples (a soak that was killed).")
    p.add_argument("folder", type=Path, help="the soak's folder (holds samples.sqlite)")
    p.add_argument("--history", type=Path, help="also keep the soak in this run history")
    args = p.parse_args(argv)
    try:
        judgement = report_from_samples(args.folder, history=args.history)
    except (ComfycheckError, sqlite3.Error) as exc:
        print(f"comfycheck soak report: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    for line in describe(judgement, args.folder):
        print(line)
    return _exit(judgement, args.folder)


if __name__ == "__main__":
    sys.exit(main())
