"""Browser-side helpers for the UI layer: which Chromium, trusting the profile's CA, watching a page, baselines.

Nothing here imports Playwright at module level, so the rest of the suite never needs it.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image
from pixelmatch.utils import antialiased

from .. import ComfycheckError, hints

DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# Requests the real ComfyUI frontend makes on every load that a healthy server answers 404 (seen in the
# recordings of a real ComfyUI 0.33.0 with frontend 1.49.6): optional user files and settings not yet saved.
COMFYUI_EXPECTED_404 = (
    "/user.css",
    "/api/userdata/user.css",
    "/api/settings/Comfy.InstalledVersion",
    "/api/userdata/comfy.templates.json",
    "/api/userdata?dir=subgraphs",
    "/api/userdata?dir=workflows",
)
# Console errors the real frontend 1.49.6 logs on a healthy server (recorded too).
COMFYUI_EXPECTED_CONSOLE = ("ComfyApp graph accessed before initialization",)


class UIError(ComfycheckError):
    pass


def websocket_hint(error: str) -> str:
    """Chromium's WebSocket error, with the words the API checks use for the same cause."""
    if "400" in error:
        return f"{error} ({hints.NO_UPGRADE})"
    if "403" in error:
        return f"{error} ({hints.ORIGIN_REFUSED})"
    return error


def navigation_cause(error: str, url: str) -> str:
    """Why the browser could not open a page at all, from Playwright's net::ERR_* error."""
    code = next((w for w in error.split() if w.startswith("net::ERR_")), "")
    if code.startswith("net::ERR_CERT_"):
        return (f"the browser refuses the certificate of {url} ({code}): the certificate does not verify "
                "(see the certificate checks)")
    if code in ("net::ERR_CONNECTION_REFUSED", "net::ERR_CONNECTION_RESET", "net::ERR_TIMED_OUT",
                "net::ERR_NAME_NOT_RESOLVED", "net::ERR_ADDRESS_UNREACHABLE"):
        return f"the browser cannot reach {url} ({code})"
    return f"the browser could not open {url}: {error.splitlines()[0] if error else '?'}"


def browser_executable(configured: str | None) -> str | None:
    """The Chromium to launch: the option/profile's, else Playwright's own if installed, else Debian's.

    None means "Playwright's own browser" (what pytest-playwright launches by default).
    """
    if configured:
        if not Path(configured).is_file():
            raise UIError(f"browser {configured} (--browser-path or [ui] browser_path) does not exist")
        return configured
    if _playwright_chromium_installed():
        return None
    if Path(DEBIAN_CHROMIUM).is_file():
        return DEBIAN_CHROMIUM
    raise UIError("no Chromium found: run ./run setup (installs Debian's chromium), "
                  "or `playwright install chromium`, or set [ui] browser_path")


def _playwright_chromium_installed() -> bool:
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    return root.is_dir() and any(p.name.startswith("chromium") for p in root.iterdir())


def nss_home(ca_bundle: Path, home: Path) -> Path:
    """A HOME whose NSS database trusts the CA bundle's roots: how Chromium on Linux trusts a private CA."""
    certutil = shutil.which("certutil")
    if not certutil:
        raise UIError("certutil is missing (Debian package libnss3-tools; ./run setup installs it): "
                      "needed to make Chromium trust the profile's CA bundle")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    pems = ca_bundle.read_text().split("-----END CERTIFICATE-----")
    for i, pem in enumerate(p for p in pems if "BEGIN CERTIFICATE" in p):
        cert = home / f"ca-{i}.pem"
        cert.write_text(pem.strip() + "\n-----END CERTIFICATE-----\n")
        subprocess.run([certutil, "-A", "-d", f"sql:{db}", "-t", "C,,", "-n", f"comfycheck-ca-{i}", "-i", str(cert)],
                       check=True, capture_output=True)
    return home


