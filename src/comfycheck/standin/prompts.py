"""The prompt queue: validation, the worker that executes prompts node by node, the WebSocket events it
sends, history and /api/jobs, as ComfyUI 0.33.0 does them."""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from aiohttp import WSMsgType, web

from ..config.units import MB, MiB
from . import DATA, nodes
from .nodes import Context, Interrupted, NodeFailure
from .protocol import canonical_uuid, now_ms
from .state import State
from .validation import validate_prompt


class PromptQueue(State):
    """The StandIn's queue and executor (a mixin: the StandIn holds the state)."""

    def queue_remaining(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    # --- WebSocket --------------------------------------------------------------------------------
    async def send(self, type_: str, data: dict, sid: str | None = None) -> None:
        message = json.dumps({"type": type_, "data": data})
        targets = [self.sockets.get(sid)] if sid else list(self.sockets.values())
        for ws in targets:
            if ws is not None and not ws.closed:
                try:
                    await ws.send_str(message)
                except ConnectionError:
                    pass

    async def send_status(self) -> None:
        await self.send("status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}})

    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws
        try:
            await ws.send_str(json.dumps({"type": "status", "data": {
                "status": {"exec_info": {"queue_remaining": self.queue_remaining()}}, "sid": sid}}))
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if first and data.get("type") == "feature_flags":
                    await ws.send_str(json.dumps({"type": "feature_flags", "data": self.features_data()}))
                first = False
        finally:
            if self.sockets.get(sid) is ws:
                del self.sockets[sid]
        return ws

    def features_data(self) -> dict:
        features = json.loads((DATA / "features.json").read_text())
        features["max_upload_size"] = self.max_upload_mib * MiB  # ComfyUI's own arithmetic, float or int
        return features

    # --- the prompt queue -------------------------------------------------------------------------
    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "number" in body:
            number = float(body["number"])
        else:
            number = self.counter
            if body.get("front"):
                number = -number
        self.counter += 1
        if "prompt" not in body:
            err = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                   "extra_info": {}}
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt_id = body.get("prompt_id")
        if prompt_id is not None and not canonical_uuid(prompt_id):
            err = {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                   "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to "
                              "let the server generate one", "extra_info": {}}
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        checks = {"LoadImage": nodes.LoadImageCheck(self.dirs["input"])}
        used = {str(n.get("class_type")) for n in prompt.values() if isinstance(n, dict)} if isinstance(prompt, dict) \
            else set()
        ok, error, outputs, node_errors = validate_prompt(prompt, self.defs(only=used), checks)
        if not ok:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        prompt_id = prompt_id or str(uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = now_ms()
        if self.faults["drop_prompts"] > 0:  # accepted, then lost: never run, never answered, never in /history
            self.faults["drop_prompts"] -= 1
            return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})
        self.pending.append((number, prompt_id, prompt, extra, outputs))
        self.pending.sort(key=lambda item: item[0])
        await self.send_status()
        self.wakeup.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def worker(self) -> None:
        while True:
            while not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
            self.running = self.pending.pop(-1 if self.faults["serves_lifo"] else 0)
            self.interrupt_flag = False
            await self.send_status()
            try:
                await self.execute(*self.running)
            finally:
                self.running = None

    async def execute(self, number, prompt_id, prompt, extra, outputs) -> None:
        sid = extra.get("client_id")
        messages: list = []

        async def event(type_: str, data: dict) -> None:
            messages.append([type_, data])
            if sid:
                await self.send(type_, data, sid)

        await event("execution_start", {"prompt_id": prompt_id, "timestamp": now_ms()})
        order = _execution_order(prompt, outputs)
        sigs = {n: _signature(prompt, n, self.dirs["input"]) for n in order}
        cached = [n for n in order if sigs[n] in self.cache]
        await event("execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": now_ms()})

        progress: dict[str, dict] = {}

        async def progress_state(node: str, value, max_, state: str) -> None:
            progress[node] = {"value": value, "max": max_, "state": state, "node_id": node,
                              "prompt_id": prompt_id, "display_node_id": node, "parent_node_id": None,
                              "real_node_id": node}
            await self.send("progress_state", {"prompt_id": prompt_id, "nodes": json.loads(json.dumps(progress))},
                            sid)

        values: dict[str, tuple] = {}
        ui_outputs: dict[str, dict] = {}
        executed: list[str] = []
        slow = float(self.faults["slow_generation_s"])
        current = None
        status = "success"
        try:
            for node_id in order:
                current = node_id
                if self.interrupt_flag:
                    raise Interrupted()
                class_type = prompt[node_id]["class_type"]
                if node_id in cached:
                    values[node_id], ui = self.cache[sigs[node_id]]
                    if ui is not None:
                        ui_outputs[node_id] = ui
                        await event("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                 "prompt_id": prompt_id})
                        await progress_state(node_id, 1, 1, "finished")
                    continue
                await progress_state(node_id, 0.0, 1.0, "running")
                await event("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})

                async def step_progress(value: int, max_: int, node=node_id) -> None:
                    await event("progress", {"value": value, "max": max_, "prompt_id": prompt_id, "node": node})
                    await progress_state(node, float(value), float(max_), "running")

                ctx = Context(self.dirs["input"], self.dirs["output"], self.dirs["temp"], self.vram, self.faults,
                              self.faults["model_step_s"] or self.model_step_s, prompt,
                              (extra.get("extra_pnginfo")), step_progress,
                              lambda: self.interrupt_flag)
                if self.faults["generation_fails"]:
                    raise NodeFailure("torch.OutOfMemoryError", "Allocation on device ")
                if slow:
                    await ctx.pause(slow)
                    slow = 0.0
                kwargs = _resolve_inputs(prompt[node_id]["inputs"], values)
                result = await nodes.EXECUTORS[class_type](ctx, **kwargs)
                ui = None
                if len(result) == 2 and isinstance(result[1], dict) and isinstance(result[0], tuple):
                    result, ui = result
                values[node_id] = result
                self.cache[sigs[node_id]] = (result, ui)
                executed.append(node_id)
                if ui is not None:
                    ui_outputs[node_id] = ui
                    await event("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                             "prompt_id": prompt_id})
                await progress_state(node_id, 1.0, 1.0, "finished")
            await event("execution_success", {"prompt_id": prompt_id, "timestamp": now_ms()})
        except Interrupted:
            status = "error"
            await event("execution_interrupted", {
                "prompt_id": prompt_id, "node_id": current, "node_type": prompt[current]["class_type"],
                "executed": list(reversed(executed)), "timestamp": now_ms()})
        except Exception as exc:  # noqa: BLE001 - any node failure is an execution_error, as in ComfyUI
            status = "error"
            exception_type = exc.exception_type if isinstance(exc, NodeFailure) else type(exc).__name__
            current_inputs = {k: [v] for k, v in prompt[current]["inputs"].items() if not isinstance(v, list)}
            await event("execution_error", {
                "prompt_id": prompt_id, "node_id": current, "node_type": prompt[current]["class_type"],
                "executed": list(reversed(executed)), "exception_message": str(exc),
                "exception_type": exception_type,
                "traceback": [f'  File "{__file__}", line 1, in execute\n'],
                "current_inputs": current_inputs,
                "current_outputs": list(outputs) + [n for n in order if n not in outputs],
                "timestamp": now_ms()})
        # Like ComfyUI's classic cache: keep only what the latest prompt used.
        keep = {sigs[n] for n in order}
        self.cache = {k: v for k, v in self.cache.items() if k in keep}
        ok = status == "success"
        self.history[prompt_id] = {
            "prompt": [number, prompt_id, prompt, extra, outputs],
            "outputs": ui_outputs if ok else {},
            "status": {"status_str": status, "completed": ok, "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                     for n in ui_outputs} if ok else {},
        }
        self.history.move_to_end(prompt_id)
        if self.faults["ram_leak_mb"]:
            self.leaked.append(bytearray(b"\xa5") * int(self.faults["ram_leak_mb"] * MB))
        self.running = None
        await self.send_status()
        if sid:
            await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)

    def jobs(self, request: web.Request) -> web.Response:
        everything = [self._job_summary(pid) for pid in reversed(self.history)]
        if self.running:
            everything.insert(0, self._queued_summary(self.running, "in_progress"))
        everything = [self._queued_summary(i, "pending") for i in reversed(self.pending)] + everything
        offset = int(request.query.get("offset", 0))
        limit = request.query.get("limit")
        page = everything[offset:offset + int(limit)] if limit else everything[offset:]
        return web.json_response({"jobs": page, "pagination": {
            "offset": offset, "limit": int(limit) if limit else None, "total": len(everything),
            "has_more": offset + len(page) < len(everything)}})

    def job(self, job_id: str) -> dict | None:
        if job_id in self.history:
            h = self.history[job_id]
            out = self._job_summary(job_id)
            errors = [m[1] for m in h["status"]["messages"] if m[0] == "execution_error"]
            if errors:
                out["execution_error"] = errors[0]
            out.update(outputs=h["outputs"], execution_status=h["status"],
                       workflow={"prompt": h["prompt"][2], "extra_data": h["prompt"][3]})
            return out
        if self.running and self.running[1] == job_id:
            return self._queued_summary(self.running, "in_progress")
        for item in self.pending:
            if item[1] == job_id:
                return self._queued_summary(item, "pending")
        return None

    @staticmethod
    def _queued_summary(item: tuple, status: str) -> dict:
        return {"id": item[1], "status": status, "priority": item[0], "create_time": item[3]["create_time"],
                "outputs_count": 0, "previewable_outputs_count": 0}

    def _job_summary(self, pid: str) -> dict:
        h = self.history[pid]
        msgs = dict((m[0], m[1]) for m in h["status"]["messages"])
        status = ("completed" if h["status"]["status_str"] == "success" else
                  "cancelled" if "execution_interrupted" in msgs else "failed")
        end = next((msgs[k]["timestamp"] for k in ("execution_success", "execution_error", "execution_interrupted")
                    if k in msgs), None)
        images = [(node, im) for node, out in h["outputs"].items() for im in out.get("images", [])]
        summary = {"id": pid, "status": status, "priority": h["prompt"][0],
                   "create_time": h["prompt"][3]["create_time"],
                   "execution_start_time": msgs.get("execution_start", {}).get("timestamp"),
                   "execution_end_time": end, "outputs_count": len(images),
                   "previewable_outputs_count": len(images)}
        if images:
            node, im = images[0]
            summary["preview_output"] = {**im, "nodeId": node, "mediaType": "images"}
        return summary


def _execution_order(prompt: dict, outputs: list[str]) -> list[str]:
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2:
                visit(str(value[0]))
        order.append(node_id)

    for out in sorted(outputs, key=lambda n: (len(n), n)):
        visit(out)
    return order


def _signature(prompt: dict, node_id: str, input_dir: Path, memo: dict | None = None) -> str:
    memo = {} if memo is None else memo
    if node_id in memo:
        return memo[node_id]
    node = prompt[node_id]
    parts = {}
    for name, value in sorted(node.get("inputs", {}).items()):
        if isinstance(value, list) and len(value) == 2:
            parts[name] = ["link", _signature(prompt, str(value[0]), input_dir, memo), value[1]]
        else:
            parts[name] = value
    raw = json.dumps([node["class_type"], parts, nodes.signature_extra(node["class_type"], node["inputs"], input_dir)],
                     sort_keys=True, default=str)
    memo[node_id] = hashlib.sha256(raw.encode()).hexdigest()
    return memo[node_id]


def _resolve_inputs(inputs: dict, values: dict[str, tuple]) -> dict:
    out = {}
    for name, value in inputs.items():
        if isinstance(value, list) and len(value) == 2:
            out[name] = values[str(value[0])][value[1]]
        else:
            out[name] = value
    return out
