"""What one user of a shared ComfyUI can do to everyone else, each asked in a way that changes nothing.

ComfyUI has no users: whoever reaches `POST /queue` can clear everyone's queue, `POST /interrupt` without a
prompt id cancels whoever runs. Each operation here is probed harmlessly (a delete of a UUID that does not exist,
`/free` with no flag, an interrupt of a prompt that is not running, a read where a read suffices, a tiny model-free
prompt for the queue position) under both of ComfyUI's spellings (`/queue` and `/api/queue`: a proxy rule that
blocks one and not the other blocks nothing). ComfyUI's own answer says the request got through; anything else
(a 401/403, the proxy's HTML error page) says it was refused.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..config.settings import EXPOSURE_OPERATIONS
from ..polling import DeadlineExceeded, wait_until
from .client import ComfyClient, ComfyError

TINY_PROMPT = {  # model-free, 8x8, nothing saved: a preview lands in ComfyUI's temp folder
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}
PRIORITY_PROBE = -1000.0  # a queue number no honest client sends
PRIORITY_FIELDS = (("number", PRIORITY_PROBE), ("front", True))  # each probed alone: ComfyUI reads number first
INTERRUPT_BY_ID_SINCE = (0, 3, 57)  # older ComfyUI ignores prompt_id: a probe would interrupt whoever runs


@dataclass(frozen=True)
class Probe:
    """One outcome of an operation's probe: reachable (True), refused (False) or absent on this ComfyUI (None),
    with what was answered."""
    reachable: bool | None
    answer: str


def _comfys(resp: httpx.Response, status: int) -> bool:
    """ComfyUI's own answer: the status it gives, and not an HTML error page (nginx's, IIS's)."""
    return resp.status_code == status and "text/html" not in resp.headers.get("content-type", "")


def _absent(resp: httpx.Response) -> bool:
    """The route does not exist on this ComfyUI: its own 404, not a proxy's HTML page."""
    return resp.status_code == 404 and "text/html" not in resp.headers.get("content-type", "")


def _said(resp: httpx.Response) -> str:
    kind = resp.headers.get("content-type", "").split(";")[0] or "no body"
    return f"HTTP {resp.status_code} ({kind})"


def _ask(client: ComfyClient, method: str, path: str, reached: Callable[[httpx.Response], bool],
         **kw) -> Probe:
    """The path under both spellings: reachable when either gets ComfyUI's answer."""
    answers = []
    absent = True
    for spelled in (path, f"/api{path}"):
        resp = client.request(method, spelled, bare=True, expect=(), **kw)
        if reached(resp):
            return Probe(True, f"{method} {spelled}: {_said(resp)}")
        absent = absent and _absent(resp)
        answers.append(f"{method} {spelled}: {_said(resp)}")
    return Probe(None if absent else False, "; ".join(answers))


def _version(client: ComfyClient) -> tuple[int, ...] | None:
    try:
        raw = str(client.system_stats().get("system", {}).get("comfyui_version", ""))
        return tuple(int(p) for p in raw.lstrip("v").split(".")[:3])
    except (ComfyError, ValueError):
        return None


def queue_edit(client: ComfyClient, _direct: ComfyClient) -> Probe:
    return _ask(client, "POST", "/queue", lambda r: _comfys(r, 200), json={"delete": [str(uuid.uuid4())]})


def history_edit(client: ComfyClient, _direct: ComfyClient) -> Probe:
    return _ask(client, "POST", "/history", lambda r: _comfys(r, 200), json={"delete": [str(uuid.uuid4())]})


def interrupt(client: ComfyClient, direct: ComfyClient) -> Probe:
    version = _version(direct)
    if version is None or version < INTERRUPT_BY_ID_SINCE:
        shown = ".".join(map(str, version)) if version else "unknown"
        return Probe(None, f"not probed: ComfyUI {shown} may ignore the prompt id of /interrupt (honoured since "
                           f"{'.'.join(map(str, INTERRUPT_BY_ID_SINCE))}), so a probe could interrupt whoever runs")
    return _ask(client, "POST", "/interrupt", lambda r: _comfys(r, 200), json={"prompt_id": str(uuid.uuid4())})


def free(client: ComfyClient, _direct: ComfyClient) -> Probe:
    return _ask(client, "POST", "/free", lambda r: _comfys(r, 200), json={})


