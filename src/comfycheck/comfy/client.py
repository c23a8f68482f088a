"""ComfyClient: the only code in comfycheck that speaks ComfyUI's HTTP and WebSocket API."""
from __future__ import annotations

import functools
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.exceptions import InvalidStatus, WebSocketException

from .. import hints
from ..config.auth import Credentials
from ..polling import DeadlineExceeded, wait_until
from .errors import ComfyError, ComfyHTTPError, ComfyUnreachable, PromptRejected, RunTimeout, WebSocketLost
from .eventstream import EventStream
from .run_result import TERMINAL, RunResult, WsMessage, created_ms, format_prompt_error
from .wsclient import WsConnection, WsTimeout

__all__ = ["ComfyClient", "ComfyError", "ComfyHTTPError", "ComfyUnreachable", "EventStream", "PromptRejected",
           "RunResult", "RunTimeout", "WebSocketLost", "WsMessage", "format_prompt_error"]


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """One verifying context per CA bundle (and its contents): loading the trust store takes tens of ms, and a run
    makes a client per check and per readiness poll."""
    stamp = Path(cafile).stat().st_mtime_ns if cafile else 0
    return _cached_context(cafile, stamp)


@functools.lru_cache(maxsize=16)
def _cached_context(cafile: str | None, _stamp: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


class ComfyClient:
    """A ComfyUI endpoint: the backend directly, or the public URL through the proxy.

    Errors come back as ComfyError subclasses whose messages name the URL; the credentials (if any) go with
    every request, the WebSocket upgrade and raw uploads alike, and never appear in messages or repr.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_prefix: str = "",
        token: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = 10.0,
        ca_bundle: str | Path | None = None,
        origin: str | None = None,
        via_proxy: bool = False,
    ):
        parts = urlsplit(base_url)
        self.via_proxy = via_proxy  # the public address: a closed WebSocket is then most likely the proxy's doing
        self.base_url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.api_prefix = api_prefix
        self.timeout = timeout
        self.origin = origin
        if ca_bundle and not Path(ca_bundle).is_file():
            raise ComfyError(f"CA bundle {ca_bundle} (the profile's public.ca_bundle) does not exist")
        self._ssl = _tls_context(str(ca_bundle) if ca_bundle else None)
        self.credentials = credentials or (Credentials("bearer", token) if token else Credentials())
        self._headers = self.credentials.headers()
        self._http = httpx.Client(timeout=timeout, verify=self._ssl, headers=self._headers,
                                  cookies=self.credentials.cookies(), params=self.credentials.params())

    @classmethod
    def from_profile(cls, profile, *, public: bool = False, origin: str | None = None,
                     timeout: float | None = None) -> ComfyClient:
        c = profile.comfyui
        if public and profile.public is None:
            raise ComfyError(f"profile {profile.name!r} has no [public] table: no public URL to test")
        url = profile.public.url if public else c.url
        return cls(
            url,
            api_prefix=c.api_prefix,
            credentials=profile.public.credentials if public else c.credentials,
            timeout=c.timeout_s if timeout is None else timeout,
            ca_bundle=profile.ca_bundle,
            origin=origin,
            via_proxy=public,
        )

    def __repr__(self) -> str:
        return f"ComfyClient({self.base_url!r}, api_prefix={self.api_prefix!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- HTTP ------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base_url}{self.api_prefix}{path}"

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), bare: bool = False,
                **kw) -> httpx.Response:
        """`bare`: a path ComfyUI serves outside its API prefix (/internal/...)."""
        url = f"{self.base_url}{path}" if bare else self.url(path)
        headers = dict(kw.pop("headers", {}) or {})
        if self.origin and method != "GET":
            headers.setdefault("Origin", self.origin)
        try:
            resp = self._http.request(method, url, headers=headers, **kw)
        except httpx.TimeoutException as exc:
            raise ComfyUnreachable(
                f"{method} {url}: no answer within {self.timeout:g} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ComfyUnreachable(self.credentials.mask(
                f"cannot reach ComfyUI at {url}: {type(exc).__name__}: {exc}")) from None
        if expect and resp.status_code not in expect:
            body = _body(resp)
            hint = ""
            if resp.status_code in (401, 403) and self.credentials.mode != "none":
                hint = f" (the proxy refuses the credentials of {self.credentials.describe()})"
            elif resp.status_code == 401:
                hint = " (the proxy asks for credentials: set public.auth and its keys in the profile)"
            elif resp.status_code == 403:
                hint = f" ({hints.ORIGIN_REFUSED})"
            raise ComfyHTTPError(
                f"{method} {url}: HTTP {resp.status_code}{hint}: {str(body)[:300]}", resp.status_code, body
            )
        return resp

    def get_json(self, path: str, **params) -> Any:
        resp = self.request("GET", path, params=params or None)
        try:
            return resp.json()
        except ValueError:
            raise ComfyHTTPError(
                f"GET {self.url(path)}: expected JSON, got {resp.headers.get('content-type')!r}: "
                f"{resp.text[:200]!r}",
                resp.status_code,
            ) from None

    def timed_get(self, path: str) -> float:
        """Seconds for one GET (status checked), for latency sampling."""
        t0 = time.perf_counter()
        self.request("GET", path)
        return time.perf_counter() - t0

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def startup_log(self) -> str:
        """ComfyUI's own log (/internal/logs: its last 300 records). Asked of the backend only: an internal route
        that a public address should not serve, and one that holds paths and arguments."""
        if self.via_proxy:
            raise ComfyError(f"ComfyUI's log is read from the backend address only, not from {self.base_url}")
        resp = self.request("GET", "/internal/logs", bare=True)
        try:
            text = resp.json()
        except ValueError:
            text = None
        if not isinstance(text, str):
            raise ComfyHTTPError(f"GET {self.base_url}/internal/logs: expected a JSON string, got "
                                 f"{resp.text[:200]!r}", resp.status_code)
        return text

    def queue(self) -> dict:
        return self.get_json("/queue")

    def object_info(self, node_class: str | None = None) -> dict:
        return self.get_json(f"/object_info/{node_class}" if node_class else "/object_info")

    def features(self) -> dict:
        return self.get_json("/features")

    def models(self, folder: str | None = None) -> list:
        return self.get_json(f"/models/{folder}" if folder else "/models")

    def page(self) -> int:
        """The web page at / (ComfyUI's frontend), as a browser loads it first; its size in bytes. A balancer's
        affinity cookie, if it sets one, is kept and sent with the WebSocket."""
        return len(self.request("GET", "/", bare=True).content)

    def history(self, prompt_id: str | None = None, max_items: int | None = None) -> dict:
        path = f"/history/{prompt_id}" if prompt_id else "/history"
        return self.get_json(path, **({"max_items": max_items} if max_items else {}))

    def upload_image(
        self, image: bytes | Path, filename: str | None = None, *, subfolder: str = "", overwrite: bool = False
    ) -> dict:
        if isinstance(image, Path):
            filename = filename or image.name
            image = image.read_bytes()
        fields = {"overwrite": "true" if overwrite else "false", "type": "input", "subfolder": subfolder}
        files = {"image": (filename or "upload.png", image, "image/png")}
        return self.request("POST", "/upload/image", data=fields, files=files).json()

    def upload_early_answer(self, nbytes: int, *, wait: float = 3.0) -> int | None:
        """Announce an upload of `nbytes` with `Expect: 100-continue` and send no body.

        A proxy checks its body limit against Content-Length before reading anything: it answers 413 at once
        when the upload is too large and `100 Continue` (or nothing yet) when it would take it. Returns that
        status, or None when no answer came within `wait` seconds. Nothing reaches the server's disk.
        """
        parts = urlsplit(self.credentials.with_token(self.url("/upload/image")))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
                "Content-Type: multipart/form-data; boundary=comfycheck-probe",
                f"Content-Length: {nbytes}", "Expect: 100-continue", "Connection: close"]
        head += [f"{k}: {v}" for k, v in self._headers.items()]
        head += [f"Cookie: {k}={v}" for k, v in self.credentials.cookies().items()]
        if self.origin:
            head.append(f"Origin: {self.origin}")
        try:
            raw = socket.create_connection((parts.hostname, port), timeout=self.timeout)
        except OSError as exc:
            raise ComfyUnreachable(f"cannot reach {parts.netloc} for an upload probe: {exc}") from None
        try:
            sock = self._ssl.wrap_socket(raw, server_hostname=parts.hostname) if parts.scheme == "https" else raw
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sock.settimeout(wait)
            try:
                line = sock.recv(64).split(b"\r\n", 1)[0].decode("latin-1")
            except TimeoutError:
                return None
            return int(line.split()[1]) if line.startswith("HTTP/") else None
        except (OSError, ssl.SSLError) as exc:
            raise ComfyUnreachable(f"upload probe to {self.url('/upload/image')} failed: {exc}") from None
        finally:
            raw.close()

    def upload_filler(self, nbytes: int) -> httpx.Response:
        """POST /upload/image with a body of exactly `nbytes` that carries no `image` field.

        It travels the whole path (proxy, then ComfyUI reads it all) and ComfyUI answers 400 without writing
        anything, so a limit can be proven with a full-size body and leave no file behind.
        """
        boundary = "comfycheck-filler"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"comfycheck_filler\"; "
                f"filename=\"filler.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        fill = nbytes - len(head) - len(tail)
        if fill < 0:
            raise ValueError(f"an upload filler needs at least {len(head) + len(tail)} bytes")

        def body():
            yield head
            chunk = b"\0" * (1 << 20)
            left = fill
            while left:
                yield chunk[:min(left, len(chunk))]
                left -= min(left, len(chunk))
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(nbytes)}
        return self.request("POST", "/upload/image", content=body(), headers=headers, expect=())

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        resp = self.request("GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": type})
        return resp.content

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.request("POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory})

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def submit(self, workflow: dict, client_id: str | None = None, *, extra: dict | None = None) -> dict:
        """`extra`: more of the body ComfyUI reads (its queue position: `number`, `front`)."""
        body: dict[str, Any] = {"prompt": workflow, **(extra or {})}
        if client_id:
            body["client_id"] = client_id
        resp = self.request("POST", "/prompt", json=body, expect=())
        if resp.status_code == 400:
            parsed = _body(resp)
            raise PromptRejected(format_prompt_error(parsed, workflow), 400, parsed)
        if resp.status_code != 200:
            raise ComfyHTTPError(
                f"POST {self.url('/prompt')}: HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code, resp.text
            )
        return resp.json()

    # --- WebSocket -------------------------------------------------------------------------------
    def ws_url(self, client_id: str) -> str:
        """The WebSocket's address as messages name it: a query token is not in it (see _ws_connect_url)."""
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        return f"{scheme}{self.base_url[self.base_url.index(':'):]}{self.api_prefix}/ws?clientId={client_id}"

    @contextmanager
    def websocket(self, client_id: str | None = None) -> Iterator[EventStream]:
        """Connect /ws and read the greeting `status` message (which carries the session id)."""
        client_id = client_id or uuid.uuid4().hex
        url = self.ws_url(client_id)
        headers = dict(self._headers)
        if self.origin:
            headers["Origin"] = self.origin
        if self._http.cookies:
            headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in self._http.cookies.jar)
        with ExitStack() as opened:
            try:
                ws = opened.enter_context(WsConnection.open(
                    self.credentials.with_token(url), headers=headers,
                    ssl_context=self._ssl if url.startswith("wss") else None, timeout=self.timeout))
            except WsTimeout as exc:
                raise ComfyUnreachable(self.credentials.mask(str(exc))) from None
            except InvalidStatus as exc:
                status = exc.response.status_code
                location = exc.response.headers.get("Location", "") if 300 <= status < 400 else ""
                raise ComfyHTTPError(f"WebSocket {url} refused: HTTP {status}"
                                     f"{f' to {location}' if location else ''}{self._ws_hint(status)}",
                                     status, location=self.credentials.mask(location)) from None
            except (OSError, WebSocketException) as exc:
                raise ComfyUnreachable(self.credentials.mask(
                    f"WebSocket {url}: cannot connect: {type(exc).__name__}: {exc}")) from None
            stream = EventStream(ws, url)
            greeting = stream.next(self.timeout)
            if greeting is None:
                raise ComfyUnreachable(
                    f"WebSocket {url}: connected, but no 'status' greeting within {self.timeout:g} s")
            if greeting.get("type") != "status":
                raise ComfyError(f"WebSocket {url}: expected a 'status' greeting, got {greeting!r}")
            stream.sid = greeting["data"].get("sid")
            stream.greeting = greeting
            yield stream

    def _ws_hint(self, status: int) -> str:
        if status in (401, 403) and self.credentials.mode != "none":
            return f" (the proxy refuses the credentials of {self.credentials.describe()})"
        if status == 401:
            return " (the proxy asks for credentials: set public.auth and its keys in the profile)"
        if 300 <= status < 400:
            return " (a redirect: a sign-in portal in front of ComfyUI sends a client without a session to its login)"
        return {403: f" ({hints.ORIGIN_REFUSED})", 400: f" ({hints.NO_UPGRADE})"}.get(status, "")

    def run(self, workflow: dict, *, timeout: float = 300.0) -> RunResult:
        """Submit a workflow and wait on the WebSocket until *its* prompt finishes (or the deadline)."""
        client_id = uuid.uuid4().hex
        with self.websocket(client_id) as ws:
            return self.run_on(ws, client_id, workflow, timeout=timeout)

    def run_on(self, ws: EventStream, client_id: str, workflow: dict, *, timeout: float = 300.0,
               after_submit: Callable[[dict], None] | None = None, read_history: bool = True) -> RunResult:
        """Submit a workflow as `client_id` and wait on that client's open socket `ws` (a page's, held across
        prompts) until its prompt finishes. `after_submit`: called with POST /prompt's answer, before the wait.
        read_history=False: the outputs as the socket's `executed` messages gave them, done at the terminal message,
        and no /history request (the caller reads create_time later, off the path to the result)."""
        t0 = time.perf_counter()
        submitted_at = time.time()
        deadline = t0 + timeout
        queued = self.submit(workflow, client_id)
        post_ms = (time.perf_counter() - t0) * 1000
        prompt_id = queued["prompt_id"]
        if after_submit is not None:
            after_submit(queued)
        messages: list[WsMessage] = []
        status = error = None
        terminal_ms = None
        server_ms: dict[str, int] = {}
        while True:
            remaining = deadline - time.perf_counter()
            try:
                msg = ws.next(remaining) if remaining > 0 else None
            except WebSocketLost as lost:
                raise WebSocketLost(self._lost_mid_prompt(prompt_id, lost, deadline), lost.silent_s) from None
            if msg is None:
                if status:
                    break  # terminal seen; the closing `executing` never came: nothing more to wait for
                seen = ", ".join(m.type for m in messages[-8:]) or "nothing"
                raise RunTimeout(
                    f"prompt {prompt_id} did not finish within {timeout:g} s (last messages: {seen})"
                )
            data = msg.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            t_ms = (ws.last_received - t0) * 1000
            messages.append(WsMessage(t_ms, msg["type"], data))
            if "timestamp" in data and msg["type"].startswith("execution_"):
                server_ms.setdefault(msg["type"], data["timestamp"])
            if msg["type"] in TERMINAL and status is None:
                status = msg["type"].removeprefix("execution_")
                terminal_ms = t_ms
                error = data if status != "success" else None
                deadline = min(deadline, time.perf_counter() + 5.0)
                if not read_history:
                    break  # the page has every `executed` output by now; ComfyUI's closing `executing` can come
                    # a garbage collection later (it runs gc.collect() between prompts, every 10 s)
            if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                if status:
                    break
        history = self.history(prompt_id).get(prompt_id, {}) if read_history else {}
        created = created_ms(history)
        if created is not None:
            server_ms["create_time"] = created
        outputs = history.get("outputs") or {
            m.data["node"]: m.data.get("output") for m in messages if m.type == "executed"
        }
        return RunResult(
            prompt_id=prompt_id,
            number=queued.get("number", -1),
            client_id=client_id,
            status=status,
            messages=messages,
            outputs=outputs,
            server_ms=server_ms,
            client_post_ms=post_ms,
            client_terminal_ms=terminal_ms,
            error=error,
            history=history,
            submitted_at=submitted_at,
        )

    def _lost_mid_prompt(self, prompt_id: str, lost: WebSocketLost, deadline: float) -> str:
        """The WebSocket closed while a prompt ran: what happened to the prompt, asked of /history."""
        who = "the proxy" if self.via_proxy else "the server"
        head = f"{who} closed the WebSocket after {lost.silent_s:.1f} s of silence while prompt {prompt_id} ran"
        hint = (f" (proxy read timeout? ComfyUI sends nothing while a node works: {hints.READ_TIMEOUT})"
                if self.via_proxy else "")

        def finished() -> str | None:  # ComfyUI writes a prompt's history entry when it ends
            return (self.history(prompt_id).get(prompt_id, {}).get("status") or {}).get("status_str")

        try:
            outcome, _ = wait_until(finished, timeout=max(0.0, deadline - time.perf_counter()), interval=0.2,
                                    what=f"prompt {prompt_id} in /history", fatal=(ComfyError,))
        except (DeadlineExceeded, ComfyError):
            outcome = None
        if outcome is None:
            return f"{head}; the prompt had not finished on the server by the deadline{hint}"
        return f"{head}; the prompt kept running and finished on the server ({outcome}){hint}"


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text
