"""Unit tests of the support package: profiles, targets, workflows, errors, polling."""
from __future__ import annotations

import json
import random
import time

import pytest

from comfycheck.comfy.client import format_prompt_error
from comfycheck.comfy.workflows import WorkflowError, describe, load_workflow, make_unique, preflight
from comfycheck.config.paths import DEFAULT_PROFILE, PROJECT_ROOT
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.config.targets import DEFAULT_TARGETS
from comfycheck.judge.measurements import Measurement
from comfycheck.polling import DeadlineExceeded, wait_until
from tests.selftest.helpers import recording


def test_local_profile_is_the_default_and_valid():
    p = load_profile()
    assert p.path == DEFAULT_PROFILE and p.embedded and p.comfyui.url.startswith("http://127.0.0.1:")


def test_production_example_models_the_reference_deployment():
    p = load_profile(DEFAULT_PROFILE.with_name("production.example.toml"))
    assert p.public_url == "https://qwen-image-edit.myia.io" and (p.forge_url or "").endswith(":7860")
    assert (p.gpus.comfyui, p.gpus.forge) == ("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3080 Ti")
    assert not p.allow_destructive and not p.embedded


@pytest.mark.parametrize("overrides, expected", [
    ({"comfyui": {"urll": "x"}}, "comfyui.urll: unknown key"),
    ({"comfyui": {"timeout_s": "ten"}}, "comfyui.timeout_s: expected a number, got 'ten'"),
    ({"comfyui": {"url": "ftp://host"}}, "comfyui.url: expected an http:// or https:// URL"),
    ({"targets": {"generation_s": True}}, "targets.generation_s: expected a number"),
    ({"targets": {"no_such_target": 1}}, "targets.no_such_target: unknown key"),
    ({"stack": {"embedded": "yes"}}, "stack.embedded: expected true or false"),
])
def test_profile_errors_name_file_and_key(make_profile, overrides, expected):
    path = make_profile(overrides)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert str(path) in str(exc.value) and expected in str(exc.value)


def test_profile_missing_url_is_named(make_profile):
    path = make_profile(raw='name = "x"\n[comfyui]\ntimeout_s = 3\n')
    with pytest.raises(ProfileError, match=r"comfyui.url: missing, expected an http"):
        load_profile(path)


def test_profile_not_toml_is_named(make_profile):
    path = make_profile(raw="name = [unclosed\n")
    with pytest.raises(ProfileError, match=r"not valid TOML"):
        load_profile(path)


def test_embedded_stack_refuses_non_loopback(make_profile):
    with pytest.raises(ProfileError, match="loopback only"):
        load_profile(make_profile({"comfyui": {"url": "http://example.com:8188"}}))


def test_profile_overrides_a_target(make_profile):
    p = load_profile(make_profile({"targets": {"generation_s": 45}}))
    assert p.targets["generation_s"].threshold == 45
    assert p.targets["latency_local_ms"] == DEFAULT_TARGETS["latency_local_ms"]


def test_every_threshold_is_a_target_in_targets_py(make_profile):
    """The TLS thresholds sit in [targets]; the older [public] spellings still set them; the requirement keys
    (upload sizes, the WebSocket's silence) set theirs, and [targets] does not take those."""
    p = load_profile(make_profile({"targets": {"hsts_max_age_s": 63072000, "cert_days_left": 20},
                                   "public": {"upload_limit_mib": 250, "websocket_idle_s": 120}}))
    assert p.targets["hsts_max_age_s"].threshold == 63072000 and p.targets["hsts_max_age_s"].op == ">="
    assert p.targets["cert_days_left"].threshold == 20 and not p.targets["cert_days_left"].rule
    assert p.targets["proxy_upload_limit_mib"].threshold == 250 == p.upload_limit_mib
    assert p.targets["websocket_idle_s"].threshold == 120
    assert DEFAULT_TARGETS["cert_days_left"].rule, "without an override the renewal point is worked out"
    older = load_profile(make_profile({"public": {"hsts_min_age_s": 100, "min_days_left": 7}}))
    assert (older.targets["hsts_max_age_s"].threshold, older.targets["cert_days_left"].threshold) == (100, 7)
    with pytest.raises(ProfileError, match=r"public.min_days_left = 7 and targets.cert_days_left = 9"):
        load_profile(make_profile({"public": {"min_days_left": 7}, "targets": {"cert_days_left": 9}}))
    with pytest.raises(ProfileError, match=r"targets.proxy_upload_limit_mib: unknown key"):
        load_profile(make_profile({"targets": {"proxy_upload_limit_mib": 5}}))


