"""What ComfyUI's /system_stats answer says about its devices: which of them are GPUs, and each one's card."""
from __future__ import annotations

import re

_DEVICE = re.compile(r"^\S+:\d+\s+(.*?)\s*(?::\s*\S+.*)?$")


def gpu_devices(stats: dict) -> list[dict]:
    """The GPUs among the devices ComfyUI lists (a ComfyUI started with --cpu lists only the cpu device)."""
    return [d for d in stats.get("devices") or [] if isinstance(d, dict) and d.get("type") != "cpu"]


def first_gpu(stats: dict) -> dict | None:
    """The GPU ComfyUI runs on (the first one it lists), or None on the CPU."""
    gpus = gpu_devices(stats)
    return gpus[0] if gpus else None


def card_name(device_name: str) -> str:
    """The card in ComfyUI's device name: 'cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync' -> 'NVIDIA GeForce
    RTX 3090'."""
    m = _DEVICE.match(str(device_name))
    return (m.group(1) if m else str(device_name)).strip()
