"""Unit tests of GPU device matching and sampling, on a fake NVML binding (pynvml's interface)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from comfycheck.comfy.system_stats import card_name
from comfycheck.config.units import GiB, MiB
from comfycheck.polling import wait_until
from comfycheck.probes import gpu
from comfycheck.probes.gpu import DeviceMatchError, NvmlSource, Sampler, inventory, match_device, read_samples


class FakeNvml:
    """The subset of pynvml comfycheck uses; devices in NVML (PCI) order."""

    NVML_TEMPERATURE_GPU = 0
    nvmlMemory_v2 = 2

    def __init__(self, devices, processes_visible=True):
        self.devices = devices
        self.processes_visible = processes_visible

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetName(self, h):
        return h["name"].encode()  # older bindings return bytes

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"]

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=h["bus"])

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        return SimpleNamespace(total=h["total"], used=h.get("used", GiB), free=h["total"] - h.get("used", GiB),
                               reserved=300 * MiB)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if not self.processes_visible:
            raise RuntimeError("Not Supported")  # WSL: no per-process data
        return [SimpleNamespace(pid=p, usedGpuMemory=GiB) for p in h.get("pids", [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return []

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return h["cc"]

    def nvmlDeviceGetTemperature(self, h, sensor):
        return h.get("temp", 35)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=50)

    def nvmlDeviceGetPowerUsage(self, h):
        return 120_000


# the reference host: the 3080 Ti sits first on the PCI bus, the 3090 second; CUDA puts the 3090 first
REFERENCE = [
    {"name": "NVIDIA GeForce RTX 3080 Ti", "uuid": "GPU-aaaa", "bus": "00000000:01:00.0", "total": 12 * GiB,
     "cc": (8, 6), "pids": [7860]},
    {"name": "NVIDIA GeForce RTX 3090", "uuid": "GPU-bbbb", "bus": "00000000:02:00.0", "total": 24 * GiB,
     "cc": (8, 6), "pids": [8188]},
]
STATS_3090 = {"name": "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync", "vram_total": 24 * GiB - 200 * MiB}


def test_found_by_pid_whatever_the_numbering():
    gpus = inventory(FakeNvml(REFERENCE))
    found, how = match_device(gpus, pids=[8188])
    assert (found.name, found.nvml_index) == ("NVIDIA GeForce RTX 3090", 1) and "PID 8188" in how


def test_cuda_and_nvml_orders_are_reported_apart():
    gpus = {g.name: g for g in inventory(FakeNvml(REFERENCE))}
    assert gpus["NVIDIA GeForce RTX 3090"].nvml_index == 1 and gpus["NVIDIA GeForce RTX 3090"].cuda_index == 0
    assert gpus["NVIDIA GeForce RTX 3080 Ti"].nvml_index == 0 and gpus["NVIDIA GeForce RTX 3080 Ti"].cuda_index == 1


def test_pid_missing_falls_back_to_system_stats_name_and_size():
    gpus = inventory(FakeNvml(REFERENCE, processes_visible=False))
    found, how = match_device(gpus, pids=[8188], stats_device=STATS_3090)
    assert found.uuid == "GPU-bbbb" and "/system_stats name and memory size" in how
    assert "PID is not among any GPU's processes" in how


def test_identical_cards_without_pid_are_refused_with_the_fix():
    twins = [dict(REFERENCE[1], uuid="GPU-1111", bus="00000000:01:00.0"),
             dict(REFERENCE[1], uuid="GPU-2222", bus="00000000:02:00.0")]
    gpus = inventory(FakeNvml(twins, processes_visible=False))
    with pytest.raises(DeviceMatchError, match="2 identical NVIDIA GeForce RTX 3090 cards .* refusing to guess; "
                                               "set \\[gpus\\] comfyui_uuid"):
        match_device(gpus, pids=[8188], stats_device=STATS_3090)
    found, how = match_device(gpus, pids=[8188], uuid="gpu-2222", stats_device=STATS_3090)
    assert found.uuid == "GPU-2222" and how == "the profile's UUID"
    found, _ = match_device(gpus, pci_bus_id="01:00.0")
    assert found.uuid == "GPU-1111"


def test_unknown_uuid_lists_what_is_there():
    with pytest.raises(DeviceMatchError, match="no GPU has the UUID GPU-zzzz .* GPU-aaaa"):
        match_device(inventory(FakeNvml(REFERENCE)), uuid="GPU-zzzz")


def test_stats_device_name_parsing():
    assert card_name("cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync") == "NVIDIA GeForce RTX 3090"
    assert card_name("cuda:1 NVIDIA GeForce RTX 3080 Ti : native") == "NVIDIA GeForce RTX 3080 Ti"
    assert card_name("cuda:0 NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3" and card_name("cpu") == "cpu"


def test_sampler_streams_to_csv_and_keeps_only_aggregates(tmp_path):
    nvml = FakeNvml([dict(REFERENCE[1], used=3 * GiB, temp=41)])
    g = inventory(nvml)[0]
    sampler = Sampler(NvmlSource(nvml, g), tmp_path / "samples.csv", hz=50).start()
    wait_until(lambda: sampler.count >= 5, timeout=5, interval=0.02, what="5 samples")
    nvml.devices[0]["used"] = 9 * GiB
    target = sampler.count + 3
    wait_until(lambda: sampler.count >= target, timeout=5, interval=0.02, what="3 more samples")
    sampler.stop()
    rows = read_samples(tmp_path / "samples.csv")
    assert len(rows) == sampler.count >= 8 and rows[0]["source"] == "nvml"
    assert sampler.peak is not None and sampler.peak.mem_used_bytes == 9 * GiB and sampler.max_temp == 41
    assert rows[0]["mem_reserved_bytes"] == str(300 * MiB) and rows[0]["power_w"] == "120.0"
    assert not hasattr(sampler, "samples")  # nothing accumulates in memory


def test_nvml_unavailable_says_so(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pynvml(name, *a, **kw):
        if name == "pynvml":
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    with pytest.raises(gpu.GpuUnavailable, match="NVML unavailable on this host"):
        gpu.load_nvml()



H200 = [{"name": "NVIDIA H200", "uuid": "GPU-cccc", "bus": "00000000:19:00.0", "total": 141 * GiB, "cc": (9, 0),
         "pids": [8188]}]


@pytest.mark.parametrize("names, differ", [
    ({"comfyui": "NVIDIA GeForce RTX 3090"}, "comfyui = 'NVIDIA GeForce RTX 3090'"),
    ({"comfyui_uuid": "GPU-bbbb"}, "comfyui_uuid = 'GPU-bbbb'"),
    ({"comfyui_pci_bus_id": "02:00.0"}, "comfyui_pci_bus_id = '02:00.0'"),
    ({"comfyui": "NVIDIA H200", "comfyui_uuid": "gpu-CCCC", "comfyui_pci_bus_id": "0000:19:00.0"}, ""),
    ({"comfyui": "h200"}, ""),  # an operator's shorthand for the same card is no false alarm
    ({"comfyui": "NVIDIA H200 NVL"}, "comfyui = 'NVIDIA H200 NVL'"),  # another model is
])
def test_the_card_comfyuis_pid_is_on_is_held_to_the_profiles_names(monkeypatch, make_profile, names, differ):
    """Found by ComfyUI's PID alone, never by the profile's names; a load run samples it and says so."""
    from comfycheck.config.profile import load_profile
    from comfycheck.probes import gpu_choice

    monkeypatch.setattr(gpu_choice, "load_nvml", lambda: FakeNvml(H200))
    monkeypatch.setattr(gpu_choice, "comfyui_pids", lambda profile: [8188])
    profile = load_profile(make_profile({"gpus": {"comfyui": "", **names}}))
    seen = gpu_choice.card_seen(profile, {"devices": []})
    assert seen is not None and (seen.name, seen.uuid) == ("NVIDIA H200", "GPU-cccc") and "PID 8188" in seen.how
    assert gpu_choice.card_mismatch(profile.gpus, seen.name, seen.uuid, seen.pci_bus_id) == differ

    stats = {"devices": [{"name": "cuda:0 NVIDIA H200 : cudaMallocAsync", "type": "cuda", "vram_total": 141 * GiB,
                          "vram_free": 140 * GiB, "torch_vram_total": 0, "torch_vram_free": 0, "index": 0}]}
    choice = gpu_choice.choose_source(profile, SimpleNamespace(system_stats=lambda: stats))
    notes = " ".join(choice.notes)
    assert "sampled NVIDIA H200 (GPU-cccc, PCI bus 00000000:19:00.0, NVML index 0), found by PID 8188" in notes, notes
    assert (f"the profile's [gpus] {differ} is not the card ComfyUI runs on" in notes) == bool(differ), notes


def _run_on_a_big_card(*, nvml: bool) -> tuple[list[dict], list]:
    """An H200-like run: 141 GB card, ~41 GB idle, 48 GB in each of 10 generations (a cold first one), 37-41 °C."""
    from comfycheck.load.samples import Generation
    t0, t = 1_700_000_000.0, 1_700_000_005.0
    gens = []
    for n in range(10):
        wall = 12.0 if n == 0 else 2.2
        gens.append(Generation(n + 1, True, wall, wall, f"p{n}", cold=n == 0, started=t))
        t += wall + 0.3
    rows, x = [], t0
    while x < t + 5:
        active = any(g.started <= x <= g.started + g.wall_s for g in gens)
        row = {"t": x, "mem_used_bytes": int((48 if active else 41) * 1e9), "mem_total_bytes": int(141e9)}
        if nvml:
            row |= {"temp_c": 41 if active else 37, "util_pct": 30 if active else 0, "power_w": 300 if active else 80}
        rows.append(row)
        x += 0.25
    return rows, gens


@pytest.mark.parametrize("nvml", [True, False])
def test_the_load_timeline_reads_on_a_big_card(nvml, tmp_path):
    """VRAM on an axis that fits what was used (not 0-150 GB for a 41-48 GB run), the target above it named, each
    generation shaded, utilisation and power in their own panel where NVML gave them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from comfycheck.config.paths import DEFAULT_PROFILE
    from comfycheck.config.profile import load_profile
    from comfycheck.load.timeline import timeline
    rows, gens = _run_on_a_big_card(nvml=nvml)
    drawn = timeline(plt, tmp_path / "timeline.png", "nvml: NVIDIA H200", rows,
                     gens, load_profile(DEFAULT_PROFILE).targets)
    assert 48 < drawn["vram_top_gb"] < 70, drawn
    assert drawn["off_scale"] == ["80 % of the card (112.8 GB) above the scale"], drawn
    assert drawn["spans"] == 10 and drawn["busy"] is nvml
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
