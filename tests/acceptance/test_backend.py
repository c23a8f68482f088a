"""Backend checklist: ComfyUI answers, fast, with the nodes and models the service needs, and generates."""
from __future__ import annotations

import io
import statistics

import numpy as np
import pytest
from PIL import Image

from comfycheck.comfy import packages
from comfycheck.comfy.client import ComfyClient
from comfycheck.comfy.expected import intermediate_dtype, predict
from comfycheck.comfy.protocol import protocol_problems
from comfycheck.comfy.system_stats import first_gpu
from comfycheck.comfy.uploads import full_upload
from comfycheck.comfy.workflows import check_preflight, describe, generation_workflow, load_workflow, make_unique
from comfycheck.config.targets import percentile
from comfycheck.config.units import GB
from comfycheck.judge import install
from comfycheck.judge.foundations import backend_upload_limit
from comfycheck.polling import DeadlineExceeded, wait_until
from comfycheck.probes.gpu import Sampler, SystemStatsSource
from comfycheck.probes.gpu_choice import card_mismatch, card_seen, names_a_card
from comfycheck.probes.host import sampled

pytestmark = pytest.mark.acceptance


@pytest.mark.smoke
@pytest.mark.foundation("backend")
def test_backend_answers_system_stats(comfy):
    stats = comfy.system_stats()
    assert stats.get("system", {}).get("comfyui_version"), f"/system_stats has no comfyui_version: {stats}"


@pytest.mark.smoke
@pytest.mark.timing
def test_api_latency_local_within_target(comfy, profile, measure):
    for _ in range(3):  # warm the connection before measuring
        comfy.timed_get("/system_stats")
    target = profile.targets["latency_local_ms"]
    timed = sampled(lambda: comfy.timed_get("/system_stats") * 1000, profile.comfyui.latency_samples,
                    missed=lambda values: not target.met_by(percentile(values, 95)))
    if not timed.complete:
        measure.not_assessed("latency_local_ms", timed.note())
        return
    samples = timed.values
    measure("latency_local_ms", percentile(samples, 95), p50_ms=round(statistics.median(samples), 2),
            samples=len(samples), path="/system_stats", note=timed.note())


@pytest.mark.smoke
def test_system_stats_reports_versions_and_devices(comfy, measure):
    stats = comfy.system_stats()
    system, devices = stats["system"], stats.get("devices", [])
    for key in ("comfyui_version", "python_version", "pytorch_version"):
        assert system.get(key), f"/system_stats lacks system.{key}"
        measure.info(key, system[key])
    measure.info("required_frontend_version", system.get("required_frontend_version", "?"))
    assert devices, "/system_stats lists no devices"
    for d in devices:
        assert d["vram_total"] > 0 and 0 <= d["vram_free"] <= d["vram_total"], f"implausible device memory: {d}"
        label = f"device {d['index']}" if d.get("index") is not None else f"device {d.get('type', '?')}"
        measure.info(label, d["name"], type=d.get("type"), memory_total_gb=round(d["vram_total"] / GB, 2))


@pytest.mark.smoke
def test_queue_is_reachable(comfy, measure):
    queue = comfy.queue()
    assert isinstance(queue.get("queue_running"), list) and isinstance(queue.get("queue_pending"), list), queue
    measure.info("queue length", len(queue["queue_running"]) + len(queue["queue_pending"]), "prompts")


@pytest.mark.smoke
@pytest.mark.foundation("backend_upload")
def test_backend_accepts_the_profile_upload_limit(comfy, profile, measure):
    size = comfy.features().get("max_upload_size")
    if size is None:
        pytest.skip("/features has no max_upload_size: this ComfyUI does not say its upload limit "
                    "(the full-size upload check still tests it)")
    assert isinstance(size, (int, float)) and not isinstance(size, bool), (
        f"/features max_upload_size is {size!r}, not a number of bytes")
    measure.judged(backend_upload_limit(profile, size))


@pytest.mark.needs("backend_upload")
def test_upload_just_under_the_limit_reaches_comfyui(comfy, profile, measure):
    sent, seconds, problem = full_upload(comfy, profile.upload_limit_mib, "straight to ComfyUI")
    assert problem is None, problem
    measure.info("upload straight to ComfyUI", sent, "MiB", seconds=seconds)


