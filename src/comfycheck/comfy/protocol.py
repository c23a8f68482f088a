"""What ComfyUI's WebSocket protocol promises about one prompt's messages, as checkable rules."""
from __future__ import annotations

from .client import RunResult


def protocol_problems(result: RunResult) -> list[str]:
    """Every way this run's messages break the order a real ComfyUI server keeps (empty when none)."""
    types = [t for t in result.message_types if t != "status"]
    problems = []
    if not types or types[0] != "execution_start":
        problems.append(f"first message is {types[:1]}, expected execution_start")
    if "execution_cached" not in types or types.index("execution_cached") != 1:
        problems.append("execution_cached does not directly follow execution_start")
    terminal = f"execution_{result.status}"
    if terminal not in types:
        problems.append(f"no {terminal} message")
    last = result.messages[-1] if result.messages else None
    if last is None or last.type != "executing" or last.data.get("node") is not None:
        problems.append("the last message is not `executing` with node null")
    started: set[str] = set()
    for m in result.messages:
        if m.type == "executing" and m.data.get("node"):
            started.add(m.data["node"])
        if m.type == "executed" and m.data["node"] not in started and m.data["node"] not in result.cached_nodes:
            problems.append(f"node {m.data['node']} reported `executed` before `executing`")
    ms = result.server_ms
    if result.ok and not (ms.get("create_time", 0) <= ms.get("execution_start", 0) <= ms.get("execution_success", 0)):
        problems.append(f"server timestamps out of order: {ms}")
    return problems
