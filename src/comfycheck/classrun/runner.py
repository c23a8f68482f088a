"""One class run: students on the one GPU at once, each prompt recorded as its student lived it, the GPU sampled
once for the whole run, then judged from the records and kept in the history as kind "class".

Locust drives it (loadtests/classroom.py): prepare() at test start, a Student per Locust user, record() as each
prompt ends, finish() when Locust quits."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..comfy.client import ComfyClient
from ..comfy.workflows import describe, generation_workflow
from ..config.profile import Profile
from ..config.settings import ClassSettings
from ..history import versions
from ..history.keeping import Kept, keep
from ..judge.measurements import Measurement, overall_verdict
from ..load.samples import SAMPLES_CSV
from ..probes.gpu import NvmlSource, Sampler, SystemStatsSource, read_samples, sampled_card
from ..probes.gpu_choice import choose_source
from . import records as raw
from .fleet import Fleet, answering, backend_client, fleet_of, locate, still_queued, student_address
from .judge import TEST, judge, what_bounds
from .records import PromptRecord
from .report import ClassSummary, write_outputs
from .student import Student


class ClassRun:
    def __init__(self, profile: Profile, out_dir: Path, *, sample_hz: float, history: Path | None = None):
        self.profile = profile
        self.settings = profile.classroom
        self.out = out_dir
        self.hz = sample_hz
        self.history = history
        self.requested = self.settings.prompts
        self.client = ComfyClient.from_profile(profile)
        self.fleet = fleet_of(profile)
        self.backends = {url: backend_client(profile, url) for url in self.fleet}
        self.workflow_name = profile.comfyui.generation_workflow
        self.workflow: dict = {}
        self.records: list[PromptRecord] = []
        self.in_flight: dict[tuple[str, int], PromptRecord] = {}  # accepted by ComfyUI, not in the records yet
        self.arriving: dict[tuple[str, int], PromptRecord] = {}  # back, record() still asking where it ran
        self.written: set[tuple[str, int]] = set()  # (student, seq) of every record in the file
        self.issued = 0  # prompts handed to students, of the requested students x prompts each
        self.notes: list[str] = []
        self.system_stats: dict = {}
        self.source: NvmlSource | SystemStatsSource | None = None
        self.sampler: Sampler | None = None
        self.started = dt.datetime.now(dt.UTC)
        self.kept = Kept(history, "class")  # where it was kept in the history, once judged, or why not

    @property
    def via(self) -> str:
        if self.settings.spread == "direct":
            return ", ".join(self.fleet) + " (each student given one in turn)"
        return self.profile.public.url if self.profile.public else self.profile.comfyui.url

    def prepare(self) -> None:
        """Reach every backend, check the workflow against ComfyUI, start the GPU sampler; raises ComfyError (fail
        fast)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.system_stats = self.client.system_stats()
        for url, client in self.backends.items():
            if url != self.client.base_url:
                client.system_stats()
        self.workflow = generation_workflow(self.client, self.profile)
        choice = choose_source(self.profile, self.client)
        self.source = choice.source
        self.notes += choice.notes
        self.sampler = Sampler(self.source, self.out / SAMPLES_CSV, self.hz).start()
        (self.out / raw.PROMPTS_JSONL).touch()

    def student(self, name: str, ordinal: int) -> Student:
        student = new_student(self.profile, self.workflow, name, ordinal)
        student.on_submit = self.submitted
        return student

    def submitted(self, rec: PromptRecord) -> None:
        """ComfyUI accepted it: a prompt in flight, named as lost if the run stops before it is back."""
        self.in_flight[(rec.student, rec.seq)] = rec

    def record(self, rec: PromptRecord) -> None:
        if len(self.fleet) > 1:  # while every backend still holds its history: one that goes down later loses it
            self.arriving[(rec.student, rec.seq)] = rec
            locate([rec], self.fleet, self.backends)  # asks the backends: the run may stop meanwhile
        self._keep(rec)

    def _keep(self, rec: PromptRecord) -> None:
        """Into the records file once: a record finish() kept as the run stopped is not written again."""
        key = (rec.student, rec.seq)
        if key in self.written:
            return
        self.written.add(key)
        self.in_flight.pop(key, None)  # only now: until it is in the file, finish() sees it
        self.arriving.pop(key, None)
        self.records.append(rec)
        raw.append(self.out / raw.PROMPTS_JSONL, rec)

    def take(self) -> bool:
        """A prompt from the run's quota for a student; False once every requested prompt is handed out."""
        if self.issued >= self.requested:
            return False
        self.issued += 1
        return True

    @property
    def done(self) -> bool:
        return len(self.records) >= self.requested

    def finish(self, stopped_by: str) -> ClassSummary:
        assert self.sampler is not None and self.source is not None, "prepare() first"
        peak = self.sampler.stop().peak
        for key, rec in list(self.in_flight.items()):  # submitted, and not in the records when the run stopped
            if key in self.arriving:  # back, its backend still being found: as it came back
                rec = self.arriving[key]
            else:
                rec.status = raw.LOST
                rec.error = f"prompt {rec.prompt_id} accepted, and no result when the run stopped ({stopped_by})"
            self._keep(rec)
        down = answering(self.backends)
        Fleet(self.fleet, down).write(self.out)
        records = raw.read(self.out / raw.PROMPTS_JSONL)
        answer = {u: c for u, c in self.backends.items() if u not in down}
        locate(records, self.fleet, answer)
        still_queued(records, answer, stopped_by)
        raw.rewrite(self.out / raw.PROMPTS_JSONL, records)  # which backend served each, kept with its record
        for client in self.backends.values():
            client.close()
        fleet = Fleet.read(self.out) or Fleet(self.fleet, down)  # judged from the files alone
        ran = describe(self.workflow, self.workflow_name)
        rows, capacity = judge(records, self.profile.targets, self.settings, requested=self.requested, ran=ran,
                               fleet=fleet)
        rows.append(self._vram(peak.used_pct if peak else None, ran[1]))
        bound = what_bounds(rows, read_samples(self.out / SAMPLES_CSV) if (self.out / SAMPLES_CSV).is_file() else [],
                            _window(records))
        summary = ClassSummary(
            profile=self.profile.name, report_dir=str(self.out.resolve()), workflow=self.workflow_name,
            shape=self.settings.shape, arrivals=arrivals_in_words(self.settings), students=self.settings.students,
            prompts_each=self.settings.prompts_each,
            started=self.started.isoformat(timespec="seconds"),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), stopped_by=stopped_by,
            prompts_requested=self.requested, prompts_ok=sum(r.ok for r in records),
            capacity=(capacity.describe() + "; " + bound) if capacity else "no prompt finished: no service time to "
                                                                           "plan with",
            verdict=overall_verdict(rows), notes=self.notes + [f"students reached ComfyUI through {self.via}"],
            versions=versions.of_run(self.system_stats, gpu=sampled_card(self.source)),
            measurements=rows, result_within_s=self.settings.result_within_s)
        write_outputs(self.out, summary, records, gpu=bool(getattr(self.source, "gpu", True)))
        self.kept = keep(self.history, summary.profile, "class", started=summary.started, finished=summary.finished,
                         verdict="passed" if summary.passed else "failed", versions=summary.versions,
                         outcomes={"prompts_ok": summary.prompts_ok, "prompts_requested": self.requested},
                         measurements=rows, report=self.out / "index.html")
        return summary

    def _vram(self, peak_pct: float | None, is_512: bool) -> Measurement:
        target = self.profile.targets["vram_generation_pct"]
        if not getattr(self.source, "gpu", True) or peak_pct is None:
            return Measurement(target.label, None, "%", target, TEST,
                               not_assessed="not assessed: ComfyUI runs on the CPU (/system_stats lists no GPU)")
        if not is_512:
            return Measurement("peak VRAM during the class run", peak_pct, "%", None, TEST,
                               {"note": f"not judged against '{target.key}': the run drove another workflow"})
        return Measurement(target.label, peak_pct, "%", target, TEST, {"note": "peak during the class run"})


