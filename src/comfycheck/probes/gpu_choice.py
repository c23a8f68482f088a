"""Which source samples ComfyUI's GPU: NVML on the card found by ComfyUI's PID (or the profile's UUID / PCI bus
id, or /system_stats name and size), else ComfyUI's own /system_stats. Shared by the load run and the soak."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..comfy.system_stats import card_name, first_gpu
from ..config.hosts import is_loopback
from ..config.profile import Profile
from ..config.settings import GpuSettings
from .gpu import (
    DeviceMatchError,
    GpuInfo,
    GpuUnavailable,
    NvmlSource,
    SystemStatsSource,
    gpu_map_rows,
    inventory,
    load_nvml,
    match_device,
    same_bus,
)
from .process import listening_process


@dataclass
class GpuChoice:
    source: NvmlSource | SystemStatsSource
    device_match: str = ""  # how the card was found (NVML only)
    gpu_map: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def names_a_card(g: GpuSettings) -> bool:
    return bool(g.comfyui or g.comfyui_uuid or g.comfyui_pci_bus_id)


def card_mismatch(g: GpuSettings, name: str, uuid: str = "", pci_bus_id: str = "") -> str:
    """How the profile's [gpus] names for ComfyUI's card differ from the card it runs on (only what is known of
    that card is compared); '' when they agree."""
    differ = []
    if g.comfyui and name and _model(g.comfyui) != _model(name):
        differ.append(f"comfyui = {g.comfyui!r}")
    if g.comfyui_uuid and uuid and g.comfyui_uuid.lower() != uuid.lower():
        differ.append(f"comfyui_uuid = {g.comfyui_uuid!r}")
    if g.comfyui_pci_bus_id and pci_bus_id and not same_bus(g.comfyui_pci_bus_id, pci_bus_id):
        differ.append(f"comfyui_pci_bus_id = {g.comfyui_pci_bus_id!r}")
    return ", ".join(differ)


def _model(name: str) -> str:
    """A card's model, whoever wrote it: 'RTX 3090' is 'NVIDIA GeForce RTX 3090' (but not 'RTX 3090 Ti')."""
    words = card_name(name).lower().split()
    return " ".join(w for w in words if w not in ("nvidia", "geforce"))


def describe_card(gpu: GpuInfo) -> str:
    return f"{gpu.name} ({gpu.uuid}, PCI bus {gpu.pci_bus_id}, NVML index {gpu.nvml_index})"


def comfyui_pids(profile: Profile) -> list[int]:
    """ComfyUI's PID where it listens on this host; [] for a remote one."""
    if not is_loopback(profile.comfyui.url):
        return []
    found = listening_process(urlsplit(profile.comfyui.url).port or 80)
    return [found.pid] if found else []


@dataclass(frozen=True)
class CardSeen:
    """The card ComfyUI runs on, as far as this host can tell."""
    name: str
    uuid: str = ""
    pci_bus_id: str = ""
    how: str = ""

    def describe(self) -> str:
        ids = ", ".join(x for x in (self.uuid, f"PCI bus {self.pci_bus_id}" if self.pci_bus_id else "") if x)
        return f"{self.name}{f' ({ids})' if ids else ''}"


def card_seen(profile: Profile, stats: dict) -> CardSeen | None:
    """NVML's card holding ComfyUI's process (its PID, never the profile's own names: they are what is checked),
    else the card ComfyUI names in /system_stats; None where it runs on the CPU."""
    pids = comfyui_pids(profile)
    try:
        gpus = inventory(load_nvml()) if pids else []
    except GpuUnavailable:
        gpus = []
    by_pid = [g for g in gpus if set(pids) & set(g.pids)]
    if len(by_pid) == 1:
        g = by_pid[0]
        return CardSeen(g.name, g.uuid, g.pci_bus_id, f"NVML: ComfyUI's PID {pids[0]} among its processes")
    device = first_gpu(stats)
    if device is None:
        return None
    return CardSeen(card_name(device.get("name", "")), how="ComfyUI's own /system_stats (NVML cannot see its "
                    "process from here: its UUID and PCI bus id are not checked)")


def choose_source(profile: Profile, client) -> GpuChoice:
    try:
        nvml = load_nvml()
    except GpuUnavailable as exc:
        return GpuChoice(SystemStatsSource(client), notes=[f"{exc}; VRAM sampled from /system_stats, no temperature"])
    gpus = inventory(nvml)
    stats_dev = first_gpu(client.system_stats())
    g = profile.gpus
    try:
        gpu, how = match_device(gpus, pids=comfyui_pids(profile), uuid=g.comfyui_uuid,
                                pci_bus_id=g.comfyui_pci_bus_id, stats_device=stats_dev)
    except DeviceMatchError as exc:
        return GpuChoice(SystemStatsSource(client), gpu_map=gpu_map_rows(gpus),
                         notes=[f"NVML: {exc}; VRAM sampled from /system_stats instead, no temperature"])
    gpu.service = "comfyui"
    _mark_forge(profile, gpus)
    notes = [f"sampled {describe_card(gpu)}, found by {how}"]
    differ = card_mismatch(g, gpu.name, gpu.uuid, gpu.pci_bus_id)
    if differ:
        notes.append(f"the profile's [gpus] {differ} is not the card ComfyUI runs on: the samples are of the card "
                     "it really uses (test_comfyui_runs_on_the_card_the_profile_names fails on it)")
    return GpuChoice(NvmlSource(nvml, gpu), how, gpu_map_rows(gpus), notes)


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
