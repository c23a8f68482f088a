"""GPU sampling on the right card: NVML (nvidia-ml-py, `import pynvml`) or ComfyUI's /system_stats.

"GPU 0" is ambiguous: CUDA numbers devices fastest first, NVML/nvidia-smi in PCI order. So the card is found by
ComfyUI's PID among each device's compute processes; where NVML shows no processes (WSL, containers) by the
profile's UUID / PCI bus id, then by /system_stats name and memory size, and never by guessing between
identical cards.
"""
from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import ComfycheckError
from ..comfy.system_stats import card_name, gpu_devices
from ..config.units import GiB

SAMPLE_FIELDS = ["t", "source", "device", "mem_used_bytes", "mem_total_bytes", "mem_reserved_bytes",
                 "temp_c", "util_pct", "power_w"]


class GpuUnavailable(ComfycheckError):
    """NVML cannot be used here; the message says why (skips quote it)."""


class DeviceMatchError(ComfycheckError):
    """ComfyUI's card cannot be told apart from the others; the message says why and what to set."""


def load_nvml():
    """pynvml, initialised; GpuUnavailable("NVML unavailable on this host: ...") otherwise."""
    try:
        import pynvml
    except ImportError:
        raise GpuUnavailable("NVML unavailable on this host: nvidia-ml-py is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver, no library, no device
        raise GpuUnavailable(f"NVML unavailable on this host: {exc}") from None
    return pynvml


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class GpuInfo:
    nvml_index: int
    cuda_index: int | None  # estimated: CUDA's default order is fastest first (CUDA_DEVICE_ORDER=FASTEST_FIRST)
    name: str
    uuid: str
    pci_bus_id: str
    memory_total: int
    compute: tuple[int, int] = (0, 0)
    pids: list[int] = field(default_factory=list)
    service: str = ""  # "comfyui", "forge" or ""


def inventory(nvml) -> list[GpuInfo]:
    """Every NVML device with its identities and the PIDs of its compute/graphics processes."""
    gpus = []
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        pids: list[int] = []
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                pids += [p.pid for p in getattr(nvml, getter)(h)]
            except Exception:  # noqa: BLE001 - not supported (WSL, some containers): no per-process data
                pass
        try:
            compute = tuple(nvml.nvmlDeviceGetCudaComputeCapability(h))
        except Exception:  # noqa: BLE001 - an older driver or binding: no capability, the CUDA order is by size
            compute = (0, 0)
        gpus.append(GpuInfo(i, None, _text(nvml.nvmlDeviceGetName(h)), _text(nvml.nvmlDeviceGetUUID(h)),
                            _text(nvml.nvmlDeviceGetPciInfo(h).busId), int(nvml.nvmlDeviceGetMemoryInfo(h).total),
                            compute, sorted(set(pids))))
    # CUDA's FASTEST_FIRST ranks by compute capability, then size; ties keep PCI order (an estimate: say so)
    for cuda, g in enumerate(sorted(gpus, key=lambda g: (-g.compute[0], -g.compute[1], -g.memory_total,
                                                         g.nvml_index))):
        g.cuda_index = cuda
    return gpus


def same_bus(a: str, b: str) -> bool:
    def norm(bus: str) -> str:  # NVML pads the PCI domain with zeros
        return bus.lower().lstrip("0").replace("00000000:", "")

    return norm(a) == norm(b) or a.lower().endswith(b.lower()) or b.lower().endswith(a.lower())


def match_device(gpus: list[GpuInfo], *, pids: Sequence[int] = (), uuid: str = "", pci_bus_id: str = "",
                 stats_device: dict | None = None, service: str = "comfyui") -> tuple[GpuInfo, str]:
    """The card hosting `service`, and how it was matched; DeviceMatchError when it cannot be told."""
    if not gpus:
        raise DeviceMatchError("NVML lists no GPU")
    by_pid = [g for g in gpus if set(pids) & set(g.pids)]
    if len(by_pid) == 1:
        return by_pid[0], f"PID {sorted(set(pids) & set(by_pid[0].pids))[0]} among its compute processes"
    if uuid:
        hit = [g for g in gpus if g.uuid.lower() == uuid.lower()]
        if not hit:
            raise DeviceMatchError(f"no GPU has the UUID {uuid} from the profile; NVML has "
                                   + ", ".join(f"{g.name} {g.uuid}" for g in gpus))
        return hit[0], "the profile's UUID"
    if pci_bus_id:
        hit = [g for g in gpus if same_bus(g.pci_bus_id, pci_bus_id)]
        if not hit:
            raise DeviceMatchError(f"no GPU is on PCI bus {pci_bus_id} from the profile; NVML has "
                                   + ", ".join(f"{g.name} {g.pci_bus_id}" for g in gpus))
        return hit[0], "the profile's PCI bus id"
    if stats_device:
        name = card_name(stats_device.get("name", ""))
        total = int(stats_device.get("vram_total", 0))
        hit = [g for g in gpus
               if g.name == name and (not total or abs(g.memory_total - total) <= 0.03 * g.memory_total)]
        if len(hit) == 1:
            why = "its PID is not among any GPU's processes" if pids else "no PID to look for"
            return hit[0], f"/system_stats name and memory size ({why})"
        if len(hit) > 1:
            raise DeviceMatchError(
                f"{len(hit)} identical {name} cards and ComfyUI's PID is not visible to NVML (WSL or a container?): "
                "refusing to guess; set [gpus] comfyui_uuid (or comfyui_pci_bus_id) in the profile "
                f"(UUIDs: {', '.join(g.uuid for g in hit)})")
    if len(gpus) == 1:
        return gpus[0], "the only GPU"
    raise DeviceMatchError(f"cannot tell which of {len(gpus)} GPUs runs {service}: its PID is not among their "
                           "processes and the profile names no UUID or PCI bus id")


def gpu_map_rows(gpus: list[GpuInfo]) -> list[dict]:
    return [{"nvml": g.nvml_index, "cuda (estimated)": g.cuda_index, "name": g.name, "uuid": g.uuid,
             "pci_bus_id": g.pci_bus_id, "memory_gib": round(g.memory_total / GiB, 1), "service": g.service or "-"}
            for g in gpus]


# --- samples --------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    source: str  # "nvml" or "system_stats"
    device: str
    mem_used_bytes: int
    mem_total_bytes: int
    mem_reserved_bytes: int | None = None
    temp_c: float | None = None
    util_pct: float | None = None
    power_w: float | None = None

    @property
    def used_pct(self) -> float:
        return 100 * self.mem_used_bytes / self.mem_total_bytes if self.mem_total_bytes else 0.0


class NvmlSource:
    name = "nvml"

    def __init__(self, nvml, gpu: GpuInfo):
        self.nvml = nvml
        self.gpu = gpu
        self.handle = nvml.nvmlDeviceGetHandleByIndex(gpu.nvml_index)
        self.device = f"nvml:{gpu.nvml_index} {gpu.name} {gpu.uuid}"

    def sample(self) -> Sample:
        n, h = self.nvml, self.handle
        try:
            mem = n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2)
            reserved = int(mem.reserved)
        except Exception:  # noqa: BLE001 - a binding or driver with the v1 call only: no reserved figure
            mem = n.nvmlDeviceGetMemoryInfo(h)
            reserved = None
        return Sample(time.time(), self.name, self.device, int(mem.used), int(mem.total), reserved,
                      _try(lambda: float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))),
                      _try(lambda: float(n.nvmlDeviceGetUtilizationRates(h).gpu)),
                      _try(lambda: n.nvmlDeviceGetPowerUsage(h) / 1000.0))


