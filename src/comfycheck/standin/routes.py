"""ComfyUI's HTTP and WebSocket routes, as the stand-in serves them."""
from __future__ import annotations

import json

from aiohttp import web

from . import DATA
from .protocol import canonical_uuid, constant_handler


# --- routes -----------------------------------------------------------------------------------
def api_routes(standin) -> web.RouteTableDef:
    """ComfyUI's route table, served by `standin` (registered bare and under /api by StandIn.app)."""
    r = web.RouteTableDef()
    j = web.json_response

    @r.get("/ws")
    async def ws(request):
        return await standin.ws_handler(request)

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
        return j(standin.model_files(folder))

    @r.get("/extensions")
    async def extensions(request):
        files = sorted((standin.web_root / "extensions").rglob("*.js"))
        return j(["/" + str(p.relative_to(standin.web_root)) for p in files])

    @r.post("/upload/image")
    async def upload_image(request):
        return await standin.upload(request)

    @r.post("/upload/mask")
    async def upload_mask(request):
        return await standin.upload(request)

    @r.get("/view")
    async def view(request):
        return await standin.view(request)

    @r.get("/system_stats")
    async def system_stats(request):
        return j(standin.system_stats())

    @r.get("/features")
    async def features(request):
        return j(standin.features_data())

    @r.get("/prompt")
    async def get_prompt(request):
        return j({"exec_info": {"queue_remaining": standin.queue_remaining()}})

    @r.post("/prompt")
    async def post_prompt(request):
        return await standin.post_prompt(request)

    @r.get("/object_info")
    async def object_info(request):
        return j(standin.defs())

    @r.get("/object_info/{node_class}")
    async def object_info_node(request):
        name = request.match_info["node_class"]
        defs = standin.defs()
        return j({name: defs[name]} if name in defs else {})

    @r.get("/history")
    async def history(request):
        items = list(standin.history.items())
        max_items = request.query.get("max_items")
        if max_items:
            items = items[-int(max_items):]
        return j(dict(items))

    @r.get("/history/{prompt_id}")
    async def history_one(request):
        pid = request.match_info["prompt_id"]
        return j({pid: standin.history[pid]} if pid in standin.history else {})

    @r.post("/history")
    async def post_history(request):
        body = await request.json()
        if body.get("clear"):
            standin.history.clear()
        for pid in body.get("delete", []):
            standin.history.pop(pid, None)
        return web.Response(status=200)

    @r.get("/queue")
    async def get_queue(request):
        running = [list(standin.running)] if standin.running else []
        return j({"queue_running": running, "queue_pending": [list(i) for i in standin.pending]})

    @r.post("/queue")
    async def post_queue(request):
        body = await request.json()
        if body.get("clear"):
            standin.pending.clear()
        if "delete" in body:
            standin.pending = [i for i in standin.pending if i[1] not in body["delete"]]
        await standin.send_status()
        return web.Response(status=200)

    @r.post("/interrupt")
    async def interrupt(request):
        try:
            body = await request.json()
        except ValueError:
            body = {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if wanted is None or (standin.running and standin.running[1] == wanted):
            standin.interrupt_flag = bool(standin.running)
        return web.Response(status=200)

    @r.post("/free")
    async def free(request):
        body = await request.json()
        if body.get("unload_models") or body.get("free_memory"):
            standin.vram.free_models(release=not standin.faults["vram_not_released"])
        return web.Response(status=200)

    @r.get("/api/jobs")
    async def jobs(request):
        return standin.jobs(request)

    @r.get("/api/jobs/{job_id}")
    async def job(request):
        found = standin.job(request.match_info["job_id"])
        return j(found) if found else j({"error": "Job not found"}, status=404)

    def cancel(job_id: str) -> bool:
        """ComfyUI's _cancel_job_by_id: a running job is interrupted, a pending one dequeued, others no-ops."""
        if standin.running and standin.running[1] == job_id:
            standin.interrupt_flag = True
            return True
        before = len(standin.pending)
        standin.pending = [i for i in standin.pending if i[1] != job_id]
        return len(standin.pending) < before

    @r.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(request):
        return j({"cancelled": cancel(request.match_info["job_id"])})

    @r.post("/api/jobs/cancel")
    async def cancel_jobs(request):
        body = await request.json()
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return j({"error": "job_ids must be a list"}, status=400)
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not (isinstance(i, str) and canonical_uuid(i))]
        if bad:
            return j({"error": "job_ids contains invalid id(s)", "invalid_ids": bad}, status=400)
        return j({"cancelled": any([cancel(i) for i in ids])})

    @r.get("/settings")
    async def settings(request):
        return j(standin.settings())

    @r.get("/settings/{id}")
    async def setting(request):
        return j(standin.settings().get(request.match_info["id"]))

    @r.post("/settings")
    async def post_settings(request):
        s = standin.settings()
        s.update(await request.json())
        standin.save_settings(s)
        return web.Response(status=200)

    @r.post("/settings/{id}")
    async def post_setting(request):
        s = standin.settings()
        s[request.match_info["id"]] = await request.json()
        standin.save_settings(s)
        return web.Response(status=200)

    @r.get("/users")
    async def users(request):
        return j({"storage": "server", "migrated": True})

    @r.get("/userdata")
    async def userdata(request):
        base = standin.user_dir() / request.query.get("dir", "")
        if not base.is_dir():
            return web.Response(status=404)
        pattern = "**/*" if request.query.get("recurse") == "true" else "*"
        return j(sorted(str(p.relative_to(base)) for p in base.glob(pattern) if p.is_file()))

    @r.get("/v2/userdata")
    async def userdata_v2(request):
        base = standin.user_dir() / request.query.get("path", "")
        if not base.is_dir():
            return web.Response(status=404)
        return j([{"name": p.name, "path": str(p.relative_to(standin.user_dir())),
                   "type": "directory" if p.is_dir() else "file",
                   **({"size": p.stat().st_size, "modified": p.stat().st_mtime} if p.is_file() else {})}
                  for p in sorted(base.iterdir())])

    @r.get("/userdata/{file}")
    async def userdata_get(request):
        p = standin.user_file(request.match_info["file"])
        return web.FileResponse(p) if p and p.is_file() else web.Response(status=404)

    @r.post("/userdata/{file}")
    async def userdata_post(request):
        p = standin.user_file(request.match_info["file"])
        if p is None:
            return web.Response(status=400)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(await request.read())
        return j({"path": str(p.relative_to(standin.user_dir())), "size": p.stat().st_size,
                  "modified": p.stat().st_mtime})

    @r.delete("/userdata/{file}")
    async def userdata_delete(request):
        p = standin.user_file(request.match_info["file"])
        if not p or not p.is_file():
            return web.Response(status=404)
        p.unlink()
        return web.Response(status=204)

    empty: dict = {}
    for path, value in (("/i18n", empty), ("/workflow_templates", empty), ("/global_subgraphs", empty),
                        ("/node_replacements", empty)):
        r.get(path)(constant_handler(value))

    @r.get("/experiment/models")
    async def experiment_models(request):
        return j([{"name": f, "folders": [str(standin.dirs["models"] / f)]}
                  for f in json.loads((DATA / "models.json").read_text())])

    @r.get("/internal/folder_paths")
    async def folder_paths(request):
        return j({f: [[str(standin.dirs["models"] / f)], []] for f in json.loads((DATA / "models.json").read_text())})

    @r.get("/internal/logs")
    async def logs(request):
        return j(standin.startup_log())

    return r