@dataclass
class PageWatch:
    """Everything a page did that a healthy page should not: console errors, failed requests, its WebSockets."""

    allowed_hosts: set[str]
    expected_404: tuple[str, ...] = ()
    expected_console: tuple[str, ...] = ()
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    websockets: list[dict] = field(default_factory=list)
    refused_by_design: tuple = ()  # comfy.operations.PageRoute: what the profile requires the proxy to refuse
    told: list[str] = field(default_factory=list)  # the page's requests refused as the profile requires

    def attach(self, page) -> None:
        page.route("**/*", self._route)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)
        page.on("websocket", self._websocket)

    def _route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in self.allowed_hosts:
            route.continue_()
        else:  # the suite only talks to loopback and the profile's hosts; so does the page it drives
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def _expected(self, url: str) -> bool:
        path = urlsplit(url)._replace(scheme="", netloc="").geturl()
        return any(path.startswith(p) for p in self.expected_404)

    def _response(self, response) -> None:
        if response.status >= 400:
            entry = f"{response.status} {response.request.method} {response.url}"
            by_design = self._refused_by_design(response.status, response.request.method, response.url)
            if by_design:
                self.told.append(f"{entry}: refused as the profile requires ({by_design})")
                return
            (self.tolerated if response.status == 404 and self._expected(response.url) else self.failed).append(entry)

    def _refused_by_design(self, status: int, method: str, url: str) -> str:
        """What the page loses, where this is the proxy refusing a route the profile says it must refuse."""
        if status not in (401, 403, 404, 405):
            return ""
        path = urlsplit(url)._replace(scheme="", netloc="").geturl()
        route = next((r for r in self.refused_by_design if r.covers(method, path)), None)
        return f"{route.operation}: the page does without {route.loses}" if route else ""

    def _request_failed(self, request) -> None:
        if request.url in self.blocked or request.url.startswith(("data:", "blob:")):
            return
        failure = request.failure or "?"
        if "ERR_ABORTED" in failure:
            # the page cancelled it (navigation, a closed dialog, an AbortController: the real frontend does
            # this on a healthy server too); an HTTP error on it is already judged by _response
            if not (self._expected(request.url) or any(request.url in f for f in self.failed)):
                self.tolerated.append(f"aborted by the page: {request.method} {request.url}")
            return
        if request.resource_type == "websocket":
            return  # judged by the WebSocket check
        self.failed.append(f"{request.method} {request.url}: {failure}")

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        text = msg.text
        if text.startswith("Failed to load resource"):
            return  # the request itself is judged by _response/_request_failed, with its URL
        if text.startswith("WebSocket connection to") and "/ws" in text:
            return  # the page's /ws is judged by the WebSocket check, with the cause
        if any(text.startswith(e) for e in self.expected_console):
            self.tolerated.append(f"console: {text}")
            return
        self.console_errors.append(f"{text} ({url})" if url else text)

    def _websocket(self, ws) -> None:
        entry = {"url": ws.url, "received": [], "error": None, "closed": False}
        self.websockets.append(entry)

        def received(payload):
            if isinstance(payload, str):
                try:
                    entry["received"].append(json.loads(payload))
                except ValueError:
                    pass

        ws.on("framereceived", received)
        ws.on("socketerror", lambda err: entry.update(error=str(err)))
        ws.on("close", lambda _ws: entry.update(closed=True))

    def cause(self, page_url: str) -> str | None:
        """A failure of the page's own requests that means the page cannot become ready: say it at once."""
        origin = urlsplit(page_url).netloc
        for entry in self.failed:
            status, _, rest = entry.partition(" ")
            method, _, url = rest.partition(" ")
            if urlsplit(url).netloc != origin:
                continue
            if status == "403":
                return hints.host_rewritten(f"the page's own request {method} {url}")
            if status in ("502", "503", "504"):
                return (f"the proxy answers {status} for the page's request {method} {url}: ComfyUI behind it "
                        "does not answer")
        return None

    def websocket_state(self) -> tuple[str, str]:
        """("greeted", url), ("refused", why) or ("pending", ""): the page's /ws as ComfyUI's frontend uses it."""
        sockets = [ws for ws in self.websockets if urlsplit(ws["url"]).path.endswith("/ws")]
        for ws in sockets:
            if any(m.get("type") == "status" for m in ws["received"]):
                return "greeted", ws["url"]
        failed = [ws for ws in sockets if ws["error"] or ws["closed"]]
        if failed:
            last = failed[-1]
            return "refused", f"{last['url']}: {websocket_hint(last['error'] or 'closed before any message')}"
        return "pending", ""

    def problems(self) -> list[str]:
        out = [f"console error: {e}" for e in self.console_errors]
        out += [f"page error: {e}" for e in self.page_errors]
        out += [f"failed request: {e}" for e in self.failed]
        return out


