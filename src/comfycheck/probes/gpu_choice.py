"""Which source samples ComfyUI's GPU: NVML on the card found by ComfyUI's PID (or the profile's UUID / PCI bus
id, or /system_stats name and size), else ComfyUI's own /system_stats. Shared by the load run and the soak."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..comfy.system_stats import first_gpu
from ..config.profile import Profile
from .gpu import (
    DeviceMatchError,
    GpuUnavailable,
    NvmlSource,
    SystemStatsSource,
    gpu_map_rows,
    inventory,
    load_nvml,
    match_device,
)
from .process import is_loopback, listening_process


@dataclass
class GpuChoice:
    source: NvmlSource | SystemStatsSource
    device_match: str = ""  # how the card was found (NVML only)
    gpu_map: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def choose_source(profile: Profile, client) -> GpuChoice:
    try:
        nvml = load_nvml()
    except GpuUnavailable as exc:
        return GpuChoice(SystemStatsSource(client), notes=[f"{exc}; VRAM sampled from /system_stats, no temperature"])
    gpus = inventory(nvml)
    stats_dev = first_gpu(client.system_stats())
    pids = []
    if is_loopback(profile.comfyui.url):
        found = listening_process(urlsplit(profile.comfyui.url).port or 80)
        pids = [found.pid] if found else []
    g = profile.gpus
    try:
        gpu, how = match_device(gpus, pids=pids, uuid=g.comfyui_uuid,
                                pci_bus_id=g.comfyui_pci_bus_id, stats_device=stats_dev)
    except DeviceMatchError as exc:
        return GpuChoice(SystemStatsSource(client), gpu_map=gpu_map_rows(gpus),
                         notes=[f"NVML: {exc}; VRAM sampled from /system_stats instead, no temperature"])
    gpu.service = "comfyui"
    _mark_forge(profile, gpus)
    return GpuChoice(NvmlSource(nvml, gpu), how, gpu_map_rows(gpus))


def _mark_forge(profile: Profile, gpus) -> None:
    """Put Forge on the GPU map too, where its process (or the profile) says which card it has."""
    if not profile.forge_url:
        return
    forge = urlsplit(profile.forge_url)
    found = listening_process(forge.port or 80) if is_loopback(profile.forge_url) else None
    g = profile.gpus
    try:
        card, _ = match_device(gpus, pids=[found.pid] if found else [], uuid=g.forge_uuid,
                               pci_bus_id=g.forge_pci_bus_id, service="forge")
    except DeviceMatchError:
        return
    if card.service != "comfyui" and (found and found.pid in card.pids or g.forge_uuid or
                                       g.forge_pci_bus_id):
        card.service = "forge"
