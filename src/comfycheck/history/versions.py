"""The versions a run saw: ComfyUI's, its frontend's, torch's, the GPU's, and comfycheck's own.

A ComfyUI update is the usual cause of a change from one night to the next, so every run records them."""
from __future__ import annotations

import functools
import subprocess

from .. import __version__
from ..comfy import packages
from ..comfy.system_stats import card_name, gpu_devices
from ..config.paths import IN_CHECKOUT, PROJECT_ROOT


def from_system_stats(stats: dict) -> dict[str, str]:
    """What /system_stats says: ComfyUI, each of its own packages as installed (the frontend among them), torch,
    Python and the first GPU."""
    system = stats.get("system") or {}
    gpus = gpu_devices(stats)
    seen = {
        "comfyui": system.get("comfyui_version"),
        "torch": system.get("pytorch_version"),
        "python": str(system.get("python_version") or "").split(" ")[0] or None,
        "gpu": card_name(gpus[0]["name"]) if gpus else ("cpu" if stats.get("devices") else None),
    }
    listed = packages.listed(stats)
    if listed is None:  # an older ComfyUI: the frontend it requires is what it would serve
        seen[packages.FRONTEND] = packages.required_frontend(stats)
    for p in listed or []:
        seen[p.name] = p.installed or "not installed"
    return {k: str(v) for k, v in seen.items() if v}


def of_run(stats: dict, *, gpu: str | None = None, custom_nodes: str | None = None) -> dict[str, str]:
    """The versions record of one run, whatever the run (pytest, load, class, soak): what /system_stats says, the
    card the run sampled where it sampled one through NVML (its name as NVML gives it, over ComfyUI's), the custom
    nodes where the run saw them, and comfycheck's own version."""
    seen = from_system_stats(stats)
    if gpu:
        seen["gpu"] = gpu
    if custom_nodes is not None and seen:
        seen["custom_nodes"] = custom_nodes
    return {**seen, "comfycheck": comfycheck()}


FAILED_TO_IMPORT = " (failed to import)"


def of_custom_nodes(loaded: list[str], failed: list[str]) -> str:
    """The custom nodes a run saw, as one version string: their names (ComfyUI says no versions of them)."""
    return ", ".join([*loaded, *(f"{name}{FAILED_TO_IMPORT}" for name in failed)]) or "none"


@functools.cache
def comfycheck() -> str:
    """comfycheck's version, with the checkout's commit where it runs from its own git checkout: an installed copy
    (site-packages, perhaps inside somebody's repository) has no commit, never the enclosing repository's."""
    version = __version__
    if not (IN_CHECKOUT and (PROJECT_ROOT / ".git").exists()):
        return version
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{version} ({commit})" if commit else version
