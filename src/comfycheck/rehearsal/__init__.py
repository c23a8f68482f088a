"""The GPU rehearsal: synthetic weights of the production model's architecture, so every GPU check can run on a new
box before the real model has downloaded. kit.py runs in ComfyUI's own Python (its classes, its detection); this
module runs it and reads what it says."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .. import ComfycheckError
from ..stack.real import RealComfyUI

KIT = Path(__file__).with_name("kit.py")
SEED_SET = "qwen-edit"  # the deployment's own: Qwen-Image-Edit-2509 fp8, Qwen2.5-VL 7B fp8, the Qwen-Image VAE
SD15_SET = "sd15"  # a small real architecture for the plumbing where the seed's set is too big (a CPU)


class RehearsalError(ComfycheckError):
    """The kit could not run, or said nothing this module understands; the message has its last words."""


@dataclass(frozen=True)
class SyntheticFile:
    file: str
    folder: str
    params: int
    bytes: int
    detected: str  # what ComfyUI's own detection says the file is
    expected: str
    ok: bool
    path: str = ""


@dataclass
class KitReport:
    files: list[SyntheticFile] = field(default_factory=list)
    validated: str = ""  # the workflow ComfyUI was asked to accept, if any
    valid: bool | None = None
    errors: list[str] = field(default_factory=list)  # ComfyUI's validation errors
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and all(f.ok for f in self.files) and self.valid is not False


def run_kit(comfyui: RealComfyUI, weight_set: str, *, fill: str = "meta", models: Path | None = None,
            device: str = "cpu", validate: Path | None = None, build: bool = True, only: tuple[str, ...] = (),
            timeout: float = 900) -> KitReport:
    """Run kit.py with ComfyUI's Python: build `weight_set` (`fill`: meta, zeros or random; `only`: those model
    folders' files) into `models`, and have ComfyUI validate the workflow `validate` against it."""
    cmd = [str(comfyui.python), str(KIT), "--comfyui", str(comfyui.directory), "--set", weight_set, "--fill", fill,
           "--device", device]
    cmd += ["--models", str(models)] if models is not None else []
    cmd += ["--validate", str(validate)] if validate is not None else []
    cmd += [] if build else ["--no-build"]
    cmd += [arg for folder in only for arg in ("--only", folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RehearsalError(f"the weights kit ({weight_set}, {fill}) did not finish within {timeout:g} s") from None
    report = KitReport(exit_code=done.returncode)
    for line in done.stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # ComfyUI's own prints
        if "error" in row:
            raise RehearsalError(f"the weights kit with {comfyui.python}: {row['error']}")
        if "validate" in row:
            report.validated, report.valid, report.errors = row["validate"], row["ok"], row["errors"]
        elif "file" in row:
            report.files.append(SyntheticFile(**row))
    if done.returncode not in (0, 1) or (build and not report.files):
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise RehearsalError(f"the weights kit ({' '.join(cmd[1:])}) exited {done.returncode}: {tail}")
    return report