@pytest.mark.smoke
@pytest.mark.foundation("comfy_packages")
def test_comfyui_packages_meet_its_requirements(comfy, profile, measure):
    stats = comfy.system_stats()
    judged = install.packages_judged(profile, stats)
    if judged is None:
        required = packages.required_frontend(stats)
        measure.info("required_frontend_version", required or "not said")
        pytest.skip(f"ComfyUI {stats['system'].get('comfyui_version', '?')} does not list its packages' versions "
                    "(/system_stats has no system.comfy_package_versions): the UI check "
                    "test_comfyui_page_serves_the_required_frontend compares the frontend the page serves with "
                    f"required_frontend_version ({required or 'not said'})")
    if judged.fix:  # ComfyUI's own log has the exact command for its venv and folder, where it may be read
        judged = install.packages_judged(profile, stats, install.read_log(profile, comfy))
    measure.judged(judged)


@pytest.mark.smoke
def test_comfyui_runs_on_the_card_the_profile_names(comfy, profile, measure):
    """"GPU 0" is ambiguous (CUDA and nvidia-smi number cards differently): the card is found by ComfyUI's PID."""
    g = profile.gpus
    if not names_a_card(g):
        pytest.skip("the profile names no card for ComfyUI ([gpus] comfyui, comfyui_uuid or comfyui_pci_bus_id)")
    seen = card_seen(profile, comfy.system_stats())
    named = ", ".join(f"{k} = {v!r}" for k, v in (("comfyui", g.comfyui), ("comfyui_uuid", g.comfyui_uuid),
                                                  ("comfyui_pci_bus_id", g.comfyui_pci_bus_id)) if v)
    if seen is None:
        pytest.fail(f"ComfyUI runs on the CPU (/system_stats lists no GPU), but the profile's [gpus] names {named}: "
                    "start it on its card (not with --cpu; is CUDA visible to it?)", pytrace=False)
    measure.info("ComfyUI's card", seen.describe(), found_by=seen.how, profile_names=named)
    differ = card_mismatch(g, seen.name, seen.uuid, seen.pci_bus_id)
    assert not differ, (
        f"ComfyUI runs on {seen.describe()} (found by {seen.how}), but the profile's [gpus] {differ}: it is on "
        "another card than planned. CUDA and nvidia-smi number GPUs differently: pin ComfyUI to its card by UUID "
        "(CUDA_VISIBLE_DEVICES=GPU-...) or --cuda-device with CUDA's index, or correct the profile")


@pytest.mark.smoke
def test_required_custom_nodes_present(comfy, profile, measure, run_record):
    offered = comfy.object_info()
    missing = [n for n in profile.comfyui.required_nodes if n not in offered]
    log = install.read_log(profile, comfy)
    loaded = packages.custom_nodes(offered)
    failed = [f.node for f in log.log.failed_custom_nodes] if log.log is not None and log.unknown() is None else []
    run_record.saw_custom_nodes(loaded, failed)
    measure.info("custom nodes loaded", len(loaded), "nodes", names=loaded, failed_to_import=failed,
                 log=log.unknown() or "read from /internal/logs")
    problem = install.custom_nodes_problem(profile, missing, log)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.mark.smoke
def test_required_model_files_present(comfy, profile):
    folders = comfy.models()
    missing = []
    for folder, names in profile.comfyui.required_models.items():
        if folder not in folders:
            missing.append(f"{folder}/ (no such model folder)")
            continue
        present = set(comfy.models(folder))
        missing += [f"{folder}/{n}" for n in names if n not in present]
    assert not missing, f"model files missing on the server: {', '.join(missing)}"


@pytest.mark.smoke
def test_websocket_greets_with_status_and_sid(comfy):
    with comfy.websocket("comfycheck-smoke") as ws:
        status = ws.greeting["data"]
        assert status.get("sid") == "comfycheck-smoke", f"greeting carries sid {status.get('sid')!r}"
        assert isinstance(status["status"]["exec_info"]["queue_remaining"], int), status