# --- screenshots against baselines ----------------------------------------------------------------
@dataclass
class Comparison:
    baseline: Path
    written: bool  # no baseline existed (or an update was asked for): this screenshot became it
    changed_pct: float = 0.0
    size_changed: str = ""
    diff_png: bytes | None = None
    anti_aliased: int = 0  # pixels whose colour moved only by anti-aliasing (not counted as changed)


# pixelmatch's defaults, the algorithm behind Playwright's toHaveScreenshot: a YIQ colour distance above
# threshold 0.1 counts as changed, unless either side of the pixel is anti-aliasing (text edges rendered a
# little differently by another machine's fonts and GPU-less rasteriser).
YIQ_MAX_DELTA = 35215 * 0.1 * 0.1


def _yiq_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pixelmatch's colour_delta, for every pixel of two opaque RGB images at once."""
    d = a.astype(np.float64) - b.astype(np.float64)
    y = d @ np.array([0.29889531, 0.58662247, 0.11448223])
    i = d @ np.array([0.59597799, -0.27417610, -0.32180189])
    q = d @ np.array([0.21147017, -0.52261711, 0.31114694])
    return 0.5053 * y * y + 0.299 * i * i + 0.1957 * q * q


def compare_to_baseline(png: bytes, baseline: Path, *, masks: list[tuple[int, int, int, int]],
                        update: bool = False) -> Comparison:
    """Share of pixels (outside the masks) that changed, anti-aliasing aside, as pixelmatch counts them."""
    if update or not baseline.is_file():
        baseline.parent.mkdir(parents=True, exist_ok=True)
        baseline.write_bytes(png)
        return Comparison(baseline, written=True)
    now = Image.open(io.BytesIO(png)).convert("RGB")
    then = Image.open(baseline).convert("RGB")
    if now.size != then.size:
        return Comparison(baseline, False, 100.0, f"{then.size[0]}x{then.size[1]} -> {now.size[0]}x{now.size[1]}")
    width, height = now.size
    a, b = np.asarray(now), np.asarray(then)
    keep = np.ones((height, width), bool)
    for x, y, w, h in masks:
        keep[max(0, y):y + h, max(0, x):x + w] = False
    candidates = np.argwhere((_yiq_delta(a, b) > YIQ_MAX_DELTA) & keep)
    # The anti-aliasing test (pixelmatch's own) runs only where colours moved: a few pixels, not a million.
    flat_a, flat_b = now.convert("RGBA").tobytes(), then.convert("RGBA").tobytes()
    changed = np.zeros((height, width), bool)
    for y, x in candidates:
        if not (antialiased(flat_a, int(x), int(y), width, height, flat_b)
                or antialiased(flat_b, int(x), int(y), width, height, flat_a)):
            changed[y, x] = True
    overlay = a.copy()
    overlay[changed] = (255, 0, 64)
    buf = io.BytesIO()
    Image.fromarray(overlay).save(buf, "PNG")
    return Comparison(baseline, False, round(100 * int(changed.sum()) / max(1, int(keep.sum())), 3), "",
                      buf.getvalue(), anti_aliased=len(candidates) - int(changed.sum()))
