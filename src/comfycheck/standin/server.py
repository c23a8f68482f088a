"""The stand-in ComfyUI: an aiohttp app held to the real server's recordings (shared/reference/comfyui).

Routes, status codes, JSON shapes, WebSocket message order, caching and validation follow ComfyUI 0.33.0;
the real web frontend is served from the comfyui-frontend-package wheel. A second, separate loopback
port carries the fault switches, so the ComfyUI route table stays the real one.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import ipaddress
import json
import mimetypes
import os
import platform
import socket
import sys
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit

import psutil
from aiohttp import WSMsgType, web
from PIL import Image

from . import nodes
from .nodes import Context, Interrupted, NodeFailure, Vram
from .validation import validate_prompt

DATA = Path(__file__).with_name("data")
MAX_UPLOAD = 100 * 1024 * 1024
FAULTS = {
    "missing_node": "",  # a node class name the server no longer offers (custom node not loaded)
    "missing_model": "",  # a model file name the loaders no longer list
    "generation_fails": False,  # every prompt fails with CUDA out-of-memory at its first executed node
    "slow_generation_s": 0.0,  # extra seconds of work in every prompt
    "vram_not_released": False,  # /free releases nothing and sampling leaks VRAM
    "asset_404": "",  # frontend files whose path ends with this answer 404 (a broken deploy of the frontend)
    "console_error": "",  # the page logs this with console.error as it loads (a broken extension)
    "user_css": "",  # /user.css serves this stylesheet (the page looks different from its baseline)
    "cpu_only": False,  # /system_stats lists only the cpu device, as ComfyUI started with --cpu does
}


def now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=64)
def _is_loopback(host: str | None) -> bool:
    """As ComfyUI's server.is_loopback: an IP literal, else every address the name resolves to."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loopback = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            for *_, sockaddr in socket.getaddrinfo(host, None, family, socket.SOCK_STREAM):
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    return loopback
                loopback = True
        except socket.gaierror:
            pass
    return loopback


@web.middleware
async def origin_check(request: web.Request, handler):
    """ComfyUI's guard against cross-site POSTs to a local server: 403 when Host and Origin differ."""
    host = request.headers.get("Host")
    origin = request.headers.get("Origin")
    if host and origin:
        host_domain = host.lower()
        parsed = urlparse(origin)
        origin_domain = parsed.netloc.lower()
        host_parsed = urlsplit("//" + host_domain)
        loopback = _is_loopback(host_parsed.hostname)
        if parsed.port is None:
            host_domain = host_parsed.hostname
        if host_parsed.port is None:
            origin_domain = parsed.hostname
        if loopback and host_domain and origin_domain and host_domain != origin_domain:
            return web.Response(status=403)
    if request.headers.get("Sec-Fetch-Site") == "cross-site" and _is_loopback(urlsplit("//" + (host or "")).hostname):
        return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


