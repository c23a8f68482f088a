"""Locust: a class of students on the one GPU at once, each prompt measured as its student lives it.

    locust -f loadtests/classroom.py --headless [--comfy-profile PROFILE] [--students 30] [--prompts-each 2]

Each Locust user is one student: its page WebSocket held open through the public address (Origin, the profile's
token), and for each prompt an upload where the workflow loads an image, a cache-busted submit under its own
client_id, the wait for its own prompt on its own socket and the download of the output. Locust's own stats show
each phase (SUBMIT, QUEUE, EXECUTE, RESULT); the judgement is made from the raw records the run writes, since
Locust rounds response times. The shape is `burst` (every student submits at t = 0) or `ramp` (the students
arrive evenly over --ramp-s); the run stops by itself when every prompt is back, or at the time limit. Results
go to reports/class/<timestamp>/ (prompts.jsonl, summary.json, prompts.csv, timeline.png, samples.csv,
index.html); exit 0: every target met, 1: a target missed, 2: the run could not start.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import gevent
import gevent.queue
from locust import LoadTestShape, User, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from comfycheck.classrun.arrivals import arrival_times
from comfycheck.classrun.coordinators import Master, OneProcess, Quota, Worker
from comfycheck.classrun.runner import ClassRun
from comfycheck.comfy.errors import ComfyError
from comfycheck.config.paths import new_report_dir
from comfycheck.load.lifecycle import Lifecycle

LIFE = Lifecycle("class run")
RUN = LIFE.state  # the one ClassRun of this Locust process (none on a worker), its coordinator, how it ended
TICKETS: gevent.queue.Queue = gevent.queue.Queue()  # a `rate` run's arrived prompts, each taken by a free student
for noisy in ("httpx", "matplotlib"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


@events.init_command_line_parser.add_listener
def _arguments(parser):
    LIFE.add_arguments(parser, "class")
    parser.add_argument("--students", type=int, default=None, help="students (default: [class] students)")
    parser.add_argument("--prompts-each", type=int, default=None, help="prompts per student ([class])")
    parser.add_argument("--shape", choices=("burst", "ramp", "rate"), default=None,
                        help="burst: the class presses Run at once; ramp: students arrive over --ramp-s; rate: "
                             "prompts arrive at random at --rate-per-min for --duration-s ([class])")
    parser.add_argument("--ramp-s", type=float, default=None, help="the ramp's length in seconds ([class])")
    parser.add_argument("--rate-per-min", type=float, default=None, help="the rate's prompts a minute ([class])")
    parser.add_argument("--duration-s", type=float, default=None, help="the rate's length in seconds ([class])")
    parser.add_argument("--seed", type=int, default=None, help="the rate's arrival times ([class])")
    parser.add_argument("--result-within-s", type=float, default=None, help="the wait the teacher accepts ([class])")
    parser.add_argument("--think-time-s", type=float, default=None, help="between a student's prompts ([class])")


@events.init.add_listener
def _init(environment, **_kw):
    if isinstance(environment.runner, WorkerRunner):  # students only: the master holds the run
        RUN["coord"] = Worker(environment)
        return
    opened = LIFE.open(environment)
    if opened is None:
        return
    profile, history = opened
    opts = environment.parsed_options
    given = {k: v for k, v in (("students", opts.students), ("prompts_each", opts.prompts_each),
                               ("shape", opts.shape), ("ramp_s", opts.ramp_s), ("rate_per_min", opts.rate_per_min),
                               ("duration_s", opts.duration_s), ("seed", opts.seed),
                               ("result_within_s", opts.result_within_s), ("think_time_s", opts.think_time_s),
                               ("time_limit_s", opts.time_limit_s)) if v is not None}
    bad = [f"--{k.replace('_', '-')} {v}" for k, v in given.items()
           if (k in ("students", "prompts_each") and v < 1) or (k in ("ramp_s", "rate_per_min", "duration_s")
                                                                   and v <= 0)]
    if bad:
        LIFE.abort(environment, f"{', '.join(bad)}: students and prompts each must be at least 1, the ramp, "
                                "rate and duration above 0")
        return
    profile = replace(profile, classroom=replace(profile.classroom, **given))
    out = Path(opts.report_dir) if opts.report_dir else new_report_dir("class")
    run = ClassRun(profile, out, sample_hz=opts.sample_hz or profile.load.sample_hz, history=history)
    RUN.update(out=out, stopped_by="every prompt back", settings=profile.classroom, run=run)
    quota = Quota(run, TICKETS)
    if isinstance(environment.runner, MasterRunner):
        RUN["coord"] = Master(environment, run, quota, on_done=lambda: LIFE.quit_outside(environment),
                              on_failed=lambda why: LIFE.abort(environment, why))
    else:
        RUN["coord"] = OneProcess(run, quota, on_done=lambda: LIFE.quit_outside(environment))


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if "run" not in RUN or not LIFE.start(environment, RUN["settings"].time_limit_s):
        return
    if isinstance(RUN["coord"], Master):
        RUN["coord"].setup()


@events.spawning_complete.add_listener
def _spawned(**_kw):
    """A `rate` run's prompts start arriving once the class is in (every student's page open), once."""
    if "run" in RUN and RUN["settings"].shape == "rate" and not RUN.get("arriving"):
        RUN["arriving"] = gevent.spawn(_arrive, arrival_times(RUN["settings"]))


def _arrive(times: list[float]) -> None:
    """The rate's prompts, each put on the ticket queue at its arrival time (a schedule, not a synchronisation)."""
    start = time.monotonic()
    for t in times:
        gevent.sleep(max(0.0, start + t - time.monotonic()))
        TICKETS.put(time.time())