def _window(records: list[PromptRecord]) -> tuple[float, float] | None:
    """The class's own span by the wall clock: the first prompt sent to the last image downloaded."""
    sent = [r.submitted_at for r in records if r.submitted_at is not None]
    got = [r.downloaded_at for r in records if r.downloaded_at is not None]
    return (min(sent), max(got)) if sent and got else None


def new_student(profile: Profile, workflow: dict, name: str, ordinal: int) -> Student:
    """The `ordinal`th student (from 0), as the profile's users reach ComfyUI: through the public address where
    there is one (its Origin, its token), else the backend's; with spread = "direct", a backend of the fleet."""
    url, public = student_address(profile, ordinal)
    pub = profile.public
    client = ComfyClient.from_profile(profile, public=True, origin=pub.origin) if public and pub \
        else backend_client(profile, url)
    balanced = len(fleet_of(profile)) > 1 and profile.classroom.spread == "balancer"
    return Student(name, client, workflow, image=profile.resolve(profile.comfyui.edit_image),
                   timeout_s=profile.classroom.time_limit_s, loads_page=balanced)


def arrivals_in_words(settings: ClassSettings) -> str:
    each = f"{settings.students} students x {settings.prompts_each} prompts"
    if settings.shape == "burst":
        return f"{each}, all submitted at once (burst)"
    if settings.shape == "ramp":
        return f"{each}, arriving over {settings.ramp_s:g} s (ramp)"
    return (f"{settings.prompts} prompts arriving at {settings.rate_per_min:g} a minute (Poisson, seed "
            f"{settings.seed}), each taken by a free one of {settings.students} students (rate)")
