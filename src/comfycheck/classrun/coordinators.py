"""Who holds a class run's quota and records: this process (`OneProcess`), or, with Locust's master and workers,
the master (`Master`), to which each worker's students (`Worker`) send their asks and records as Locust messages.
The master prepares the run, samples the GPU, hands out every prompt (never more than requested, never one twice)
and judges the records; a worker only runs students. Imported by the Locust process only (it uses gevent)."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, replace

import gevent.event
import gevent.queue

from ..config.profile import ProfileError, load_profile
from ..config.settings import ClassSettings
from .records import PromptRecord
from .runner import ClassRun, new_student
from .student import Student

SETUP = "comfycheck_class_setup"  # master -> workers: the workflow and the [class] settings, before any user starts
TAKE = "comfycheck_class_take"  # worker -> master: a student asks for a prompt
GRANT = "comfycheck_class_grant"  # master -> the asking worker: yes (and a `rate` prompt's arrival) or no
SUBMITTED = "comfycheck_class_submitted"  # worker -> master: ComfyUI accepted a prompt (lost if never back)
RECORD = "comfycheck_class_record"  # worker -> master: a prompt's record, as it ended
ALL_BACK = "comfycheck_class_all_back"  # master -> workers: every prompt is back, the students may go
FAILED = "comfycheck_class_failed"  # worker -> master: it cannot run students (the run stops, exit 2)


class Quota:
    """The run's prompts, one per ask; a `rate` run's ask also waits for the prompt's arrival (a ticket)."""

    def __init__(self, run: ClassRun, tickets: gevent.queue.Queue):
        self.run = run
        self.tickets = tickets

    def take(self) -> tuple[bool, float | None]:
        if not self.run.take():
            return False, None
        if self.run.settings.shape != "rate":
            return True, None
        try:
            return True, self.tickets.get(timeout=self.run.settings.time_limit_s)
        except gevent.queue.Empty:
            return False, None


class OneProcess:
    """The run and its students in this Locust process."""

    def __init__(self, run: ClassRun, quota: Quota, on_done: Callable[[], None]):
        self.run, self.quota, self.on_done = run, quota, on_done
        self.settings: ClassSettings = run.settings
        self.workflow_name = run.workflow_name
        self.all_back = gevent.event.Event()
        self._names = itertools.count(1)

    def student(self) -> Student:
        n = next(self._names)
        return self.run.student(f"student-{n:02d}", n - 1)

    def take(self) -> tuple[bool, float | None]:
        return self.quota.take()

    def record(self, rec: PromptRecord) -> None:
        self.run.record(rec)
        if self.run.done:
            self.all_back.set()
            self.on_done()


class Master:
    """The master's side: the run itself, answering the workers' messages."""

    def __init__(self, environment, run: ClassRun, quota: Quota, on_done: Callable[[], None],
                 on_failed: Callable[[str], None]):
        self.runner = environment.runner
        self.run, self.quota, self.on_done, self.on_failed = run, quota, on_done, on_failed
        self.runner.register_message(TAKE, self._take, concurrent=True)  # a `rate` ask waits for its arrival
        self.runner.register_message(SUBMITTED, self._submitted)
        self.runner.register_message(RECORD, self._record)
        self.runner.register_message(FAILED, self._failed)

    def setup(self) -> None:
        """To every worker, before the first user is spawned (Locust sends it ahead of the spawn message)."""
        self.runner.send_message(SETUP, {"workflow": self.run.workflow, "settings": asdict(self.run.settings),
                                         "profile": str(self.run.profile.path)})

    def _take(self, environment, msg, **_kw) -> None:
        granted, arrived = self.quota.take()
        self.runner.send_message(GRANT, {"ask": msg.data["ask"], "granted": granted, "arrived_at": arrived},
                                 client_id=msg.node_id)

    def _submitted(self, environment, msg, **_kw) -> None:
        self.run.submitted(PromptRecord(**msg.data))

    def _record(self, environment, msg, **_kw) -> None:
        self.run.record(PromptRecord(**msg.data))
        if self.run.done:
            self.runner.send_message(ALL_BACK)
            self.on_done()

    def _failed(self, environment, msg, **_kw) -> None:
        self.on_failed(f"worker {self.runner.get_worker_index(msg.node_id)} ({msg.node_id}) cannot run students: "
                       f"{msg.data['error']}")


class Worker:
    """A worker's side: students built from the master's setup, asking it for each prompt, sending it each record."""

    def __init__(self, environment):
        self.environment = environment
        self.runner = environment.runner
        self.settings = ClassSettings()
        self.workflow_name = ""
        self.all_back = gevent.event.Event()
        self._profile = None
        self._workflow: dict = {}
        self._asks: dict[int, gevent.event.AsyncResult] = {}
        self._ask_ids = itertools.count(1)
        self._names = itertools.count(1)
        self.runner.register_message(SETUP, self._setup)
        self.runner.register_message(GRANT, self._grant)
        self.runner.register_message(ALL_BACK, lambda **_kw: self.all_back.set())

    @property
    def ready(self) -> bool:
        return self._profile is not None

    def _setup(self, environment, msg, **_kw) -> None:
        path = msg.data["profile"]  # as the master was given it (Locust hands its options over only at the spawn)
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            self.runner.send_message(FAILED, {"error": f"{exc} (each worker reads the profile at the path the "
                                                       "master was given: put it at the same path on every load "
                                                       "machine)"})
            return
        self.settings = ClassSettings(**msg.data["settings"])
        self._profile = replace(profile, classroom=self.settings)
        self._workflow = msg.data["workflow"]
        self.workflow_name = profile.comfyui.generation_workflow

    def student(self) -> Student | None:
        if self._profile is None:
            return None
        n, index = next(self._names), self.runner.worker_index
        name = f"student-w{index}-{n:02d}"  # unique across the workers
        # each worker starts its turn over the fleet at its own backend, so the workers' students spread evenly
        student = new_student(self._profile, self._workflow, name, n - 1 + index)
        student.on_submit = lambda rec: self.runner.send_message(SUBMITTED, asdict(rec))
        return student

    def take(self) -> tuple[bool, float | None]:
        ask = next(self._ask_ids)
        answer = self._asks[ask] = gevent.event.AsyncResult()
        self.runner.send_message(TAKE, {"ask": ask})
        try:
            return answer.get(timeout=self.settings.time_limit_s + 30)
        except gevent.Timeout:
            return False, None  # the master went away: this student is done
        finally:
            self._asks.pop(ask, None)

    def _grant(self, environment, msg, **_kw) -> None:
        answer = self._asks.get(msg.data["ask"])
        if answer is not None:
            answer.set((msg.data["granted"], msg.data["arrived_at"]))

    def record(self, rec: PromptRecord) -> None:
        self.runner.send_message(RECORD, asdict(rec))
