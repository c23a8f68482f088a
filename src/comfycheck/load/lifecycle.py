"""What both Locust files (loadtests/locustfile.py, loadtests/classroom.py) do around their run: start it, bound it
in time, stop it, and abort it with exit 2 saying why. Imported by the Locust process only (it uses gevent)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import gevent

from .. import exitcodes
from ..config.profile import Profile, ProfileError, load_profile
from ..history import HistoryError
from ..history.keeping import check_usable


class Lifecycle:
    """One run of a Locust process: `state` holds the run ("run"), its start ("t0") and how it ended."""

    def __init__(self, what: str):
        self.what = what  # "load run", "class run": in the messages
        self.state: dict = {}

    def add_arguments(self, parser, folder: str) -> None:
        """The options both Locust files take: the profile, the time bound, sampling, output and history."""
        parser.add_argument("--comfy-profile", default=None, help="comfycheck profile (default $COMFYCHECK_PROFILE, "
                            "else profiles/local.toml)")
        parser.add_argument("--time-limit-s", type=float, default=None, help="stop after this many seconds")
        parser.add_argument("--sample-hz", type=float, default=None, help="GPU samples per second ([load])")
        parser.add_argument("--report-dir", default="", help=f"output folder (default reports/{folder}/<timestamp>)")
        parser.add_argument("--allow-load", action="store_true", default=False,
                            help=f"allow a {self.what} against a profile that does not say allow_load = true")
        parser.add_argument("--history", default="", help="run history to append to (default: the profile's "
                            "[results] history, else reports/history.sqlite)")
        parser.add_argument("--no-history", action="store_true", default=False,
                            help="keep this run out of the history")

    def open(self, environment) -> tuple[Profile, Path | None] | None:
        """The profile (--comfy-profile) and the history the run is kept in (--history, --no-history); None
        without parsed options (Locust used as a library), or once the run is aborted, saying why: a bad
        profile, one that allows no load, a history not writable."""
        opts = environment.parsed_options
        if opts is None:
            return None
        try:
            profile = load_profile(opts.comfy_profile)
        except ProfileError as exc:
            self.abort(environment, str(exc))
            return None
        if not (profile.embedded or profile.allow_load or opts.allow_load):
            self.abort(environment, f"{self.what}s against profile {profile.name!r} are not allowed: set "
                                    "allow_load = true in the profile or pass --allow-load")
            return None
        history = None if opts.no_history else (Path(opts.history).resolve() if opts.history else profile.history_path)
        try:
            check_usable(history)  # a history that cannot be written stops the run before it starts
        except HistoryError as exc:
            self.abort(environment, str(exc))
            return None
        return profile, history

    def abort(self, environment, message: str) -> None:
        print(f"comfycheck: {message}", file=sys.stderr)
        self.state["abort"] = message
        environment.process_exit_code = exitcodes.CANNOT_RUN
        if environment.runner:
            environment.runner.quit()

    def start(self, environment, time_limit_s: float) -> bool:
        """Prepare the run (an unreachable host, a missing workflow: abort at once, saying why) and bound it."""
        if "run" not in self.state:
            return False
        try:
            self.state["run"].prepare()
        except Exception as exc:  # noqa: BLE001 - whatever stops it from starting is named, exit 2
            self.state.pop("run")
            gevent.spawn(self.abort, environment, f"cannot start the {self.what}: {exc}")
            return False
        self.state["t0"] = time.monotonic()
        gevent.spawn(self._time_limit, environment, time_limit_s)
        return True

    def _time_limit(self, environment, seconds: float) -> None:
        gevent.sleep(seconds)  # the run's bound, not a synchronisation: Locust stops at this deadline
        if "run" in self.state and environment.runner:
            self.state["stopped_by"] = f"time limit ({seconds:g} s)"
            environment.runner.quit()

    def report(self, environment, run, summary, kind: str) -> None:
        """After the run's headline: where it was kept, every figure with its verdict, and the exit code (see
        exitcodes: a run that could not be kept says so above a missed target)."""
        if run.kept.error:
            print(f"comfycheck: {run.kept.error}", file=sys.stderr)
            environment.process_exit_code = exitcodes.NOT_KEPT
        elif run.kept.run_id is not None:
            print(f"  {run.kept.line()}")
        for note in getattr(summary, "notes", []):  # which card was sampled and why, what was left out
            print(f"  note: {note}")
        for m in summary.measurements:
            figure = f"{m.shown} {m.unit}".strip() if m.value is not None else m.note
            print(f"  {m.verdict:12} {m.name}: {figure}" + (f" (target {m.target.describe()})" if m.target else ""))
        if not summary.passed and environment.process_exit_code in (None, exitcodes.OK):  # None: not set yet
            environment.process_exit_code = exitcodes.MISSED

    @staticmethod
    def quit_outside(environment) -> None:
        """Quit from a greenlet of its own: quitting kills every user's greenlet, and a user that quit from its
        own would be killed half-way through, leaving the run going until its time limit."""
        gevent.spawn(environment.runner.quit)
