"""Forge checklist: Forge still answers beside ComfyUI, with its model, on a GPU of its own."""
from __future__ import annotations

import pytest

from comfycheck.comfy.system_stats import first_gpu
from comfycheck.config.units import GiB
from comfycheck.probes.forge import ForgeClient, ForgeError

pytestmark = [pytest.mark.acceptance, pytest.mark.forge]


@pytest.fixture(scope="module")
def forge(profile, deployment):
    if not profile.forge_url:
        pytest.skip(f"profile {profile.name!r} has no [forge] table: no Forge beside ComfyUI")
    client = ForgeClient(profile.forge_url, timeout=profile.comfyui.timeout_s)
    yield client
    client.close()


def _call(fn):
    try:
        return fn()
    except ForgeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.smoke
@pytest.mark.foundation("forge")
def test_forge_answers_ping(forge):
    _call(forge.ping)


@pytest.mark.smoke
def test_forge_has_a_model_loaded(forge, measure):
    models = _call(forge.models)
    assert models, "Forge lists no checkpoint (/sdapi/v1/sd-models is empty)"
    checkpoint = _call(forge.options).get("sd_model_checkpoint")
    assert checkpoint, "Forge has no sd_model_checkpoint selected (/sdapi/v1/options)"
    measure.info("Forge checkpoint", checkpoint, models=len(models))


def test_forge_runs_on_another_gpu_than_comfyui(forge, comfy, profile, measure):
    cuda = _call(forge.memory).get("cuda") or {}
    forge_total = (cuda.get("system") or {}).get("total")
    if not forge_total:
        pytest.skip("Forge reports no CUDA memory (/sdapi/v1/memory): no GPU information to compare")
    comfy_gpu = first_gpu(comfy.system_stats())
    if comfy_gpu is None:
        pytest.skip("ComfyUI reports no GPU device in /system_stats")
    measure.info("Forge GPU memory", round(forge_total / GiB, 1), "GiB")
    measure.info("ComfyUI GPU memory", round(comfy_gpu["vram_total"] / GiB, 1), "GiB", device=comfy_gpu["name"])
    if abs(forge_total - comfy_gpu["vram_total"]) >= 0.25 * GiB:
        return  # different memory sizes: necessarily different cards
    names = profile.gpus
    if names.comfyui and names.forge and names.comfyui != names.forge:
        pytest.fail(f"Forge and ComfyUI both see a GPU of {forge_total / GiB:.1f} GiB, but the profile puts them "
                    f"on different cards ({names.comfyui} / {names.forge}): they share one GPU "
                    "(check CUDA_VISIBLE_DEVICES / --gpu-device-id; CUDA and nvidia-smi number GPUs differently)",
                    pytrace=False)
    pytest.skip("Forge's and ComfyUI's GPUs have the same memory size and the profile does not name two "
                "different cards: without NVML process data they cannot be told apart")