@events.quitting.add_listener
def _quitting(environment, **_kw):
    run: ClassRun | None = RUN.get("run")
    if run is None or "t0" not in RUN:
        return
    summary = run.finish(RUN["stopped_by"])
    print(f"comfycheck class run: {summary.verdict}: {summary.prompts_ok}/{summary.prompts_requested} prompts "
          f"back; report {RUN['out']}/index.html")
    print(f"  {summary.capacity}")
    LIFE.report(environment, run, summary, "class")


class ClassShape(LoadTestShape):
    """How the class arrives ([class] shape): `burst`, every student at t = 0 (the class presses Run); `ramp`,
    evenly over ramp_s; `rate`, every student at once, waiting for the prompts as they arrive. The run is over
    when every prompt is back (or at the time limit)."""

    def tick(self):
        run: ClassRun | None = RUN.get("run")
        if run is None or run.done:
            return None
        settings = RUN["settings"]
        spawn_rate = settings.students / settings.ramp_s if settings.shape == "ramp" else settings.students
        return settings.students, spawn_rate


class ComfyUIStudent(User):
    wait_time = constant(0)

    def on_start(self):
        coord = RUN.get("coord")
        self.seq = 0
        self.student = None
        if coord is not None and ("t0" in RUN or getattr(coord, "ready", False)):
            self.student = coord.student()
            if self.student is not None:
                try:
                    self.student.open()  # the page's socket, open from the start (a refusal is told by its prompt)
                except ComfyError:
                    pass

    def on_stop(self):
        student = getattr(self, "student", None)
        if student is not None:
            student.close()

    @task
    def prompt(self):
        coord = RUN.get("coord")
        if coord is None or self.student is None:
            raise StopUser()
        more, arrived = self._next(coord)
        if not more:
            # done: stay until the whole class is (a user that stopped would be replaced by Locust's spawner)
            coord.all_back.wait(timeout=coord.settings.time_limit_s)
            raise StopUser()
        self.seq += 1
        rec = self.student.prompt(self.seq, arrived_at=arrived)
        fire = self.environment.events.request.fire
        error = None if rec.ok else RuntimeError(rec.error or rec.status)
        for kind, ms in (("SUBMIT", rec.accept_ms), ("QUEUE", _ms(rec.queue_wait_s)),
                         ("EXECUTE", _ms(rec.execution_s)), ("RESULT", _ms(rec.result_s))):
            if ms is not None or kind == "RESULT":
                fire(request_type=kind, name=coord.workflow_name, response_time=ms or 0,
                     response_length=rec.output_bytes if kind == "RESULT" else 0,
                     exception=error if kind == "RESULT" else None, context={"prompt_id": rec.prompt_id})
        coord.record(rec)  # last: the run's last record ends it

    def _next(self, coord) -> tuple[bool, float | None]:
        """Whether this student has another prompt from the run's quota, and when it arrived (a `rate` run's
        ticket, taken when this student is free)."""
        settings = coord.settings
        if settings.shape == "rate":
            return coord.take()
        if self.seq >= settings.prompts_each:
            return False, None
        more = coord.take()
        if more[0] and self.seq and settings.think_time_s:
            gevent.sleep(settings.think_time_s)  # the student reads the result before the next prompt
        return more


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