def internal_logs(client: ComfyClient, _direct: ComfyClient) -> Probe:
    resp = client.request("GET", "/internal/logs", bare=True, expect=())
    return Probe(_comfys(resp, 200) or (None if _absent(resp) else False), f"GET /internal/logs: {_said(resp)}")


def userdata_write(client: ComfyClient, _direct: ComfyClient) -> Probe:
    """A delete of a file that does not exist: ComfyUI's empty 404 (an escaping path would be its 403, which reads
    like a proxy's refusal)."""
    name = f"comfycheck-probe-{uuid.uuid4().hex}.json"
    return _ask(client, "DELETE", f"/userdata/{name}", lambda r: _comfys(r, 404) and not r.content)


def jobs_cancel(client: ComfyClient, _direct: ComfyClient) -> Probe:
    job = str(uuid.uuid4())
    return _ask(client, "POST", f"/api/jobs/{job}/cancel",  # ComfyUI: /api/jobs and /api/api/jobs
                lambda r: _comfys(r, 200) and "cancelled" in r.text)


def manager(client: ComfyClient, _direct: ComfyClient) -> Probe:
    """ComfyUI-Manager installs nodes and restarts the server on GET requests: its version read stands for all."""
    return _ask(client, "GET", "/manager/version", lambda r: _comfys(r, 200))


def history_listing(client: ComfyClient, _direct: ComfyClient) -> Probe:
    return _ask(client, "GET", "/history", lambda r: _comfys(r, 200) and r.text.lstrip().startswith("{"),
                params={"max_items": 1})


def priority(client: ComfyClient, direct: ComfyClient) -> Probe:
    """Each of /prompt's queue-position fields alone, as ComfyUI reads them: `number` (-1000) wins over `front`, so
    a proxy that drops one and keeps the other is only seen by asking each on its own. Each asks with a tiny
    prompt; ComfyUI's answer echoes the number it queued it with (front: the next number, negated). The probes'
    own history entries are removed again on the backend (they are this check's, nobody else's)."""
    honoured, said = [], []
    for field, value in PRIORITY_FIELDS:
        asked = f"POST /prompt with {field} {json.dumps(value)} alone"
        try:
            answer = client.submit(TINY_PROMPT, extra={field: value})
        except ComfyError as exc:
            said.append(f"{asked}: {str(exc)[:160]}")
            continue
        prompt_id, number = answer.get("prompt_id"), answer.get("number")
        if prompt_id:
            _forget(direct, str(prompt_id))
        queued = isinstance(number, (int, float))
        if isinstance(number, (int, float)) and (number == PRIORITY_PROBE if field == "number" else number < 0):
            honoured.append(field)
            said.append(f"{asked}: honoured, queued at {number:g}")
        else:
            said.append(f"{asked}: {'ignored, queued at ' + format(number, 'g') if queued else 'not queued'}")
    if honoured:
        return Probe(True, f"{' and '.join(honoured)} honoured: " + "; ".join(said))
    return Probe(False, "; ".join(said))


def _forget(direct: ComfyClient, prompt_id: str) -> None:
    """Once the probe's prompt has run (a few ms), its history entry goes: a delete of its own id alone."""
    try:
        wait_until(lambda: prompt_id in direct.history(prompt_id), timeout=30, interval=0.05,
                   what=f"the probe prompt {prompt_id} to finish")
    except DeadlineExceeded:
        direct.request("POST", "/queue", json={"delete": [prompt_id]}, expect=())  # still pending: dequeue it
    direct.request("POST", "/history", json={"delete": [prompt_id]}, expect=())


@dataclass(frozen=True)
class Operation:
    key: str
    label: str
    probe: Callable[[ComfyClient, ComfyClient], Probe]
    nginx: str  # the rule that refuses it
    iis: str


INTERNAL_LOGS = "/internal/logs"  # the one internal route to refuse (with /internal/logs/raw, .../subscribe)
INTERNAL_LOGS_NGINX = f"location ^~ {INTERNAL_LOGS} {{ return 403; }}"