@pytest.mark.smoke
@pytest.mark.generation
def test_smoke_generation_end_to_end(comfy, profile, measure):
    workflow = make_unique(load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow)))
    check_preflight(workflow, comfy.object_info(), profile.comfyui.smoke_workflow)
    result = comfy.run(workflow, timeout=profile.comfyui.generation_timeout_s)
    assert result.ok, result.failure_message()
    assert not protocol_problems(result), f"WebSocket protocol broken: {protocol_problems(result)}"
    assert not result.cached_nodes, f"the cache answered nodes {result.cached_nodes}: the run was not unique"

    # What the graph must write, computed as ComfyUI computes it (float intermediates, truncating SaveImage).
    expected = predict(workflow, dtype=intermediate_dtype(comfy.system_stats()["system"].get("argv")))
    for want in expected:
        images = (result.outputs.get(want.node_id) or {}).get("images") or []
        assert len(images) == 1, f"node {want.node_id} (SaveImage) should have written one image: {result.outputs}"
        got = images[0]
        image = Image.open(io.BytesIO(comfy.view(**got))).convert("RGB")
        assert image.size == want.size, f"output {got['filename']} is {image.size}, expected {want.describe()}"
        wrong = int((np.asarray(image) != np.array(want.rgb, dtype=np.uint8)).any(axis=2).sum())
        assert not wrong, (f"output {got['filename']}: {wrong} of {want.size[0] * want.size[1]} pixels differ from "
                           f"{want.describe()} (first pixel {image.getpixel((0, 0))}): the server computed it wrong")

    # a model-free graph: told, not judged against "one 512x512 generation" (test_qwen_edit_generation_512 is)
    measure.info(f"smoke run of {profile.comfyui.smoke_workflow} (model-free), server execution",
                 result.server_execution_ms, "ms", by="server timestamps",
                 client_wall_ms=round(result.client_terminal_ms, 1),
                 queue_wait_ms=result.server_total_ms - result.server_execution_ms)


@pytest.mark.generation
@pytest.mark.timing
def test_qwen_edit_generation_512(comfy, profile, measure, tmp_path):
    if not profile.comfyui.models_installed:
        pytest.skip(f"profile {profile.name!r} says the Qwen models are not installed (comfyui.models_installed)")
    workflow = make_unique(generation_workflow(comfy, profile))

    with ComfyClient.from_profile(profile) as sampled:  # the sampler's own connection, beside the run's
        source = SystemStatsSource(sampled)
        vram = Sampler(source, tmp_path / "samples.csv", hz=5).start()
        try:
            result = comfy.run(workflow, timeout=profile.comfyui.generation_timeout_s)
        finally:
            vram.stop()
    assert result.ok, result.failure_message()
    image = Image.open(io.BytesIO(comfy.view(**result.images()[0])))
    assert image.size == (512, 512), f"output is {image.size}, expected 512x512"
    extrema = image.convert("L").getextrema()
    assert extrema[0] != extrema[1], "output image is a single flat colour"

    ran, is_512 = describe(workflow, profile.comfyui.generation_workflow)
    if is_512:
        measure("generation_s", result.server_execution_ms / 1000, name=ran, by="server timestamps",
                client_wall_ms=round(result.client_terminal_ms, 1))
    else:
        measure.info(ran, round(result.server_execution_ms / 1000, 3), "s", by="server timestamps",
                     note="not judged against 'generation_s': the profile's generation workflow does not sample a "
                          "512x512 image")
    if vram.peak is None or not source.gpu:
        pytest.skip("ComfyUI reports no GPU device: VRAM during generation not measurable here")
    during = f"VRAM during {ran.removeprefix('one ')}"
    if is_512:
        measure("vram_generation_pct", vram.peak.used_pct, name=during, source="/system_stats")
        measure("vram_generation_gb", vram.peak.mem_used_bytes / GB, name=during, source="/system_stats")
    else:
        measure.info(during, round(vram.peak.mem_used_bytes / GB, 2), "GB", used_pct=round(vram.peak.used_pct, 1),
                     source="/system_stats", note="not judged against the 512x512 VRAM targets")


def test_vram_released_after_free(comfy, measure):
    gpu = first_gpu(comfy.system_stats())
    if gpu is None:
        pytest.skip("ComfyUI runs without a GPU device (CPU mode): no VRAM to release")
    comfy.free(unload_models=True, free_memory=True)
    target = measure.profile.targets["vram_idle_pct"]

    source = SystemStatsSource(comfy)

    def used_pct() -> float:
        return source.sample().used_pct

    try:
        wait_until(lambda: target.met_by(used_pct()), timeout=measure.profile.load.settle_s, interval=0.2,
                   what="VRAM released after /free")
    except DeadlineExceeded:
        pass  # the measurement below says by how much it missed
    measure("vram_idle_pct", used_pct(), after="/free (unload_models, free_memory)", source="/system_stats")


@pytest.mark.timing
def test_startup_within_target(deployment, measure):
    if deployment is None:
        pytest.skip("startup is measured only when the suite starts ComfyUI itself (embedded stack); "
                    "the watchdog test measures it on a deployment")
    measure("startup_s", deployment.startup_s, measured="launch to first 200 from /system_stats")
