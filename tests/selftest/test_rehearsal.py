"""The GPU rehearsal's weights kit, on the CPU: the seed's own set (Qwen-Image-Edit-2509 fp8, Qwen2.5-VL 7B fp8, the
Qwen-Image VAE) built from ComfyUI's own classes at its real shapes and dtypes, and ComfyUI's own detection and
validation as the judges; nothing of it is allocated (meta tensors, sparse files)."""
from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w

from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.workflows import load_workflow, models_named
from comfycheck.config.paths import WORKFLOWS_DIR
from comfycheck.config.profile import load_profile
from comfycheck.rehearsal import SD15_SET, SEED_SET, run_kit
from comfycheck.rehearsal.runner import CPU_WORKFLOW
from comfycheck.stack import EmbeddedStack, real
from tests.selftest.helpers import merge, own_ports

pytestmark = [pytest.mark.selftest, pytest.mark.rehearsal]
SEED_WORKFLOW = WORKFLOWS_DIR / "qwen_image_edit_2509.json"


@pytest.fixture(scope="module")
def comfyui() -> real.RealComfyUI:
    try:
        return real.locate()
    except real.RealComfyUINotFound as exc:
        pytest.skip(f"the weights kit runs with a real ComfyUI's own Python and classes: {exc}")


def test_comfyui_detects_the_seeds_set_and_validates_its_workflow_against_it(comfyui, tmp_path):
    """Real-size files whose data is a hole (no disk), under the names the profile requires: ComfyUI's detection,
    reading each file back, says which model it is; its own validate_prompt accepts the graph against them, and
    refuses it when a file it names is not there."""
    models = tmp_path / "models"
    report = run_kit(comfyui, SEED_SET, fill="zeros", models=models, validate=SEED_WORKFLOW)
    assert report.ok and report.valid, (report.errors, report.files)
    found = {f.folder: f for f in report.files}
    assert found["diffusion_models"].detected == "QwenImage"
    assert found["text_encoders"].detected == "QWEN25_7B"
    assert found["vae"].detected == "WanVAE (Wan 2.1, 16 latent channels)"
    # the sizes of the files they stand for: 20.4 B parameters in fp8, 7.7 B (scaled fp8), a 254 MB VAE
    assert 20.0e9 < found["diffusion_models"].params < 21.0e9 and 20.0e9 < found["diffusion_models"].bytes < 21.0e9
    assert 7.0e9 < found["text_encoders"].params < 8.5e9
    assert 250e6 < found["vae"].bytes < 260e6
    written = models / "diffusion_models" / "qwen_image_edit_2509_fp8_e4m3fn.safetensors"
    assert written.stat().st_size > 20e9 and written.stat().st_blocks * 512 < 1e6, "not a sparse file"
    broken = json.loads(SEED_WORKFLOW.read_text())
    for node in broken.values():
        if node["class_type"] == "VAELoader":
            node["inputs"]["vae_name"] = "not_there.safetensors"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = run_kit(comfyui, SEED_SET, models=models, validate=tmp_path / "broken.json", build=False)
    assert refused.valid is False and any("not_there.safetensors" in e for e in refused.errors), refused.errors


def test_the_plumbing_generates_on_real_comfyui_from_the_kits_models_folder(comfyui, make_profile, tmp_path):
    """Without a GPU, the rehearsal's plumbing: an SD1.5 checkpoint from the kit (a sparse real-size file), real
    ComfyUI in the embedded stack reading it from [stack] models_dir (--extra-model-paths-config), one step at
    64x64 on the CPU, its image back through /view."""
    models = tmp_path / "models"
    workflow = WORKFLOWS_DIR / CPU_WORKFLOW
    (found,) = run_kit(comfyui, SD15_SET, fill="zeros", models=models, validate=workflow).files
    assert found.detected == "SD15" and 1.0e9 < found.params < 1.1e9, found
    graph = load_workflow(workflow)
    path = make_profile(merge(own_ports(), {
        "name": "rehearsal-plumbing",
        "comfyui": {"generation_workflow": CPU_WORKFLOW, "models_installed": True},
        "stack": {"comfyui": "real", "comfyui_dir": str(comfyui.directory), "comfyui_python": str(comfyui.python),
                  "models_dir": str(models), "startup_timeout_s": 180}}) | {"forge": None})  # no Forge: not tested
    data = tomllib.loads(path.read_text())
    data["comfyui"]["required_models"] = models_named(graph)
    path.write_text(tomli_w.dumps(data))
    profile = load_profile(path)
    stack = EmbeddedStack(profile)
    stack.up()
    try:
        with ComfyClient.from_profile(profile, timeout=30) as client:
            assert client.models("checkpoints") == [found.file]  # the kit's file, no placeholder beside it
            result = client.run(graph, timeout=300)
            assert result.status == "success", result
            (image,) = result.images()
            assert client.view(**image)[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stack.down()


def test_random_weights_are_random_and_still_the_model_they_stand_for(comfyui, tmp_path):
    """The GPU rehearsal's fill (made on the card there; here on the CPU, the 254 MB VAE alone): real data, not a
    hole, in the file's own dtype, which ComfyUI reads back as the Qwen-Image VAE."""
    (vae,) = run_kit(comfyui, SEED_SET, fill="random", models=tmp_path, only=("vae",)).files
    assert vae.detected == "WanVAE (Wan 2.1, 16 latent channels)", vae
    path = tmp_path / "vae" / "qwen_image_vae.safetensors"
    assert path.stat().st_blocks * 512 >= 0.9 * path.stat().st_size, "a sparse file, not random weights"
    with open(path, "rb") as f:
        f.seek(path.stat().st_size // 2)
        middle = f.read(1 << 16)
    assert len(set(middle)) > 200, "the data is not random"