def test_older_spellings_are_read_as_the_same_value(make_profile):
    """Keys renamed to say their unit (upload limits in MiB, the stand-in's cards in GiB) still read as before."""
    p = load_profile(make_profile({"public": {"upload_limit_mib": None, "upload_limit_mb": 250},
                                   "stack": {"vram_total_gib": None, "vram_total_gb": 16}}))
    assert p.public and p.public.upload_limit_mib == 250 == p.targets["proxy_upload_limit_mib"].threshold
    assert p.stack and p.stack.vram_total_gib == 16
    with pytest.raises(ProfileError, match=r"public.upload_limit_mb = 250 and public.upload_limit_mib = 100 set the "
                                           r"same thing; keep public.upload_limit_mib"):
        load_profile(make_profile({"public": {"upload_limit_mb": 250}}))
    with pytest.raises(ProfileError, match=r"public.upload_limit_mib \(written as public.upload_limit_mb\): "
                                           r"expected a number, got 'big'"):
        load_profile(make_profile({"public": {"upload_limit_mib": None, "upload_limit_mb": "big"}}))


def test_every_figure_is_in_the_unit_its_label_says():
    """GB and MB are 10^9 and 10^6 bytes, GiB and MiB 2^30 and 2^20: a 24 GiB card (an RTX 3090 as NVIDIA
    sells it) is 25.77 GB in the load run's figures and 24.0 GiB on the GPU map."""
    from comfycheck.config.units import GiB, MiB
    from comfycheck.load.judge import IdleBaseline
    from comfycheck.probes.gpu import GpuInfo, Sample, gpu_map_rows

    card = 24 * GiB
    idle = IdleBaseline.of(Sample(0.0, "nvml", "nvml:0", 9 * GiB, card))
    assert (idle.total_gb, idle.used_gb, idle.pct) == (25.77, 9.664, 37.5)
    (row,) = gpu_map_rows([GpuInfo(0, 0, "NVIDIA GeForce RTX 3090", "GPU-x", "00000000:01:00.0", card)])
    assert row["memory_gib"] == 24.0 and "memory_gb" not in row
    assert 100 * MiB == 104857600  # nginx's client_max_body_size 100m and ComfyUI's --max-upload-size 100


def test_token_comes_from_the_environment(make_profile, monkeypatch):
    p = load_profile(make_profile({"comfyui": {"token_env": "COMFYCHECK_TEST_TOKEN"}}))
    monkeypatch.setenv("COMFYCHECK_TEST_TOKEN", "s3cret")
    assert p.comfyui.token == "s3cret" and "s3cret" not in repr(p)


def test_measurement_verdicts():
    t = DEFAULT_TARGETS["latency_local_ms"]
    assert Measurement(t.label, 19.9, "ms", t).verdict == "pass"
    missed = Measurement(t.label, 20.0, "ms", t)
    assert missed.verdict == "FAIL" and "measured 20.00 ms, target < 20 ms" in missed.failure_message()
    avail = DEFAULT_TARGETS["availability_pct"]
    assert Measurement(avail.label, 99.95, "%", avail).verdict == "pass"
    assert Measurement(avail.label, 99.8, "%", avail).verdict == "FAIL"


def test_make_unique_changes_what_the_cache_keys_on():
    wf = json.loads(recording("workflow_modelfree_api.json").read_text())
    a, b = make_unique(wf, random.Random(1)), make_unique(wf, random.Random(2))
    assert a["1"]["inputs"]["color"] != b["1"]["inputs"]["color"]
    assert a["3"]["inputs"]["filename_prefix"] != b["3"]["inputs"]["filename_prefix"]
    assert wf["1"]["inputs"]["color"] == 0, "the original must stay untouched"


def test_preflight_names_every_missing_class_and_model():
    info = json.loads(recording("object_info_subset.json").read_text())
    wf = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "qwen.safetensors", "weight_dtype": "default"}},
          "2": {"class_type": "NoSuchNode", "inputs": {}},
          "3": {"class_type": "LoadImage", "inputs": {"image": "uploaded-later.png"}}}
    problems = preflight(wf, info)
    assert len(problems) == 2
    assert "model file 'qwen.safetensors' is not offered by UNETLoader.unet_name" in problems[0]
    assert "class NoSuchNode is not installed" in problems[1]


