"""`comfycheck rehearse [--profile gpu-rehearsal.toml]`: a new GPU box rehearsed before the production model is
there. The seed's weights are built from ComfyUI's own classes into the profile's models folder (random on a GPU,
judged by ComfyUI's detection and validation); the GPU layers run on them (the backend checks, the 10-generation
load run with NVML, a class run) on real ComfyUI in the embedded stack; nvidia-smi traces the cards beside NVML.
One folder: report.html (the checks, with the load and class runs embedded), weights.json, nvidia-smi.csv,
rehearsal.json. Without a GPU the same plumbing runs on an SD1.5 checkpoint, one step, 64x64, on the CPU."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import ComfycheckError, exitcodes
from ..config.paths import TESTS_DIR, new_report_dir
from ..rehearsal.runner import NvidiaSmiTrace, gpu_here, prepare
from .jobs import pytest_command, run_pytest

SEED_512 = "test_qwen_edit_generation_512"


def _vram_figures(measurements: Path) -> dict[str, str]:
    """The checks' own VRAM figures (NVML where it sees the card), to set beside nvidia-smi's trace."""
    try:
        rows = json.loads(measurements.read_text())
    except (OSError, ValueError):
        return {}
    return {m["name"]: f"{m['value']} {m['unit']}" if m.get("value") is not None else (m.get("not_assessed") or "-")
            for m in rows if "VRAM" in m.get("name", "")}


def rehearse(profile_arg: str | None, fill: str | None, rest: list[str]) -> int:
    out = new_report_dir("rehearsal")
    gpu = gpu_here()
    print(f"comfycheck rehearse: {'a GPU: the seed' if gpu else 'no GPU: the SD1.5 plumbing on the CPU'}; "
          f"report folder {out}", flush=True)
    try:
        profile_path, kit = prepare(profile_arg, out, fill=fill, gpu=gpu)
    except ComfycheckError as exc:
        print(f"comfycheck rehearse: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    for f in kit.files:
        print(f"  {f.folder}/{f.file}: {f.params / 1e9:.2f} B parameters, {f.bytes / 1e9:.2f} GB; ComfyUI detects "
              f"{f.detected}", flush=True)
    print(f"  {kit.validated}: ComfyUI's validation accepts it against these files", flush=True)
    trace = NvidiaSmiTrace(out / "nvidia-smi.csv").start()
    selection = [str(TESTS_DIR / "acceptance" / "test_backend.py"), str(TESTS_DIR / "load")]
    if not gpu:  # the plumbing's image is 64x64: the seed's 512x512 check is the GPU rehearsal's
        selection += ["--deselect", f"tests/acceptance/test_backend.py::{SEED_512}"]  # a node id: from the rootdir
    cmd = pytest_command("check", str(profile_path), ["-n", "0", "--allow-load", f"--html={out / 'report.html'}",
                                                      "--self-contained-html", *rest], selection=selection)
    try:
        code = run_pytest(cmd)
    finally:
        peaks = trace.stop()
    nvml = _vram_figures(out / "measurements.json")
    (out / "rehearsal.json").write_text(json.dumps({"gpu": gpu, "profile": str(profile_path), "exit": code,
                                                    "nvidia_smi_peaks": peaks, "nvml_vram": nvml}, indent=1))
    for name, figure in nvml.items():
        print(f"  the checks (NVML, else /system_stats): {name}: {figure}")
    for card, peak in peaks.items():
        print(f"  nvidia-smi, {card}: peak {peak.get('memory.used [MiB]', 0):.0f} MiB used, "
              f"{peak.get('temperature.gpu', 0):.0f} °C, {peak.get('utilization.gpu [%]', 0):.0f} % busy, "
              f"{peak.get('power.draw [W]', 0):.0f} W")
    print(f"comfycheck rehearse: exit {code}; report {out / 'report.html'}")
    return code
