"""Locust: N consecutive generations on ComfyUI, with VRAM/temperature sampled on ComfyUI's own GPU.

    locust -f loadtests/locustfile.py --headless -u 1 -r 1 [--comfy-profile profiles/local.toml] [--generations 10]

The profile comes from --comfy-profile, else $COMFYCHECK_PROFILE, else profiles/local.toml. Results go to
reports/load/<timestamp>/ (summary.json, generations.csv, samples.csv, timeline.png, generations.png, index.html);
the exit code is non-zero when a target is missed. Locust's own --csv/--html work as usual.
"""
from __future__ import annotations

import logging
from pathlib import Path

from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from comfycheck.config.paths import new_report_dir
from comfycheck.load.lifecycle import Lifecycle
from comfycheck.load.runner import LoadRun

LIFE = Lifecycle("load run")
RUN = LIFE.state  # the one LoadRun of this Locust process, and how it ended
for noisy in ("httpx", "matplotlib"):  # one line per poll would drown Locust's own output
    logging.getLogger(noisy).setLevel(logging.WARNING)


@events.init_command_line_parser.add_listener
def _arguments(parser):
    LIFE.add_arguments(parser, "load")
    parser.add_argument("--generations", type=int, default=None, help="generations to run (default: [load])")


@events.init.add_listener
def _init(environment, **_kw):
    if isinstance(environment.runner, MasterRunner | WorkerRunner):
        if isinstance(environment.runner, MasterRunner):  # a worker is told to quit by its master
            LIFE.abort(environment, "the load run is one user's generations in one process: run it without "
                                    "--master/--worker/--processes; for many users over several processes, run "
                                    "loadtests/classroom.py")
        return
    opened = LIFE.open(environment)
    if opened is None:
        return
    profile, history = opened
    opts = environment.parsed_options
    generations = opts.generations or profile.load.generations
    out = Path(opts.report_dir) if opts.report_dir else new_report_dir("load")
    RUN.update(profile=profile, generations=generations, out=out, stopped_by="generations",
               time_limit=opts.time_limit_s or profile.load.time_limit_s,
               run=LoadRun(profile, out, generations=generations, sample_hz=opts.sample_hz or profile.load.sample_hz,
                           history=history))


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if "run" in RUN:
        LIFE.start(environment, RUN["time_limit"])


@events.quitting.add_listener
def _quitting(environment, **_kw):
    run = RUN.get("run")
    if run is None:
        return
    summary = run.finish(RUN["stopped_by"])
    print(f"comfycheck load run: {summary.verdict}: {summary.generations_ok}/{summary.generations_requested} "
          f"generations; report {RUN['out']}/index.html")
    LIFE.report(environment, run, summary, "load")


class ComfyUIGenerations(User):
    """Runs the profile's generation workflow back to back until N generations are done."""

    wait_time = constant(0)

    @task
    def generate(self):
        run: LoadRun | None = RUN.get("run")
        if run is None or "t0" not in RUN:
            raise StopUser()
        if len(run.generations) >= RUN["generations"]:
            LIFE.quit_outside(self.environment)
            raise StopUser()
        gen = run.one_generation()
        self.environment.events.request.fire(
            request_type="GENERATE", name=run.workflow_name, response_time=gen.wall_s * 1000, response_length=0,
            exception=None if gen.ok else RuntimeError(gen.error), context={"prompt_id": gen.prompt_id})
        if len(run.generations) >= RUN["generations"]:
            LIFE.quit_outside(self.environment)
            raise StopUser()
