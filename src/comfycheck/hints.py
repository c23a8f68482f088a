"""What the operator should do, written once: the fix texts the checks, the client, the browser watch and the
soak share, so one cause reads the same wherever it is found."""
from __future__ import annotations

# ComfyUI refuses a request whose Origin does not match its Host: behind a proxy, the proxy rewrote Host
KEEP_HOST = "pass the original Host header (IIS ARR preserveHostHeader, nginx proxy_set_header Host $http_host)"
ORIGIN_REFUSED = "ComfyUI answers 403 when Host and Origin differ: is a proxy rewriting Host?"
# aiohttp answers 400 to a /ws request without Upgrade: the proxy dropped the hop-by-hop headers
NO_UPGRADE = "ComfyUI got no Upgrade header: the proxy does not pass WebSocket upgrades"
# ComfyUI sends nothing on the WebSocket while a node works (loading a model): the proxy's read timeout cuts it
READ_TIMEOUT = "raise the proxy's read timeout (nginx proxy_read_timeout, IIS ARR's proxy timeout)"
PROXY_BODY_LIMITS = "nginx client_max_body_size, Caddy request_body max_size, IIS maxAllowedContentLength"


def host_rewritten(what: str) -> str:
    """ComfyUI's 403 behind a proxy that rewrites Host, for the request `what`."""
    return (f"{what}: HTTP 403 from ComfyUI, which answers 403 when Host and Origin differ: the proxy rewrites "
            f"Host; {KEEP_HOST}")


def raise_proxy_body_limit(mib: float) -> str:
    return f"raise the proxy's body limit to at least {mib:g} MiB ({PROXY_BODY_LIMITS})"


def raise_comfyui_upload_limit(mib: float) -> str:
    return f"start ComfyUI with --max-upload-size {mib:g} (or more)"


def install_comfyui_requirements(venv: str, logged: str | None = None) -> str:
    """The fix of a half-done ComfyUI update: its requirements installed in its own venv. `logged`: the command
    ComfyUI itself printed (its log names its own python and folder); `venv`: the profile's comfyui.venv."""
    if logged:
        return f"run {logged} (the command ComfyUI logs), then restart ComfyUI"
    if venv:
        windows = "\\" in venv or venv[1:2] == ":"  # a Windows venv (ComfyUI outside WSL)
        python = venv.rstrip("/\\") + ("\\Scripts\\python.exe" if windows else "/bin/python")
        return f"in ComfyUI's folder run {python} -m pip install -r requirements.txt, then restart ComfyUI"
    return ("in ComfyUI's folder run pip install -r requirements.txt with ComfyUI's own venv's python, then restart "
            "ComfyUI (set [comfyui] venv in the profile to have the command written out)")


def find_comfyui_log(why: str) -> str:
    """Where to read the node imports when the suite cannot read ComfyUI's log itself."""
    return (f"{why}; ComfyUI's startup log names each custom node that failed to import (lines 'Cannot import ... "
            "module for custom nodes' and '(IMPORT FAILED)'): read the console or service log ComfyUI runs under "
            "(journalctl -u, supervisorctl tail, the watchdog's log), or set [comfyui] read_logs = true to have it "
            "read from /internal/logs on the backend")
