"""One student, as a notebook or the page talks to ComfyUI: one WebSocket held open for the whole lesson, and for
each prompt an upload of its input image (where the workflow loads one), a cache-busted submit under its own
client_id, the wait for its own prompt on its own socket, and the download of the output from /view."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError, RunTimeout, WebSocketLost
from ..comfy.eventstream import EventStream
from ..comfy.run_result import created_ms
from ..comfy.workflows import make_unique
from ..polling import DeadlineExceeded, wait_until
from .records import LOST, PromptRecord


class Student:
    def __init__(self, name: str, client: ComfyClient, workflow: dict, *, image: Path | None, timeout_s: float,
                 loads_page: bool = False):
        self.name = name
        self.loads_page = loads_page  # the page first, as a browser does: a balancer's affinity cookie comes with it
        self.client = client
        self.workflow = workflow
        self.image = image
        self.timeout_s = timeout_s
        self.client_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self._opened = ExitStack()
        self.ws: EventStream | None = None
        self.on_submit: Callable[[PromptRecord], None] | None = None  # told of each prompt as ComfyUI accepts it

    def open(self) -> None:
        """The student's page WebSocket (Origin and token as the profile gives them); ComfyError if refused."""
        if self.loads_page:
            self.client.page()
        self.ws = self._opened.enter_context(self.client.websocket(self.client_id))

    def close(self) -> None:
        self._opened.close()
        self.client.close()

    def prompt(self, seq: int, *, arrived_at: float | None = None) -> PromptRecord:
        """The student's `seq`th prompt; `arrived_at`: when it arrived, in a `rate` run (wall clock)."""
        rec = PromptRecord(self.name, seq, self.client.base_url, self.client_id, status="failed",
                           arrived_at=arrived_at)
        try:
            if self.ws is None:
                self.open()
            assert self.ws is not None
            workflow = self._with_upload(make_unique(self.workflow))

            def submitted(queued: dict) -> None:
                rec.prompt_id, rec.number = queued["prompt_id"], queued.get("number")
                rec.accept_ms = round((time.time() - sent) * 1000, 3)
                rec.submitted_at = sent
                if self.on_submit is not None:
                    self.on_submit(rec)

            sent = time.time()  # run_on's own clock, taken just before its POST, replaces it once the prompt ends
            result = self.client.run_on(self.ws, self.client_id, workflow, timeout=self.timeout_s,
                                        after_submit=submitted, read_history=False)
        except WebSocketLost as exc:
            self.ws = None  # the next prompt opens a new one, as the page reconnects
            self._opened.close()
            rec.ws_dropped = True
            if not rec.prompt_id:  # dropped before the prompt was sent
                rec.error = str(exc)
                return rec
            return self._from_history(rec, str(exc))
        except RunTimeout as exc:
            rec.status, rec.error = LOST, str(exc)
            return rec
        except ComfyError as exc:
            rec.status, rec.error = ("failed" if not rec.prompt_id else LOST), str(exc)
            return rec
        rec.submitted_at = result.submitted_at
        rec.accept_ms = round(result.client_post_ms, 3)
        rec.status = result.status
        rec.error = result.failure_message()
        rec.start_ms = result.server_ms.get("execution_start")
        rec.end_ms = result.server_ms.get(f"execution_{result.status}")
        for m in result.messages:
            if m.type == "execution_start" and rec.start_seen_at is None:
                rec.start_seen_at = result.submitted_at + m.t_ms / 1000
        if result.client_terminal_ms is not None:
            rec.end_seen_at = result.submitted_at + result.client_terminal_ms / 1000
        if result.ok:
            self._download(rec, result.images())
        rec.create_ms = self._create_time(rec.prompt_id)
        return rec

    def _create_time(self, prompt_id: str) -> int | None:
        """ComfyUI's create_time of the prompt, read from /history once the student has its image: a page needs
        no /history to show its result, so the read is kept off the time to result."""
        try:
            entry = self.client.history(prompt_id).get(prompt_id) or {}
        except ComfyError:
            return None  # the queue wait is then not assessed for this prompt, which is no failure of it
        return created_ms(entry)

    def _from_history(self, rec: PromptRecord, dropped: str) -> PromptRecord:
        """The socket dropped under the prompt: follow it in /history, as the page does once it reconnects. A prompt
        in neither /history nor /queue of the address the student reaches, twice running, is gone: the backend
        that held it restarted, or a balancer now sends the student to another one."""
        deadline = rec.submitted_at + self.timeout_s if rec.submitted_at else time.time()
        misses = [0]

        def finished() -> dict | None:
            entry = self.client.history(rec.prompt_id).get(rec.prompt_id) or {}
            if (entry.get("status") or {}).get("completed") is not None:
                return entry
            queued = self.client.queue()
            held = any(len(q) > 1 and q[1] == rec.prompt_id
                       for q in queued.get("queue_running", []) + queued.get("queue_pending", []))
            misses[0] = 0 if held or entry else misses[0] + 1
            return {"gone": True} if misses[0] >= 2 else None

        try:
            found, _ = wait_until(finished, timeout=max(0.0, deadline - time.time()), interval=0.25,
                                  what=f"prompt {rec.prompt_id} in /history after its socket dropped")
        except DeadlineExceeded:
            rec.status, rec.error = LOST, f"{dropped}; and it never reached /history"
            return rec
        if (found or {}).get("gone"):
            rec.status = LOST
            rec.error = (f"{dropped}; and {self.client.base_url} holds it in neither /history nor /queue: the "
                         "backend that had it restarted or went away")
            return rec
        entry: dict = found or {}
        stamps = {m[0]: m[1].get("timestamp") for m in entry["status"].get("messages", []) if len(m) > 1}
        rec.status = str(entry["status"].get("status_str") or "error")
        rec.create_ms = created_ms(entry)
        rec.start_ms, rec.end_ms = stamps.get("execution_start"), stamps.get(f"execution_{rec.status}")
        rec.error = "" if rec.ok else f"prompt {rec.prompt_id} ended {rec.status} (seen in /history)"
        if rec.ok:
            images = [i for out in (entry.get("outputs") or {}).values() for i in out.get("images", [])]
            self._download(rec, images)
        return rec

    def _with_upload(self, workflow: dict) -> dict:
        loaders = [n for n in workflow.values() if n.get("class_type") == "LoadImage"]
        if loaders and self.image is not None:
            uploaded = self.client.upload_image(self.image, f"{self.client_id}.png", overwrite=True)
            for node in loaders:
                node["inputs"]["image"] = uploaded["name"]
        return workflow

    def _download(self, rec: PromptRecord, images: list[dict]) -> None:
        if not images:
            rec.status, rec.error = "error", f"prompt {rec.prompt_id} succeeded without an output image"
            return
        t0 = time.perf_counter()
        try:
            data = self.client.view(**images[0])
        except ComfyError as exc:
            rec.status, rec.error = "error", f"the output of {rec.prompt_id} could not be downloaded: {exc}"
            return
        rec.view_ms = round((time.perf_counter() - t0) * 1000, 3)
        rec.downloaded_at = time.time()
        rec.output_bytes = len(data)

