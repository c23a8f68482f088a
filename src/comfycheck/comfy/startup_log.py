"""What ComfyUI's own log says about its start: the custom nodes that failed to import (with the error it logged),
the built-in nodes that did, and the command it suggests for a half-done update.

The log is the one ComfyUI serves at /internal/logs on the backend: its last 300 records, each "<time> - <record>",
with the level tags coloured (ANSI). After enough prompts the startup has scrolled out of it: `holds_startup`
then says so, and nothing is concluded from it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)? - ", re.M)
_LEVEL = re.compile(r"^\[(?:DEBUG|DETAIL|INFO|WARNING|ERROR|CRITICAL)\] ", re.M)
_CANNOT_IMPORT = re.compile(r"^Cannot import (?P<path>.+?) module for custom nodes: (?P<error>.*)$")
_IMPORT_TIME_FAILED = re.compile(r"^\s*[\d.]+ seconds \(IMPORT FAILED\): (?P<path>.+)$")
_BUILTIN_FAILED = re.compile(r"^IMPORT FAILED: (?P<node>.+)$")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (?P<message>.*)$")
BEGUN = "ComfyUI version: "  # logged early in the start, before any node is imported
STARTED = "Starting server"  # logged once the nodes are loaded
LOG_CAPACITY = 300  # records ComfyUI keeps (app.logger.setup_logger's default)


@dataclass(frozen=True)
class FailedImport:
    """A custom node ComfyUI could not import: its folder (or .py file) and the error, as ComfyUI logged them."""

    node: str  # its name under custom_nodes
    path: str
    error: str  # "ModuleNotFoundError: No module named 'x'", or ComfyUI's own line where no traceback is left
    where: str = ""  # the node's own file and line the error was raised at

    def describe(self) -> str:
        return f"{self.node} ({self.error}{f', at {self.where}' if self.where else ''})"


@dataclass
class StartupLog:
    lines: list[str]
    failed_custom_nodes: list[FailedImport] = field(default_factory=list)
    failed_builtin: list[str] = field(default_factory=list)  # comfy_extras / API nodes: "nodes_x.py"
    requirements_command: str | None = None  # the pip command ComfyUI prints for an outdated package

    @property
    def holds_startup(self) -> bool:
        """The log still reaches back to the start, and the start is over: every node import is in it."""
        return any(line.startswith(BEGUN) for line in self.lines) and any(
            line.startswith(STARTED) for line in self.lines)


def clean(raw: str) -> list[str]:
    """The log's lines without colours, timestamps and level tags."""
    text = _LEVEL.sub("", _STAMP.sub("", _ANSI.sub("", raw)))
    return text.splitlines()


def parse(raw: str) -> StartupLog:
    lines = clean(raw)
    log = StartupLog(lines)
    seen: dict[str, FailedImport] = {}
    for n, line in enumerate(lines):
        if m := _CANNOT_IMPORT.match(line):
            path = m["path"]
            error, where = _traceback_before(lines, n, path)
            seen[path] = FailedImport(_name(path), path, error or m["error"], where)
        elif (m := _IMPORT_TIME_FAILED.match(line)) and m["path"] not in seen:
            seen[m["path"]] = FailedImport(_name(m["path"]), m["path"], "import failed (its traceback has left "
                                                                        "the log)")
        elif m := _BUILTIN_FAILED.match(line):
            if m["node"] not in log.failed_builtin:
                log.failed_builtin.append(m["node"])
        elif line.startswith("Please install the updated requirements.txt file by running:") and n + 1 < len(lines):
            log.requirements_command = lines[n + 1].strip() or None
    log.failed_custom_nodes = list(seen.values())
    return log


def _traceback_before(lines: list[str], end: int, node_path: str) -> tuple[str, str]:
    """The exception line and the node's own frame of the traceback ComfyUI logs just before 'Cannot import'."""
    start = end
    while start > 0 and not lines[start].startswith("Traceback (most recent call last):"):
        start -= 1
        if end - start > 200:
            return "", ""
    if not lines[start].startswith("Traceback"):
        return "", ""
    block = lines[start:end]
    error = next((line for line in reversed(block) if _EXCEPTION.match(line)), "")
    where = ""
    for line in block:
        if (f := _FRAME.match(line)) and f["file"].startswith(node_path):
            where = f"{PurePath(f['file']).name}, line {f['line']}"
    return error, where


def _name(path: str) -> str:
    return PurePath(path.rstrip("/\\")).name or path
