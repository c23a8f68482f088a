"""What a run of a workflow produced (RunResult, its WebSocket messages) and ComfyUI's 400 body as text."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("execution_success", "execution_error", "execution_interrupted")


def created_ms(history_entry: dict) -> int | None:
    """ComfyUI's create_time (ms) of a /history entry: its prompt's extra_data, the entry's prompt[3]."""
    return ((history_entry.get("prompt") or [None] * 4)[3] or {}).get("create_time")


def format_prompt_error(body: Any, workflow: dict | None = None) -> str:
    """ComfyUI's 400 body (error + node_errors) as lines a person can act on."""
    if not isinstance(body, dict):
        return f"prompt rejected: {body!r}"
    err = body.get("error") or {}
    if isinstance(err, str):
        err = {"message": err}
    head = f"prompt rejected: {err.get('type', '?')}: {err.get('message', '')}"
    if err.get("details"):
        head += f" ({err['details']})"
    lines = [head]
    for node_id, info in (body.get("node_errors") or {}).items():
        class_type = info.get("class_type") or (workflow or {}).get(node_id, {}).get("class_type", "?")
        for e in info.get("errors", []):
            detail = f": {e['details']}" if e.get("details") else ""
            lines.append(f"  node {node_id} ({class_type}): {e.get('type')}: {e.get('message')}{detail}")
    return "\n".join(lines)


@dataclass
class WsMessage:
    t_ms: float  # client receive time, ms after POST /prompt was sent
    type: str
    data: dict


@dataclass
class RunResult:
    prompt_id: str
    number: int
    client_id: str
    status: str  # "success" | "error" | "interrupted"
    messages: list[WsMessage]
    outputs: dict[str, Any]
    server_ms: dict[str, int]  # ComfyUI's own ms timestamps: create_time, execution_start, the terminal one
    client_post_ms: float  # wall ms from sending POST /prompt to its response
    client_terminal_ms: float | None  # wall ms from sending POST /prompt to the terminal WS message
    error: dict | None = None
    history: dict = field(default_factory=dict)
    submitted_at: float = 0.0  # wall clock (epoch s) when POST /prompt was sent, beside ComfyUI's ms timestamps

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def message_types(self) -> list[str]:
        return [m.type for m in self.messages]

    @property
    def cached_nodes(self) -> list[str]:
        for m in self.messages:
            if m.type == "execution_cached":
                return list(m.data.get("nodes", []))
        return []

    @property
    def server_execution_ms(self) -> int | None:
        """Execution start to the terminal event, by ComfyUI's own clock."""
        end = self.server_ms.get(f"execution_{self.status}")
        start = self.server_ms.get("execution_start")
        return end - start if end is not None and start is not None else None

    @property
    def server_total_ms(self) -> int | None:
        """Prompt creation (queued) to the terminal event, by ComfyUI's own clock."""
        end = self.server_ms.get(f"execution_{self.status}")
        create = self.server_ms.get("create_time")
        return end - create if end is not None and create is not None else None

    def images(self) -> list[dict]:
        found = []
        for out in self.outputs.values():
            found.extend(out.get("images", []))
        return found

    def failure_message(self) -> str:
        if self.ok:
            return ""
        e = self.error or {}
        if self.status == "error":
            return (
                f"generation {self.prompt_id} failed: execution_error at node {e.get('node_id')} "
                f"({e.get('node_type')}): {e.get('exception_type')}: "
                f"{str(e.get('exception_message', '')).strip()}"
            )
        return (
            f"generation {self.prompt_id} was interrupted at node {e.get('node_id')} ({e.get('node_type')})"
        )