@web.middleware
async def cache_control(request: web.Request, handler):
    response = await handler(request)
    if request.path.endswith((".js", ".css")) or response.status == 404:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class StandIn:
    def __init__(self, data_dir: Path, *, host: str, port: int, model_step_s: float, vram_total_gb: float,
                 vram_idle_gb: float, faults: dict | None = None):
        import comfyui_frontend_package

        self.web_root = Path(comfyui_frontend_package.__file__).with_name("static")
        self.frontend_version = getattr(comfyui_frontend_package, "__version__", "unknown")
        self.host, self.port = host, port
        self.dirs = {k: data_dir / k for k in ("input", "output", "temp", "models", "user")}
        nodes.ensure_dirs(*self.dirs.values(), self.dirs["user"] / "default" / "workflows")
        self.defs_all = nodes.load_definitions()
        self.model_step_s = model_step_s
        self.vram = Vram(total=int(vram_total_gb * nodes.GB), idle=int(vram_idle_gb * nodes.GB))
        self.faults = dict(FAULTS)
        self.faults.update(faults or {})
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.pending: list[tuple] = []
        self.running: tuple | None = None
        self.history: OrderedDict[str, dict] = OrderedDict()
        self.counter = 0
        self.cache: dict[str, tuple] = {}
        self.interrupt_flag = False
        self.wakeup = asyncio.Event()

    # --- what the server offers, after faults ---------------------------------------------------
    def defs(self) -> dict[str, dict]:
        hidden = self.faults["missing_node"]
        out = {}
        for name, d in self.defs_all.items():
            if name == hidden:
                continue
            d = json.loads(json.dumps(d))
            if name in nodes.MODEL_FOLDERS:
                input_name, folder = nodes.MODEL_FOLDERS[name]
                d["input"]["required"][input_name][0] = self.model_files(folder)
            if name == "LoadImage":
                d["input"]["required"]["image"][0] = nodes.input_files(self.dirs["input"])
            out[name] = d
        return out

    def model_files(self, folder: str) -> list[str]:
        hidden = self.faults["missing_model"]
        return [m for m in nodes.model_names(self.dirs["models"], folder) if m != hidden]

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
        return json.loads((DATA / "features.json").read_text())

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
        if prompt_id is not None and not _canonical_uuid(prompt_id):
            err = {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                   "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to "
                              "let the server generate one", "extra_info": {}}
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        checks = {"LoadImage": nodes.LoadImageCheck(self.dirs["input"])}
        ok, error, outputs, node_errors = validate_prompt(prompt, self.defs(), checks)
        if not ok:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        prompt_id = prompt_id or str(uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = now_ms()
        number = int(number) if float(number).is_integer() else number
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
            self.running = self.pending.pop(0)
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
                              self.model_step_s, prompt, (extra.get("extra_pnginfo")), step_progress,
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
        self.running = None
        await self.send_status()
        if sid:
            await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)

    # --- routes -----------------------------------------------------------------------------------
    def routes(self) -> web.RouteTableDef:
        r = web.RouteTableDef()
        j = web.json_response

        @r.get("/ws")
        async def ws(request):
            return await self.ws_handler(request)

        @r.get("/embeddings")
        async def embeddings(request):
            return j([])

        @r.get("/models")
        async def models(request):
            return j(json.loads((DATA / "models.json").read_text()))

        @r.get("/models/{folder}")
        async def models_folder(request):
            folder = request.match_info["folder"]
            if folder not in json.loads((DATA / "models.json").read_text()):
                return web.Response(status=404)
            return j(self.model_files(folder))

        @r.get("/extensions")
        async def extensions(request):
            files = sorted((self.web_root / "extensions").rglob("*.js"))
            return j(["/" + str(p.relative_to(self.web_root)) for p in files])

        @r.post("/upload/image")
        async def upload_image(request):
            return await self.upload(request)

        @r.post("/upload/mask")
        async def upload_mask(request):
            return await self.upload(request)

        @r.get("/view")
        async def view(request):
            return await self.view(request)

        @r.get("/system_stats")
        async def system_stats(request):
            return j(self.system_stats())

        @r.get("/features")
        async def features(request):
            return j(self.features_data())

        @r.get("/prompt")
        async def get_prompt(request):
            return j({"exec_info": {"queue_remaining": self.queue_remaining()}})

        @r.post("/prompt")
        async def post_prompt(request):
            return await self.post_prompt(request)

        @r.get("/object_info")
        async def object_info(request):
            return j(self.defs())

        @r.get("/object_info/{node_class}")
        async def object_info_node(request):
            name = request.match_info["node_class"]
            defs = self.defs()
            return j({name: defs[name]} if name in defs else {})

        @r.get("/history")
        async def history(request):
            items = list(self.history.items())
            max_items = request.query.get("max_items")
            if max_items:
                items = items[-int(max_items):]
            return j(dict(items))

        @r.get("/history/{prompt_id}")
        async def history_one(request):
            pid = request.match_info["prompt_id"]
            return j({pid: self.history[pid]} if pid in self.history else {})

        @r.post("/history")
        async def post_history(request):
            body = await request.json()
            if body.get("clear"):
                self.history.clear()
            for pid in body.get("delete", []):
                self.history.pop(pid, None)
            return web.Response(status=200)

        @r.get("/queue")
        async def get_queue(request):
            running = [list(self.running)] if self.running else []
            return j({"queue_running": running, "queue_pending": [list(i) for i in self.pending]})

        @r.post("/queue")
        async def post_queue(request):
            body = await request.json()
            if body.get("clear"):
                self.pending.clear()
            if "delete" in body:
                self.pending = [i for i in self.pending if i[1] not in body["delete"]]
            await self.send_status()
            return web.Response(status=200)

        @r.post("/interrupt")
        async def interrupt(request):
            try:
                body = await request.json()
            except ValueError:
                body = {}
            wanted = body.get("prompt_id") if isinstance(body, dict) else None
            if wanted is None or (self.running and self.running[1] == wanted):
                self.interrupt_flag = bool(self.running)
            return web.Response(status=200)

        @r.post("/free")
        async def free(request):
            body = await request.json()
            if body.get("unload_models") or body.get("free_memory"):
                self.vram.free_models(release=not self.faults["vram_not_released"])
            return web.Response(status=200)

        @r.get("/api/jobs")
        async def jobs(request):
            return self.jobs(request)

        @r.get("/api/jobs/{job_id}")
        async def job(request):
            found = self.job(request.match_info["job_id"])
            return j(found) if found else j({"error": "Job not found"}, status=404)

        @r.get("/settings")
        async def settings(request):
            return j(self.settings())

        @r.get("/settings/{id}")
        async def setting(request):
            return j(self.settings().get(request.match_info["id"]))

        @r.post("/settings")
        async def post_settings(request):
            s = self.settings()
            s.update(await request.json())
            self.save_settings(s)
            return web.Response(status=200)

        @r.post("/settings/{id}")
        async def post_setting(request):
            s = self.settings()
            s[request.match_info["id"]] = await request.json()
            self.save_settings(s)
            return web.Response(status=200)

        @r.get("/users")
        async def users(request):
            return j({"storage": "server", "migrated": True})

        @r.get("/userdata")
        async def userdata(request):
            base = self.user_dir() / request.query.get("dir", "")
            if not base.is_dir():
                return web.Response(status=404)
            pattern = "**/*" if request.query.get("recurse") == "true" else "*"
            return j(sorted(str(p.relative_to(base)) for p in base.glob(pattern) if p.is_file()))

        @r.get("/v2/userdata")
        async def userdata_v2(request):
            base = self.user_dir() / request.query.get("path", "")
            if not base.is_dir():
                return web.Response(status=404)
            return j([{"name": p.name, "path": str(p.relative_to(self.user_dir())),
                       "type": "directory" if p.is_dir() else "file",
                       **({"size": p.stat().st_size, "modified": p.stat().st_mtime} if p.is_file() else {})}
                      for p in sorted(base.iterdir())])

        @r.get("/userdata/{file}")
        async def userdata_get(request):
            p = self.user_file(request.match_info["file"])
            return web.FileResponse(p) if p and p.is_file() else web.Response(status=404)

        @r.post("/userdata/{file}")
        async def userdata_post(request):
            p = self.user_file(request.match_info["file"])
            if p is None:
                return web.Response(status=400)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(await request.read())
            return j({"path": str(p.relative_to(self.user_dir())), "size": p.stat().st_size,
                      "modified": p.stat().st_mtime})

        @r.delete("/userdata/{file}")
        async def userdata_delete(request):
            p = self.user_file(request.match_info["file"])
            if not p or not p.is_file():
                return web.Response(status=404)
            p.unlink()
            return web.Response(status=204)

        for path, value in (("/i18n", {}), ("/workflow_templates", {}), ("/global_subgraphs", {}),
                            ("/node_replacements", {})):
            r.get(path)(_constant(value))

        @r.get("/experiment/models")
        async def experiment_models(request):
            return j([{"name": f, "folders": [str(self.dirs["models"] / f)]}
                      for f in json.loads((DATA / "models.json").read_text())])

        @r.get("/internal/folder_paths")
        async def folder_paths(request):
            return j({f: [[str(self.dirs["models"] / f)], []] for f in json.loads((DATA / "models.json").read_text())})

        @r.get("/internal/logs")
        async def logs(request):
            return j("")

        return r

    def settings(self) -> dict:
        p = self.user_dir() / "comfy.settings.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def save_settings(self, s: dict) -> None:
        (self.user_dir() / "comfy.settings.json").write_text(json.dumps(s, indent=4))

    def user_dir(self) -> Path:
        return self.dirs["user"] / "default"

    def user_file(self, name: str) -> Path | None:
        p = (self.user_dir() / name).resolve()
        return p if str(p).startswith(str(self.user_dir().resolve())) else None

    def system_stats(self) -> dict:
        stats = json.loads((DATA / "system_stats.json").read_text())
        mem = psutil.virtual_memory()
        s = stats["system"]
        s.update(ram_total=mem.total, ram_free=mem.available,
                 python_version=sys.version, argv=["main.py", "--listen", self.host, "--port", str(self.port)])
        s["required_frontend_version"] = self.frontend_version
        if self.faults["cpu_only"]:  # as recorded from a real --cpu server: RAM reported as the device's memory
            stats["devices"] = [{"name": "cpu", "type": "cpu", "index": None, "vram_total": mem.total,
                                 "vram_free": mem.available, "torch_vram_total": mem.total,
                                 "torch_vram_free": mem.available}]
            s["argv"].append("--cpu")
            return stats
        used = self.vram.used
        torch_total = max(0, used - self.vram.idle)
        stats["devices"] = [{
            "name": "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync (comfycheck stand-in, simulated)",
            "type": "cuda", "index": 0,
            "vram_total": self.vram.total, "vram_free": self.vram.total - used,
            "torch_vram_total": torch_total, "torch_vram_free": torch_total - sum(self.vram.loaded.values())
            - self.vram.working - self.vram.leaked if torch_total else 0,
        }]
        return stats

    async def upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if image is None or not hasattr(image, "file"):
            return web.Response(status=400)
        kind = post.get("type") or "input"
        root = self.dirs.get(kind if kind in ("input", "temp", "output") else "input").resolve()
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = post.get("subfolder", "")
        folder = root / os.path.normpath(subfolder) if subfolder else root
        target = (folder / filename).resolve()
        if os.path.commonpath((root, target)) != str(root):
            return web.Response(status=400)
        folder.mkdir(parents=True, exist_ok=True)
        content = image.file.read()
        if post.get("overwrite") not in ("true", "1"):
            stem, suffix = os.path.splitext(filename)
            i = 1
            while target.exists():
                if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(content).digest():
                    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})
                filename = f"{stem} ({i}){suffix}"
                target = folder / filename
                i += 1
        target.write_bytes(content)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    async def view(self, request: web.Request) -> web.StreamResponse:
        q = request.rel_url.query
        if "filename" not in q:
            return web.Response(status=404)
        filename = q["filename"]
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        kind = q.get("type", "output")
        if kind not in ("input", "output", "temp"):
            return web.Response(status=400)
        out_dir = str(self.dirs[kind].resolve())
        if "subfolder" in q:
            full = os.path.join(out_dir, q["subfolder"])
            if os.path.commonpath((os.path.abspath(full), out_dir)) != out_dir:
                return web.Response(status=403)
            out_dir = full
        filename = os.path.basename(filename)
        path = os.path.join(out_dir, filename)
        if not os.path.isfile(path):
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in q:
            fmt, _, quality = q["preview"].partition(";")
            fmt = fmt if fmt in ("webp", "jpeg") else "webp"
            buf = io.BytesIO()
            with Image.open(path) as im:
                (im if fmt == "webp" else im.convert("RGB")).save(buf, format=fmt, quality=int(quality or 90))
            return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
        channel = q.get("channel", "rgba")
        if channel in ("rgb", "a"):
            buf = io.BytesIO()
            with Image.open(path) as im:
                if channel == "rgb":
                    out = im.convert("RGB")
                else:
                    alpha = im.getchannel("A") if "A" in im.getbands() else Image.new("L", im.size, 255)
                    out = Image.new("RGBA", im.size, (0, 0, 0, 0))
                    out.putalpha(alpha)
                out.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript",
                            "text/css"}:
            content_type = "application/octet-stream"
        return web.FileResponse(path, headers={**disposition, "Content-Type": content_type,
                                               "X-Content-Type-Options": "nosniff"})

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

    # --- the app ------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[cache_control, origin_check])
        routes = self.routes()
        api = web.RouteTableDef()
        for route in routes:
            api.route(route.method, "/api" + route.path)(route.handler)
        # ComfyUI registers /api/jobs bare too and prefixes everything with /api, hence /api/api/jobs.

        async def index(request):
            headers = {"Cache-Control": "no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}
            if not self.faults.get("console_error"):
                return web.FileResponse(self.web_root / "index.html", headers=headers)
            script = f"<script>console.error({json.dumps(self.faults['console_error'])})</script>"
            page = (self.web_root / "index.html").read_text().replace("</head>", script + "</head>", 1)
            return web.Response(text=page, content_type="text/html", headers=headers)

        @web.middleware
        async def frontend_faults(request: web.Request, handler):
            broken = self.faults.get("asset_404")
            if broken and request.path.endswith(broken):
                return web.Response(status=404)
            if request.path == "/user.css" and self.faults.get("user_css"):
                return web.Response(text=self.faults["user_css"], content_type="text/css")
            return await handler(request)

        app.middlewares.append(frontend_faults)

        async def templates(request):
            # Real ComfyUI serves these from the comfyui-workflow-templates package; the stand-in has none,
            # so its index is empty (the frontend then shows "No templates found", as in the recordings).
            found = {"index.json": [], "index_logo.json": {}}.get(request.match_info["path"])
            return web.Response(status=404) if found is None else web.json_response(found)

        app.router.add_get("/", index)
        app.router.add_get("/templates/{path}", templates)
        app.add_routes(api)
        app.add_routes(routes)
        app.router.add_static("/", self.web_root)
        app.on_startup.append(self._start_worker)
        return app

    async def _start_worker(self, app: web.Application) -> None:
        app["worker"] = asyncio.create_task(self.worker())

    def control_app(self) -> web.Application:
        """Fault switches for the self-tests, on their own loopback port (not part of ComfyUI's API)."""
        app = web.Application()

        async def get_faults(request):
            return web.json_response(self.faults)

        async def set_faults(request):
            body = await request.json()
            unknown = sorted(set(body) - set(FAULTS))
            if unknown:
                return web.json_response({"error": f"unknown fault(s): {unknown}; known: {sorted(FAULTS)}"},
                                         status=400)
            for k, v in body.items():
                if type(v) is not type(FAULTS[k]) and not (isinstance(FAULTS[k], float) and isinstance(v, int)):
                    return web.json_response(
                        {"error": f"fault {k}: expected {type(FAULTS[k]).__name__}, got {v!r}"}, status=400)
            self.faults.update(body)
            return web.json_response(self.faults)

        async def reset_faults(request):
            self.faults = dict(FAULTS)
            return web.json_response(self.faults)

        async def state(request):
            return web.json_response({"pid": os.getpid(), "vram_used": self.vram.used,
                                      "queue_remaining": self.queue_remaining(), "python": platform.python_version()})

        app.router.add_get("/faults", get_faults)
        app.router.add_post("/faults", set_faults)
        app.router.add_delete("/faults", reset_faults)
        app.router.add_get("/state", state)
        return app


def _constant(value: Any):
    async def handler(request):
        return web.json_response(value)
    return handler


def _canonical_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


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
