"""The stand-in ComfyUI: an aiohttp app held to the real server's recordings (shared/reference/comfyui).

Routes, status codes, JSON shapes, WebSocket message order, caching and validation follow ComfyUI 0.33.0;
the real web frontend is served from the comfyui-frontend-package wheel. A second, separate loopback
port carries the fault switches, so the ComfyUI route table stays the real one.

Seams: prompts.py (queue, executor, WebSocket events, history, jobs), storage.py (uploads, /view, userdata),
routes.py (the route table), protocol.py (Origin/Host guard, caching headers), control.py (fault switches),
nodes.py (what each node computes), validation.py (POST /prompt's checks); this module assembles the app.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections import OrderedDict
from pathlib import Path

import psutil
from aiohttp import web

from ..config.units import GiB, MiB
from . import DATA, nodes, startup
from .control import FAULTS, control_app
from .nodes import Vram
from .prompts import PromptQueue
from .protocol import cache_control, origin_check
from .routes import api_routes
from .storage import Storage

DEFAULT_MAX_UPLOAD_MIB = 100


class StandIn(PromptQueue, Storage):
    """One stand-in server: its state, what it offers (/object_info, /system_stats) and its two aiohttp apps."""

    def __init__(self, data_dir: Path, *, host: str, port: int, model_step_s: float, vram_total_gib: float,
                 vram_idle_gib: float, max_upload_mib: float | None = None, faults: dict | None = None):
        import comfyui_frontend_package

        self.web_root = Path(comfyui_frontend_package.__file__).with_name("static")
        self.started = dt.datetime.now()
        self.host, self.port = host, port
        self.dirs = {k: data_dir / k for k in ("input", "output", "temp", "models", "user")}
        nodes.ensure_dirs(*self.dirs.values(), self.dirs["user"] / "default" / "workflows")
        self.defs_all = nodes.load_definitions()
        self.model_step_s = model_step_s
        self.vram = Vram(total=int(vram_total_gib * GiB), idle=int(vram_idle_gib * GiB))
        # As ComfyUI's argparse gives it: the default is the int 100, a value given on the command line a float
        # (so /features says 104857600 by default and e.g. 10485760.0 for --max-upload-size 10)
        self.max_upload_mib = DEFAULT_MAX_UPLOAD_MIB if max_upload_mib is None else float(max_upload_mib)
        self.faults = dict(FAULTS)
        self.faults.update(faults or {})
        self.leaked: list[bytearray] = []  # the ram_leak_mb fault's memory, written so that it counts in RSS
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.pending: list[tuple] = []
        self.running: tuple | None = None
        self.history: OrderedDict[str, dict] = OrderedDict()
        self.counter = 0
        self.cache: dict[str, tuple] = {}
        self.interrupt_flag = False
        self.wakeup = asyncio.Event()

    # --- what the server offers, after faults ---------------------------------------------------
    def defs(self, only: set[str] | None = None) -> dict[str, dict]:
        """`only`: just these node classes (a prompt's own), as ComfyUI reads only its nodes' INPUT_TYPES when it
        validates a prompt; copying all of them on every POST would cost the stand-in milliseconds real ComfyUI
        does not spend."""
        hidden = self.faults["missing_node"]
        out = {}
        for name, d in self.defs_all.items():
            if name == hidden or (only is not None and name not in only):
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

    def system_stats(self) -> dict:
        stats = json.loads((DATA / "system_stats.json").read_text())
        mem = psutil.virtual_memory()
        s = stats["system"]
        argv = ["main.py", "--listen", self.host, "--port", str(self.port)]
        if isinstance(self.max_upload_mib, float):
            argv += ["--max-upload-size", f"{self.max_upload_mib:g}"]
        s.update(ram_total=mem.total, ram_free=mem.available, python_version=sys.version, argv=argv)
        s["comfy_package_versions"] = startup.package_versions(s["comfy_package_versions"],
                                                               self.faults["stale_frontend"])
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

    def startup_log(self) -> str:
        required = json.loads((DATA / "system_stats.json").read_text())["system"]["required_frontend_version"]
        return startup.startup_log(self.started, required, stale_frontend=self.faults["stale_frontend"],
                                   broken_custom_node=self.faults["broken_custom_node"])

    def routes(self) -> web.RouteTableDef:
        return api_routes(self)

    # --- the app ------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=round(self.max_upload_mib * MiB),
                              middlewares=[cache_control, origin_check])
        routes = self.routes()
        api = web.RouteTableDef()
        for route in routes:
            assert isinstance(route, web.RouteDef)  # every API route is a plain one (no static folders)
            if route.path.startswith("/internal/"):
                continue  # ComfyUI's internal routes are a sub-app of their own, not under /api
            api.route(route.method, "/api" + route.path)(route.handler)
        # ComfyUI registers /api/jobs bare too and prefixes everything with /api, hence /api/api/jobs.

        async def index(request):
            headers = {"Cache-Control": "no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}
            if not (self.faults["console_error"] or self.faults["stale_frontend"]):
                return web.FileResponse(self.web_root / "index.html", headers=headers)
            script = ""
            if self.faults["console_error"]:
                script += f"<script>console.error({json.dumps(self.faults['console_error'])})</script>"
            if self.faults["stale_frontend"]:  # the page says it is the stale frontend, as an older wheel would
                script += ("<script>Object.defineProperty(window, '__COMFYUI_FRONTEND_VERSION__', "
                           f"{{get: () => {json.dumps(self.faults['stale_frontend'])}, set: () => {{}}}})</script>")
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
            index: dict[str, list | dict] = {"index.json": [], "index_logo.json": {}}
            found = index.get(request.match_info["path"])
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
        return control_app(self)