def test_load_workflow_errors(tmp_path):
    with pytest.raises(WorkflowError, match="no such file"):
        load_workflow(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": {"class_type": ')
    with pytest.raises(WorkflowError, match=r"bad.json: invalid JSON at line 1"):
        load_workflow(bad)
    ui = tmp_path / "ui.json"
    ui.write_text('{"nodes": [], "links": []}')
    with pytest.raises(WorkflowError, match="UI format"):
        load_workflow(ui)


def test_prompt_error_is_readable():
    body = json.loads(recording("prompt_error_value_below_min.json").read_text())["body"]
    text = format_prompt_error(body)
    assert "prompt_outputs_failed_validation" in text
    assert "node 1 (EmptyImage): value_smaller_than_min: Value 0 smaller than min of 1: width" in text


def test_wait_until_gives_up_at_the_deadline_with_the_last_error():
    def probe():
        raise ConnectionRefusedError("nobody home")
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="nobody home"):
        wait_until(probe, timeout=0.3, interval=0.05, what="a server")
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("status"), AttributeError("up")])
def test_wait_until_lets_a_bug_in_its_probe_surface_at_once(bug):
    calls = []

    def probe():
        calls.append(1)
        raise bug
    with pytest.raises(type(bug)):
        wait_until(probe, timeout=5, interval=0.05, what="a server")
    assert len(calls) == 1, f"the probe's {type(bug).__name__} was taken for 'not yet' {len(calls)} times"


def test_command_killer_sees_processes_only_on_this_host():
    from comfycheck.watchdog import CommandKiller
    assert CommandKiller("true", "http://127.0.0.1:8188").local_port == 8188
    assert CommandKiller("true", "http://gpu-host.example:8188").local_port is None


@pytest.mark.parametrize("where, local", [
    ("http://127.0.0.1:8188", True), ("https://localhost:28443", True), ("http://[::1]:8188", True),
    ("127.0.0.5", True), ("http://10.0.0.5:8188", False), ("https://qwen-image-edit.myia.io", False),
])
def test_is_loopback(where, local):
    from comfycheck.config.hosts import is_loopback
    assert is_loopback(where) is local


def test_percentile_is_nearest_rank():
    from comfycheck.config.targets import percentile
    assert percentile(list(range(1, 101)), 95) == 95 and percentile([3.0], 95) == 3.0


def test_proxy_overhead_is_paired_never_a_difference_of_two_tails():
    from comfycheck.config.targets import paired_overhead, percentile
    direct = [2.0] * 28 + [40.0, 41.0]  # one slow direct sample in the tail
    proxied = [d + 1.5 for d in direct[:28]] + [3.5, 3.6]
    assert percentile(proxied, 95) - percentile(direct, 95) < 0  # what the report used to show
    p50, p95 = paired_overhead(direct, proxied)
    assert p50 == 1.5 and p95 == 1.5


def test_baseline_comparison_ignores_anti_aliasing_but_counts_real_changes(tmp_path):
    """Edges rasterised with other sub-pixel coverage (another machine) are not a change; a new block is."""
    import io

    from PIL import Image, ImageDraw

    from comfycheck.probes.browser import compare_to_baseline

    def shapes(dx: float, extra: bool = False) -> bytes:
        s = 8  # drawn 8x larger and box-filtered: anti-aliased edges, as a browser draws them
        big = Image.new("RGB", (240 * s, 80 * s), (30, 30, 30))
        draw = ImageDraw.Draw(big)
        draw.ellipse(((20 + dx) * s, 10 * s, (80 + dx) * s, 70 * s), fill=(230, 230, 230))
        draw.rounded_rectangle(((110 + dx) * s, 20 * s, (220 + dx) * s, 60 * s), radius=12 * s, fill=(40, 120, 220))
        if extra:
            draw.rectangle((90 * s, 2 * s, 105 * s, 78 * s), fill=(200, 40, 40))
        buf = io.BytesIO()
        big.resize((240, 80), Image.Resampling.BOX).save(buf, "PNG")
        return buf.getvalue()

    baseline = tmp_path / "view.png"
    assert compare_to_baseline(shapes(0), baseline, masks=[]).written
    shifted = compare_to_baseline(shapes(0.5), baseline, masks=[])
    assert shifted.changed_pct == 0 and shifted.anti_aliased > 100, (shifted.changed_pct, shifted.anti_aliased)
    real = compare_to_baseline(shapes(0, extra=True), baseline, masks=[])
    assert real.changed_pct > 5, real.changed_pct