OPERATIONS = [
    Operation("queue_edit", "clear or delete the queue (POST /queue)", queue_edit,
              "location ~ ^/(api/)?queue$ { limit_except GET { deny all; } ... }",
              "URL Rewrite: {REQUEST_METHOD} POST and URL ^(api/)?queue$ -> Abort / 403"),
    Operation("history_edit", "clear or delete the history (POST /history)", history_edit,
              "location ~ ^/(api/)?history$ { limit_except GET { deny all; } ... }",
              "URL Rewrite: {REQUEST_METHOD} POST and URL ^(api/)?history$ -> 403"),
    Operation("interrupt", "interrupt whoever runs (POST /interrupt)", interrupt,
              "location ~ ^/(api/)?interrupt$ { return 403; }",
              "Request Filtering: deny URL sequence /interrupt"),
    Operation("free", "unload the models for everyone (POST /free)", free,
              "location ~ ^/(api/)?free$ { return 403; }", "Request Filtering: deny URL sequence /free"),
    # the log only: the page itself reads /internal/folder_paths (its model library) on every visit after the first
    Operation("internal_logs", "read the server log (GET /internal/logs)", internal_logs,
              INTERNAL_LOGS_NGINX, "Request Filtering: deny URL sequence /internal/logs"),
    Operation("userdata_write", "write or delete files on the server (/userdata)", userdata_write,
              "location ~ ^/(api/)?userdata/ { limit_except GET { deny all; } ... }",
              "URL Rewrite: {REQUEST_METHOD} not GET and URL ^(api/)?userdata/ -> 403"),
    Operation("jobs_cancel", "cancel other users' jobs (POST /api/jobs/.../cancel)", jobs_cancel,
              "location ~ ^/(api/)?(api/)?jobs/.*cancel$ { return 403; }",
              "URL Rewrite: URL ^(api/)+jobs/.*cancel$ -> 403"),
    Operation("manager", "ComfyUI-Manager: install nodes, restart the server (/manager)", manager,
              "location ~ ^/(api/)?(manager|customnode|snapshot|externalmodel)/ { return 403; }",
              "Request Filtering: deny URL sequences /manager/, /customnode/, /snapshot/"),
    Operation("history_listing", "list other users' prompts (GET /history)", history_listing,
              "location ~ ^/(api/)?history$ { return 403; }  # /history/<id> stays open",
              "URL Rewrite: URL ^(api/)?history$ -> 403 (not ^(api/)?history/)"),
    Operation("priority", "jump the queue (number / front on POST /prompt)", priority,
              "needs the body: njs or ModSecurity rule on \"number\"/\"front\" in POST /prompt",
              "needs the body: ModSecurity for IIS, or a gateway that drops number/front"),
]
assert tuple(op.key for op in OPERATIONS) == EXPOSURE_OPERATIONS, "one list of operations, in one order"


@dataclass(frozen=True)
class PageRoute:
    """Requests ComfyUI's own page makes that an operation's refusal also refuses, and what the page loses then."""
    operation: str
    paths: tuple[str, ...]  # path prefixes, both spellings; one ending in $ is that path exactly, any query
    loses: str
    methods: tuple[str, ...] = ()  # () every method

    def covers(self, method: str, path: str) -> bool:
        bare = path.split("?", 1)[0]
        return (not self.methods or method in self.methods) and any(
            bare == p[:-1] if p.endswith("$") else path.startswith(p) for p in self.paths)


# what a student's page loses on a deployment whose proxy refuses these operations, as the profile requires
PAGE_ROUTES = (
    PageRoute("internal_logs", (INTERNAL_LOGS,), "the server log panel"),
    PageRoute("history_listing", ("/history$", "/api/history$"), "the queue panel's list of earlier prompts",
              ("GET",)),
    PageRoute("queue_edit", ("/queue", "/api/queue"), "the queue panel's clear and delete buttons", ("POST",)),
    PageRoute("interrupt", ("/interrupt", "/api/interrupt"), "its Cancel button"),
    PageRoute("free", ("/free", "/api/free"), "its button that frees the GPU's memory"),
    PageRoute("userdata_write", ("/userdata/", "/api/userdata/"), "saving workflows and settings files on the server",
              ("POST", "PUT", "DELETE")),
    PageRoute("manager", tuple(f"{s}/{m}/" for s in ("", "/api") for m in ("manager", "customnode", "snapshot")),
              "ComfyUI-Manager's menu"),
)
