"""A class on a fleet of ComfyUI backends ([class] backends): where each student sends its prompts, which backend
ran each prompt (by that backend's own /history and /queue), and whether each backend still answers at the end.
What the end of the run found is written to fleet.json beside the records, so the judgement reads files alone."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError
from ..config.profile import Profile
from .records import CUT_OFF, LOST, PromptRecord

FLEET_JSON = "fleet.json"
NO_AFFINITY = ("it finished on {url} (its /history), and the student's socket never heard of it: the balancer sent "
               "the submit and the socket to different backends; keep each student on one backend (affinity: IIS "
               "ARR's client affinity, a cookie or hash in nginx)")


@dataclass
class Fleet:
    backends: list[str]
    down: dict[str, str] = field(default_factory=dict)  # backend -> why it did not answer at the end of the run

    @property
    def several(self) -> bool:
        return len(self.backends) > 1

    def write(self, out: Path) -> None:
        (out / FLEET_JSON).write_text(json.dumps({"backends": self.backends, "down": self.down}, indent=1))

    @classmethod
    def read(cls, out: Path) -> Fleet | None:
        try:
            data = json.loads((out / FLEET_JSON).read_text())
            return cls(list(data["backends"]), dict(data.get("down") or {}))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def fleet_of(profile: Profile) -> list[str]:
    return profile.classroom.fleet(profile.comfyui.url)


def backend_client(profile: Profile, url: str) -> ComfyClient:
    """One backend of the fleet, addressed directly, as comfyui.url is (its token, its API prefix)."""
    c = profile.comfyui
    return ComfyClient(url, api_prefix=c.api_prefix, credentials=c.credentials, timeout=c.timeout_s,
                       ca_bundle=profile.ca_bundle)


def student_address(profile: Profile, ordinal: int) -> tuple[str, bool]:
    """Where the `ordinal`th student (from 0) sends its prompts, and whether that is the public address: the
    balancer (the public address, else comfyui.url), or with spread = "direct" the fleet's backends in turn."""
    if profile.classroom.spread == "direct":
        fleet = fleet_of(profile)
        return fleet[ordinal % len(fleet)], False
    return (profile.public.url, True) if profile.public else (profile.comfyui.url, False)


def locate(records: list[PromptRecord], fleet: list[str], clients: dict[str, ComfyClient]) -> None:
    """Each record's served_by: the backend it was sent to directly, else the one whose /history (or, for a prompt
    still queued or running, /queue) holds it. A backend that does not answer holds none."""
    for rec in records:  # a prompt refused before ComfyUI took it is still the backend's it was sent to
        if not rec.served_by and (len(fleet) == 1 or rec.backend in fleet):
            rec.served_by = fleet[0] if len(fleet) == 1 else rec.backend
    unknown = {r.prompt_id: r for r in records if r.prompt_id and not r.served_by}
    for url, client in clients.items():
        if not unknown:
            return
        try:
            for prompt_id in list(unknown):
                entry = client.history(prompt_id).get(prompt_id)
                if entry:
                    rec = unknown.pop(prompt_id)
                    rec.served_by = url
                    if rec.status == LOST and (entry.get("status") or {}).get("completed") is not None:
                        rec.error += f"; {NO_AFFINITY.format(url=url)}"
            if unknown:
                queued = client.queue()
                for entry in queued.get("queue_running", []) + queued.get("queue_pending", []):
                    if len(entry) > 1 and entry[1] in unknown:
                        unknown.pop(entry[1]).served_by = url
        except ComfyError:
            continue


def still_queued(records: list[PromptRecord], clients: dict[str, ComfyClient], stopped_by: str) -> None:
    """A prompt the run gave up on that its backend still has queued or running was not lost: the run stopped
    waiting for it (its time limit). "Lost" stays for what ComfyUI no longer knows."""
    for url, client in clients.items():
        mine = {r.prompt_id: r for r in records if r.status == LOST and r.prompt_id and r.served_by == url}
        if not mine:
            continue
        try:
            queue = client.queue()
        except ComfyError:
            continue  # a backend that does not answer holds nothing the run can tell
        for where, key in (("running", "queue_running"), ("queued", "queue_pending")):
            for entry in queue.get(key, []):
                rec = mine.pop(entry[1], None) if len(entry) > 1 else None
                if rec is not None:
                    rec.status = CUT_OFF
                    rec.error = f"still {where} on {url} when the run stopped ({stopped_by})"


def answering(clients: dict[str, ComfyClient]) -> dict[str, str]:
    """The backends that do not answer /system_stats now, each with why."""
    down = {}
    for url, client in clients.items():
        try:
            client.system_stats()
        except ComfyError as exc:
            down[url] = str(exc)
    return down