def test_a_measurement_survives_its_json_form_with_its_verdict():
    from comfycheck.config.targets import DEFAULT_TARGETS
    from comfycheck.judge.measurements import NOT_ASSESSED, Measurement
    target = DEFAULT_TARGETS["generation_s"].with_threshold(1.0)
    missed = Measurement("one generation", 1.5, "s", target, "load run", {"note": "slowest"})
    skipped = Measurement("peak VRAM", None, "GB", DEFAULT_TARGETS["vram_generation_gb"], "load run",
                          not_assessed="not assessed: ComfyUI runs on the CPU")
    for m in (missed, skipped, Measurement("device", "cpu")):
        again = Measurement.from_dict(json.loads(json.dumps(m.as_dict())))
        assert (again.verdict, again.value, again.note, again.unit) == (m.verdict, m.value, m.note, m.unit)
    assert missed.verdict == "FAIL" and Measurement.from_dict(missed.as_dict()).target == target
    assert skipped.verdict == NOT_ASSESSED and skipped.as_dict()["note"].startswith("not assessed: ComfyUI")


def test_every_error_comfycheck_raises_is_a_comfycheck_error():
    """One base: a command-line tool catches ComfycheckError and prints its message (file, key or URL named)."""
    import importlib
    import inspect
    import pkgutil

    import comfycheck
    from comfycheck import ComfycheckError

    errors = []
    for info in pkgutil.walk_packages(comfycheck.__path__, "comfycheck."):
        if info.name.endswith("__main__") or info.name == "comfycheck.standin.forge":  # entry points; Gradio
            continue
        module = importlib.import_module(info.name)
        errors += [obj for obj in vars(module).values() if inspect.isclass(obj) and issubclass(obj, BaseException)
                   and obj.__module__ == module.__name__]
    outside = sorted(f"{e.__module__}.{e.__name__}" for e in errors if not issubclass(e, ComfycheckError))
    assert len(errors) >= 28 and not outside, outside


@pytest.mark.parametrize("value, unit, target, shown", [
    (3.12874, "ms", None, "3.13"), (0.62, "ms", None, "0.62"), (0.6, "ms", None, "0.60"),  # one rule per unit
    (10.0, "runs", None, "10"), (9.6, "drops", None, "10"),  # a count is a whole number
    (41.7, "°C", None, "42"), (97.3333, "%", None, "97.3"), (0.49871, "GB", None, "0.50"),
    (45.04, "s", "restart_s", "45.0"), (15768000.0, "s", "hsts_max_age_s", "15768000"),  # a target's own
    (301, "", None, "301"),  # a whole number stays one
])
def test_every_figure_has_the_digits_of_its_resolution_everywhere(value, unit, target, shown):
    m = Measurement("figure", value, unit, DEFAULT_TARGETS[target] if target else None)
    assert m.shown == shown
    assert m.summary().startswith(f"{shown} {unit}".strip())  # the terminal and JUnit's <property>
    assert str(Measurement.from_dict(m.as_dict()).value) == str(m.value)  # measurements.json, the history
    assert Measurement.from_dict(m.as_dict()).shown == shown


SD15 = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "latent_image": ["5", 0]}}}


@pytest.mark.parametrize("name, label, is_512", [
    ("qwen_image_edit_2509.json",
     "one 512x512 generation of qwen_image_edit_2509_fp8_e4m3fn.safetensors (qwen_image_edit_2509.json)", True),
    ("cpu_load_modelfree.json", "one model-free run of cpu_load_modelfree.json (2048x2048)", False),
    ("sd15.json", "one 512x512 generation of v1-5-pruned-emaonly.safetensors (sd15.json)", True),
])
def test_a_figure_is_labelled_with_what_ran(name, label, is_512, tmp_path):
    """Every figure names the workflow and the model that ran; only a 512x512 generation meets that target."""
    path = PROJECT_ROOT / "fixtures" / "workflows" / name
    if name == "sd15.json":
        path = tmp_path / name
        path.write_text(json.dumps(SD15))
    assert describe(load_workflow(path), name) == (label, is_512)


def test_an_installed_copy_reports_no_commit_of_a_repository_around_it(tmp_path, monkeypatch):
    """Installed into a venv inside somebody's repository, comfycheck's version is its own, without their commit."""
    import subprocess

    from comfycheck.history import versions

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "theirs"], check=True)
    installed = tmp_path / ".venv" / "lib" / "python3.11"  # where PROJECT_ROOT lands for a site-packages copy
    installed.mkdir(parents=True)
    monkeypatch.setattr(versions, "PROJECT_ROOT", installed)
    theirs = subprocess.run(["git", "-C", str(installed), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    said = versions.comfycheck.__wrapped__()
    assert theirs and theirs not in said, said
    monkeypatch.setattr(versions, "PROJECT_ROOT", tmp_path)  # a checkout of its own: its commit is told
    assert versions.comfycheck.__wrapped__().endswith(f"({theirs})")