def sampled_card(source) -> str | None:
    """The card a run sampled, as NVML names it; None where it sampled /system_stats (or nothing)."""
    return source.gpu.name if isinstance(source, NvmlSource) else None


class SystemStatsSource:
    """ComfyUI's own view (remote hosts, the embedded stack): VRAM only, no temperature."""

    name = "system_stats"

    def __init__(self, client, device_index: int | None = None):
        self.client = client
        self.device_index = device_index
        self.device = "?"
        self.gpu = True  # False once /system_stats shows ComfyUI runs on the CPU: its memory is then RAM

    def sample(self) -> Sample:
        return self.parse(self.client.system_stats())

    def parse(self, stats: dict) -> Sample:
        """The sample a /system_stats answer gives (the soak reuses the answer of its latency probe)."""
        listed = stats.get("devices", [])
        devices = gpu_devices(stats)
        self.gpu = bool(devices)
        devices = devices or listed
        if not devices:
            raise GpuUnavailable("ComfyUI's /system_stats lists no device at all")
        d = next((d for d in devices if d.get("index") == self.device_index), devices[0])
        index = "" if d.get("index") is None else f":{d['index']}"
        self.device = f"system_stats{index} {d.get('name')}"
        total = int(d["vram_total"])
        return Sample(time.time(), self.name, self.device, total - int(d["vram_free"]), total)


def _try(fn: Callable[[], Any]):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a sensor this card does not have
        return None


class Sampler:
    """Samples a source at `hz` in a background thread, streaming every sample to a CSV file.

    Memory stays bounded however long the run: only running aggregates are kept.
    """

    def __init__(self, source, csv_path: Path, hz: float = 10.0):
        self.source = source
        self.path = csv_path
        self.interval = 1.0 / hz
        self.count = 0
        self.errors = 0
        self.last_error = ""
        self.peak: Sample | None = None
        self.max_temp: float | None = None
        self.last: Sample | None = None
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="comfycheck-gpu-sampler", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> Sampler:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join(timeout=10)
        return self

    def _run(self) -> None:
        cpu0, wall0 = time.thread_time(), time.monotonic()
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SAMPLE_FIELDS)
            writer.writeheader()
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    s = self.source.sample()
                except Exception as exc:  # noqa: BLE001 - a missed sample is counted, not fatal
                    self.errors += 1
                    self.last_error = str(exc)
                else:
                    writer.writerow(asdict(s))
                    with self._lock:
                        self.count += 1
                        self.last = s
                        if self.peak is None or s.mem_used_bytes > self.peak.mem_used_bytes:
                            self.peak = s
                        if s.temp_c is not None:
                            self.max_temp = max(self.max_temp or s.temp_c, s.temp_c)
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
            f.flush()
        self.cpu_s = time.thread_time() - cpu0
        self.wall_s = time.monotonic() - wall0

    @property
    def cpu_share_of_one_core(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def read_samples(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
