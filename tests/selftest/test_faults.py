"""Fault injection: each fault switched on in the stand-in makes the named acceptance test fail, clearly."""
from __future__ import annotations

import pytest

from tests.selftest.helpers import assert_fails as _assert_fails
from tests.selftest.helpers import merge, own_ports, run_pytest

pytestmark = pytest.mark.selftest
BACKEND = "tests/acceptance/test_backend.py"


def assert_fails(result, test: str, *phrases: str) -> None:
    _assert_fails(result, f"{BACKEND}::{test}", *phrases)


def test_healthy_stack_passes_the_checks_used_below(deployment, fault_switch):
    result = run_pytest(BACKEND)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_custom_node_is_named(fault_switch):
    fault_switch.set(missing_node="TextEncodeQwenImageEditPlus")
    result = run_pytest(f"{BACKEND}::test_required_custom_nodes_present")
    assert_fails(result, "test_required_custom_nodes_present",
                 "node classes missing on the server: TextEncodeQwenImageEditPlus")


def test_missing_model_file_is_named(fault_switch):
    fault_switch.set(missing_model="qwen_image_vae.safetensors")
    result = run_pytest(f"{BACKEND}::test_required_model_files_present", f"{BACKEND}::test_qwen_edit_generation_512")
    assert_fails(result, "test_required_model_files_present",
                 "model files missing on the server: vae/qwen_image_vae.safetensors")
    assert_fails(result, "test_qwen_edit_generation_512",
                 "model file 'qwen_image_vae.safetensors' is not offered by VAELoader.vae_name")


CARD = "test_comfyui_runs_on_the_card_the_profile_names"


def test_comfyui_on_another_card_than_the_profile_names_fails_naming_both(deployment, make_profile):
    """The H200's run: a profile naming an RTX 3090 while ComfyUI ran on another card (the stand-in's is a 3090)."""
    result = run_pytest(f"{BACKEND}::{CARD}", profile=make_profile({"gpus": {"comfyui": "NVIDIA H200"}}))
    assert_fails(result, CARD, "ComfyUI runs on NVIDIA GeForce RTX 3090 (found by ", "but the profile's [gpus] "
                 "comfyui = 'NVIDIA H200': it is on another card than planned", "CUDA_VISIBLE_DEVICES=GPU-")
    assert run_pytest(f"{BACKEND}::{CARD}").returncode == 0, "the local profile's card is the stand-in's"


def test_comfyui_on_the_cpu_fails_where_the_profile_names_its_card(fault_switch):
    fault_switch.set(cpu_only=True)
    result = run_pytest(f"{BACKEND}::{CARD}")
    assert_fails(result, CARD, "ComfyUI runs on the CPU (/system_stats lists no GPU), but the profile's [gpus] "
                 "names comfyui = 'NVIDIA GeForce RTX 3090'")


def test_failing_generation_is_reported_with_comfyui_error(fault_switch):
    fault_switch.set(generation_fails=True)
    result = run_pytest(f"{BACKEND}::test_smoke_generation_end_to_end")
    assert_fails(result, "test_smoke_generation_end_to_end",
                 "failed: execution_error at node 1 (EmptyImage): torch.OutOfMemoryError: Allocation on device")


def test_slow_generation_misses_the_time_target(fault_switch, make_profile):
    """The 512x512 generation is judged against generation_s; the model-free smoke run, as slow, is only told."""
    fault_switch.set(slow_generation_s=1.5)
    profile = make_profile({"targets": {"generation_s": 2.0}})
    smoke = run_pytest(f"{BACKEND}::test_smoke_generation_end_to_end", profile=profile)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    result = run_pytest(f"{BACKEND}::test_qwen_edit_generation_512", profile=profile)
    assert_fails(result, "test_qwen_edit_generation_512",
                 "one 512x512 generation of qwen_image_edit_2509_fp8_e4m3fn.safetensors "
                 "(qwen_image_edit_2509.json): measured ", "target < 2 s (target 'generation_s')")


def test_vram_not_released_misses_the_idle_target(fault_switch, make_profile):
    fault_switch.set(vram_not_released=True)
    profile = make_profile({"load": {"settle_s": 1}})  # how long the check lets VRAM settle: it never will here
    result = run_pytest(f"{BACKEND}::test_qwen_edit_generation_512", f"{BACKEND}::test_vram_released_after_free",
                        profile=profile)
    assert_fails(result, "test_vram_released_after_free", "VRAM idle: measured", "target < 10 %")
    assert "1 failed, 1 passed" in result.stdout, result.stdout


def test_startup_delay_misses_the_startup_target(make_profile):
    profile = make_profile(merge(own_ports(), {"stack": {"startup_delay_s": 1.5}, "targets": {"startup_s": 1.0}}))
    result = run_pytest(f"{BACKEND}::test_startup_within_target", profile=profile)
    assert_fails(result, "test_startup_within_target", "ComfyUI startup: measured", "target < 1 s (target 'startup_s')")
