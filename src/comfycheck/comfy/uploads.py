"""Which layer refused an upload, told by what it answered (not by the Server header, which the proxy rewrites).

Recorded from real ComfyUI 0.33.0 (aiohttp 3.14) behind nginx:
- ComfyUI's own body limit (--max-upload-size): 413, text/plain "Maximum request body size 10485760 exceeded."
- ComfyUI's Host/Origin guard: 403 with an empty body.
- nginx's client_max_body_size: 413 with its HTML error page "413 Request Entity Too Large".
- IIS request filtering (maxAllowedContentLength): 404.13, an HTML page "... Content Length Too Large".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import hints
from ..config.units import MiB

COMFYUI_TOO_LARGE = re.compile(r"Maximum request body size (\d+) exceeded")


@dataclass(frozen=True)
class Refusal:
    layer: str  # "ComfyUI", "the proxy" or "an unknown layer"
    status: int
    what: str  # what the answer says, in words
    fix: str
    limit_bytes: int | None = None  # the limit the answer states, where it states one

    def describe(self) -> str:
        return f"{self.layer} refused it (HTTP {self.status}: {self.what}): {self.fix}"


def who_refused(status: int, content_type: str, body: str, *, required_mib: float) -> Refusal | None:
    """The refusal an upload's answer stands for; None when ComfyUI read the whole body (any 2xx or its 400)."""
    html = "html" in content_type.lower() or "<html" in body[:200].lower()
    if status < 300 or (status == 400 and not html):
        return None
    want = f"{required_mib:g}"
    if status == 413 and (match := COMFYUI_TOO_LARGE.search(body)):
        limit = int(match.group(1))
        return Refusal("ComfyUI", 413, f"its own body limit, {limit / MiB:.2f} MiB: {match.group(0)!r}",
                       hints.raise_comfyui_upload_limit(required_mib), limit)
    if status == 403 and not html:
        return Refusal("ComfyUI", 403, "its Host/Origin guard (Host and Origin differ)",
                       f"the proxy rewrites Host: {hints.KEEP_HOST}")
    if status == 413:
        return Refusal("the proxy", 413, "its own error page, 'Request Entity Too Large'",
                       hints.raise_proxy_body_limit(required_mib))
    if status == 404 and ("404.13" in body or "content length too large" in body.lower()):
        return Refusal("the proxy", 404, "IIS request filtering, 404.13 Content Length Too Large",
                       f"raise requestLimits maxAllowedContentLength to at least {want} MiB")
    snippet = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()[:160]
    return Refusal("an unknown layer", status, snippet or "an empty body", "see the proxy's and ComfyUI's logs")


def full_upload(client, required_mib: float, where: str) -> tuple[float, float, str | None]:
    """Send a body 64 KiB under `required_mib` that ComfyUI reads whole and keeps nothing of (no `image` field,
    so it answers 400). (MiB sent, seconds, what went wrong or None), `where` naming the path in messages."""
    size = int(required_mib * MiB) - 64 * 1024
    resp = client.upload_filler(size)
    sent, seconds = round(size / MiB, 1), round(resp.elapsed.total_seconds(), 2)
    refused = who_refused(resp.status_code, resp.headers.get("content-type", ""), resp.text, required_mib=required_mib)
    if refused is not None:
        return sent, seconds, f"a {size / MiB:.1f} MiB upload {where} was refused: {refused.describe()}"
    if resp.status_code != 400:
        return sent, seconds, (f"a {size / MiB:.1f} MiB upload {where} got HTTP {resp.status_code}, expected "
                               f"ComfyUI's 400 for a body with no image: {resp.text[:200]}")
    return sent, seconds, None
