"""`comfycheck rehearse`, before and after the checks: the weights built and judged, the profile the checks run
with, and an nvidia-smi trace taken beside NVML's own figures (an independent witness of the card's memory)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import IO

import tomli_w

from ..comfy.workflows import load_workflow, models_named
from ..config.paths import PROFILES_DIR, WORKFLOWS_DIR
from ..config.profile import Profile, ProfileError, load_profile
from ..stack import real
from . import SD15_SET, SEED_SET, KitReport, RehearsalError, run_kit

DEFAULT_PROFILE = PROFILES_DIR / "gpu-rehearsal.toml"
CPU_WORKFLOW = "sd15_rehearsal.json"  # the plumbing where there is no GPU: SD1.5, one step, 64x64
SMI_FIELDS = ("timestamp", "index", "uuid", "memory.used", "memory.total", "utilization.gpu", "temperature.gpu",
              "power.draw")


def gpu_here() -> bool:
    """Whether this machine has an NVIDIA GPU ComfyUI can use (nvidia-smi lists one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "GPU " in listed


def prepare(profile_arg: str | None, out: Path, *, fill: str | None, gpu: bool) -> tuple[Path, KitReport]:
    """Build the weights into the profile's [stack] models_dir and have ComfyUI judge them; the profile the
    checks then run with (the seed's graph on a GPU; without one, the SD1.5 plumbing), written into `out`."""
    profile = load_profile(profile_arg or DEFAULT_PROFILE)
    stack = profile.stack
    if stack is None or not (stack.embedded and stack.real and stack.models_dir):
        raise ProfileError(f"profile {profile.path}: a rehearsal needs an embedded stack on real ComfyUI with a "
                           "models folder ([stack] embedded = true, comfyui = \"real\", models_dir)")
    comfyui = real.locate(stack.comfyui_dir, stack.comfyui_python)
    workflow = profile.workflow_path(profile.comfyui.generation_workflow) if gpu else WORKFLOWS_DIR / CPU_WORKFLOW
    out.mkdir(parents=True, exist_ok=True)
    report = run_kit(comfyui, SEED_SET if gpu else SD15_SET, fill=fill or ("random" if gpu else "zeros"),
                     models=stack.models_dir, device="cuda" if gpu else "cpu", validate=workflow)
    (out / "weights.json").write_text(json.dumps({"files": [asdict(f) for f in report.files],
                                                  "validated": report.validated, "valid": report.valid,
                                                  "errors": report.errors}, indent=1))
    if not report.ok:
        wrong = [f"{f.file}: ComfyUI detects {f.detected}, not {f.expected}" for f in report.files if not f.ok]
        raise RehearsalError("the synthetic weights are not what they stand for: "
                             + "; ".join(wrong + report.errors))
    return (profile.path if gpu else _cpu_profile(profile, out, workflow)), report


def _cpu_profile(profile: Profile, out: Path, workflow: Path) -> Path:
    """The rehearsal profile on the SD1.5 plumbing: its workflow, its checkpoint as the model required."""
    import tomllib
    data = tomllib.loads(profile.path.read_text(encoding="utf-8"))
    graph = load_workflow(workflow)
    data["name"] = f"{profile.name}-cpu"
    data["comfyui"] |= {"generation_workflow": workflow.name, "required_models": models_named(graph),
                        "required_nodes": sorted({n["class_type"] for n in graph.values()})}
    data["stack"]["models_dir"] = str(profile.stack.models_dir) if profile.stack else ""
    data["public"]["ca_bundle"] = str(profile.ca_bundle)
    path = out / "profile.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


class NvidiaSmiTrace:
    """nvidia-smi sampling the cards every half second into a CSV, beside the run (not through NVML: a witness)."""

    def __init__(self, path: Path):
        self.path = path
        self.proc: subprocess.Popen | None = None
        self.out: IO[str] | None = None

    def start(self) -> NvidiaSmiTrace:
        smi = shutil.which("nvidia-smi")
        if smi is not None:
            self.out = open(self.path, "w")  # closed in stop()
            self.proc = subprocess.Popen([smi, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,nounits",
                                          "-lms", "500"], stdout=self.out, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> dict:
        """Each card's peak memory used (MiB), temperature (°C), utilisation (%) and power (W) in the trace."""
        if self.proc is None:
            return {}
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.out is not None:
            self.out.close()
        peaks: dict[str, dict[str, float]] = {}
        with open(self.path, newline="") as f:
            for row in csv.DictReader(f, skipinitialspace=True):
                card = peaks.setdefault(row.get("uuid", "?"), {})
                for field in ("memory.used [MiB]", "temperature.gpu", "utilization.gpu [%]", "power.draw [W]"):
                    try:
                        card[field] = max(card.get(field, 0.0), float(row.get(field) or "nan"))
                    except ValueError:
                        continue
        return peaks
