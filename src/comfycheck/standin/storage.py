"""Files the stand-in keeps as ComfyUI does: uploads, /view, the user's settings and userdata."""
from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
from pathlib import Path

from aiohttp import web
from PIL import Image

from .state import State


class Storage(State):
    """The StandIn's files (a mixin: the StandIn holds the directories)."""

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

    async def upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField):
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        root = self.dirs[kind if kind in ("input", "temp", "output") else "input"].resolve()
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
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

