"""What the stand-in says about its own install, as real ComfyUI 0.33.0 says it: its packages against its
requirements (/system_stats comfy_package_versions) and its startup log (/internal/logs), after the faults of a
half-done update (an older frontend package found first, a custom node that fails to import).

The log is the recorded startup of a real server (data/startup_log.txt), as ComfyUI serves it: one record per
log call, "<time> - <record>", the level tag coloured."""
from __future__ import annotations

import datetime as dt
from importlib import metadata

from . import DATA

LEVEL_COLOURS = {"INFO": "\x1b[32m", "WARNING": "\x1b[1m\x1b[33m", "ERROR": "\x1b[1m\x1b[31m"}
RESET = "\x1b[0m"
COMFYUI_DIR = "/srv/ComfyUI"  # where the recordings' server lived
PYTHON = "/srv/venv/bin/python"
FRONTEND = "comfyui-frontend-package"
_RULE = "_" * 72


def package_versions(recorded: list[dict], stale_frontend: str) -> list[dict]:
    """ComfyUI's packages as /system_stats lists them: the frontend is the wheel the stand-in serves (or the
    stale one of the fault), the others as recorded (the stand-in does not install them)."""
    out = [dict(p) for p in recorded]
    for p in out:
        if p["name"] == FRONTEND:
            p["installed"] = stale_frontend or metadata.version(FRONTEND)
    return out


def _records() -> list[tuple[str, str]]:
    """The recorded startup, as (level, message) records: a line without a level tag continues the one before."""
    records: list[tuple[str, str]] = []
    for line in (DATA / "startup_log.txt").read_text().splitlines():
        level, sep, rest = line.partition("] ")
        if line.startswith("[") and sep and level[1:] in ("INFO", "WARNING", "ERROR", "DEBUG"):
            records.append((level[1:], rest))
        elif records:
            records[-1] = (records[-1][0], f"{records[-1][1]}\n{line}")
    return records


def _outdated(installed: str, required: str) -> tuple[str, str]:
    return ("WARNING", f"""{_RULE}
WARNING WARNING WARNING WARNING WARNING

Installed {FRONTEND} version {installed} is lower than the recommended version {required}.

Please install the updated requirements.txt file by running:
{PYTHON} -m pip install -r {COMFYUI_DIR}/requirements.txt
If you are on the portable package you can run: update\\update_comfyui.bat to solve this problem.
{_RULE}""")


def _import_failed(node: str) -> list[tuple[str, str]]:
    path = f"{COMFYUI_DIR}/custom_nodes/{node}"
    missing = f"{node.lower().replace('-', '_')}_dependency"
    return [("WARNING", f"""Traceback (most recent call last):
  File "{COMFYUI_DIR}/nodes.py", line 2263, in load_custom_node
    module_spec.loader.exec_module(module)
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "{path}/__init__.py", line 1, in <module>
    import {missing}
ModuleNotFoundError: No module named '{missing}'
"""), ("WARNING", f"Cannot import {path} module for custom nodes: No module named '{missing}'")]


def startup_log(started: dt.datetime, required_frontend: str, *, stale_frontend: str, broken_custom_node: str) -> str:
    """/internal/logs: the recorded startup, after the faults, as ComfyUI joins its records."""
    out: list[tuple[str, str]] = []
    for level, message in _records():
        if stale_frontend and message.startswith(f"{FRONTEND} version:"):
            out.append(_outdated(stale_frontend, required_frontend))
            continue
        if broken_custom_node and message.startswith("\nImport times for custom nodes:"):
            out += _import_failed(broken_custom_node)
            out.append((level, message))
            out.append((level, f"   0.0 seconds (IMPORT FAILED): {COMFYUI_DIR}/custom_nodes/{broken_custom_node}"))
            continue
        if stale_frontend and message == "Starting server":
            out.append(_outdated(stale_frontend, required_frontend))  # ComfyUI says it again as it starts serving
        out.append((level, message))
    stamp = started.isoformat()
    return "".join(f"{stamp} - {LEVEL_COLOURS.get(level, '')}[{level}]{RESET} {message}\n" for level, message in out)
