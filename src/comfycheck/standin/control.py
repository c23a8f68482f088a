"""The stand-in's fault switches, on a loopback port of their own (not part of ComfyUI's API)."""
from __future__ import annotations

import os
import platform

from aiohttp import web

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
    "ram_leak_mb": 0.0,  # every prompt keeps this many MB of RAM it never gives back (a slow leak)
    # a half-done update: this older comfyui-frontend-package is the one installed and served (e.g. "1.48.7")
    "stale_frontend": "",
    "drop_prompts": 0,  # the next N prompts are accepted and then lost: never run, never answered
    "serves_lifo": False,  # the queue serves the newest prompt first (not ComfyUI's first come, first served)
    "broken_custom_node": "",  # this custom node (a folder name) failed to import at startup: the log says why
    # not a fault: the simulated seconds per sampling step in place of the stack's ([stack] model_step_s), so a
    # self-test that drives many prompts through a healthy server need not wait out their simulated steps
    "model_step_s": 0.0,
}


def control_app(standin) -> web.Application:
    """Fault switches for the self-tests, on their own loopback port (not part of ComfyUI's API)."""
    app = web.Application()

    async def get_faults(request):
        return web.json_response(standin.faults)

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
        standin.faults.update(body)
        return web.json_response(standin.faults)

    async def reset_faults(request):
        standin.faults = dict(FAULTS)
        standin.leaked.clear()
        return web.json_response(standin.faults)

    async def state(request):
        return web.json_response({"pid": os.getpid(), "vram_used": standin.vram.used,
                                  "queue_remaining": standin.queue_remaining(), "python": platform.python_version()})

    app.router.add_get("/faults", get_faults)
    app.router.add_post("/faults", set_faults)
    app.router.add_delete("/faults", reset_faults)
    app.router.add_get("/state", state)
    return app


