"""Locust: N consecutive generations on ComfyUI, with VRAM/temperature sampled on ComfyUI's own GPU.

    locust -f loadtests/locustfile.py --headless -u 1 -r 1 [--comfy-profile profiles/local.toml] [--generations 10]

The profile comes from --comfy-profile, else $COMFYCHECK_PROFILE, else profiles/local.toml. Results go to
reports/load/<timestamp>/ (summary.json, generations.csv, samples.csv, timeline.png, generations.png, index.html);
the exit code is non-zero when a target is missed. Locust's own --csv/--html work as usual.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser

from comfycheck.config.paths import new_report_dir
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.history import History, HistoryError
from comfycheck.load.runner import LoadRun

RUN: dict = {}  # the one LoadRun of this Locust process, and how it ended
for noisy in ("httpx", "matplotlib"):  # one line per poll would drown Locust's own output
    logging.getLogger(noisy).setLevel(logging.WARNING)


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--comfy-profile", default=None, help="comfycheck profile (default $COMFYCHECK_PROFILE, "
                        "else profiles/local.toml)")
    parser.add_argument("--generations", type=int, default=None, help="generations to run (default: [load])")
    parser.add_argument("--time-limit-s", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--sample-hz", type=float, default=None, help="GPU samples per second")
    parser.add_argument("--report-dir", default="", help="output folder (default reports/load/<timestamp>)")
    parser.add_argument("--allow-load", action="store_true", default=False,
                        help="allow a load run against a profile that does not say allow_load = true")
    parser.add_argument("--history", default="", help="run history to append to (default: the profile's "
                        "[results] history, else reports/history.sqlite)")
    parser.add_argument("--no-history", action="store_true", default=False, help="keep this run out of the history")


@events.init.add_listener
def _init(environment, **_kw):
    opts = environment.parsed_options
    if opts is None:
        return
    try:
        profile = load_profile(opts.comfy_profile)
    except ProfileError as exc:
        _abort(environment, str(exc))
        return
    if not (profile.embedded or profile.allow_load or opts.allow_load):
        _abort(environment, f"load runs against profile {profile.name!r} are not allowed: set allow_load = true "
                            "in the profile or pass --allow-load")
        return
    history = None if opts.no_history else (Path(opts.history).resolve() if opts.history else profile.history_path)
    if history is not None:
        try:
            History(history).close()  # a history that cannot be written stops the run before it starts
        except HistoryError as exc:
            _abort(environment, str(exc))
            return
    generations = opts.generations or profile.load.generations
    out = Path(opts.report_dir) if opts.report_dir else new_report_dir("load")
    RUN.update(profile=profile, generations=generations, out=out, stopped_by="generations",
               time_limit=opts.time_limit_s or profile.load.time_limit_s,
               run=LoadRun(profile, out, generations=generations, sample_hz=opts.sample_hz or profile.load.sample_hz,
                           history=history))


def _abort(environment, message: str) -> None:
    print(f"comfycheck: {message}", file=sys.stderr)
    RUN["abort"] = message
    environment.process_exit_code = 2
    if environment.runner:
        environment.runner.quit()


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if "run" not in RUN:
        return
    try:
        RUN["run"].prepare()
    except Exception as exc:  # noqa: BLE001 - unreachable host, missing workflow: fail fast with the reason
        RUN.pop("run")
        gevent.spawn(_abort, environment, f"cannot start the load run: {exc}")
        return
    RUN["t0"] = time.monotonic()
    gevent.spawn(_time_limit, environment)


def _time_limit(environment):
    gevent.sleep(RUN["time_limit"])  # the run's bound, not a synchronisation: Locust stops at this deadline
    if "run" in RUN and environment.runner:
        RUN["stopped_by"] = f"time limit ({RUN['time_limit']:g} s)"
        environment.runner.quit()


@events.quitting.add_listener
def _quitting(environment, **_kw):
    run = RUN.get("run")
    if run is None:
        return
    summary = run.finish(RUN["stopped_by"])
    print(f"comfycheck load run: {summary.verdict}: {summary.generations_ok}/{summary.generations_requested} "
          f"generations; report {RUN['out']}/index.html")
    if run.kept is not None:
        print(f"  kept as run #{run.kept} (load) in {run.history}")
    if run.keep_error:
        print(f"comfycheck: {run.keep_error}", file=sys.stderr)
        environment.process_exit_code = 2
    for m in summary.measurements:
        figure = f"{m.shown} {m.unit}".strip() if m.value is not None else m.note
        print(f"  {m.verdict:12} {m.name}: {figure}" + (f" (target {m.target.describe()})" if m.target else ""))
    if not summary.passed:
        environment.process_exit_code = 1


class ComfyUIGenerations(User):
    """Runs the profile's generation workflow back to back until N generations are done."""

    wait_time = constant(0)

    @task
    def generate(self):
        run: LoadRun | None = RUN.get("run")
        if run is None or "t0" not in RUN:
            raise StopUser()
        if len(run.generations) >= RUN["generations"]:
            self.environment.runner.quit()
            raise StopUser()
        gen = run.one_generation()
        self.environment.events.request.fire(
            request_type="GENERATE", name=run.workflow_name, response_time=gen.wall_s * 1000, response_length=0,
            exception=None if gen.ok else RuntimeError(gen.error), context={"prompt_id": gen.prompt_id})
        if len(run.generations) >= RUN["generations"]:
            self.environment.runner.quit()
            raise StopUser()
