"""API-format workflows: loading with clear errors, per-run uniqueness, and a preflight against /object_info."""
from __future__ import annotations

import copy
import json
import random
import uuid
from pathlib import Path

from .. import ComfycheckError


class WorkflowError(ComfycheckError):
    """A workflow file that cannot be used; the message names the file."""


class PreflightError(ComfycheckError):
    """The server lacks node classes or model files a workflow needs; the message lists all of them."""


def load_workflow(path: Path) -> dict:
    if not path.is_file():
        raise WorkflowError(f"workflow {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"workflow {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise WorkflowError(
            f"workflow {path}: this is the UI format; export it with 'Save (API Format)' (or 'Export (API)')"
        )
    if not isinstance(data, dict) or not data:
        raise WorkflowError(f"workflow {path}: expected a JSON object of nodes {{id: {{class_type, inputs}}}}")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not isinstance(
            node.get("inputs"), dict
        ):
            raise WorkflowError(f"workflow {path}: node {node_id!r} needs a 'class_type' string and an 'inputs' object")
    return data


# Inputs that feed randomness into a run; changing them makes ComfyUI's cache miss.
SEED_INPUTS = ("seed", "noise_seed")


def make_unique(workflow: dict, rng: random.Random | None = None) -> dict:
    """A copy that ComfyUI's cache cannot answer: new seeds, a fresh EmptyImage colour, unique file prefixes."""
    rng = rng or random.Random()
    tag = uuid.uuid4().hex[:8]
    wf = copy.deepcopy(workflow)
    for node in wf.values():
        inputs = node["inputs"]
        for name in SEED_INPUTS:
            if isinstance(inputs.get(name), int):
                inputs[name] = rng.randrange(2**50)
        if node["class_type"] == "EmptyImage" and isinstance(inputs.get("color"), int):
            inputs["color"] = rng.randrange(0x1000000)
        if isinstance(inputs.get("filename_prefix"), str):
            inputs["filename_prefix"] = f"{inputs['filename_prefix']}_{tag}"
    return wf


def _combo(spec: list) -> tuple[list | None, dict]:
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(spec[0], list):
        return spec[0], extra
    if spec[0] == "COMBO":
        return extra.get("options", []), extra
    return None, extra


def preflight(workflow: dict, object_info: dict) -> list[str]:
    """Every node class the server lacks and every file/option its loaders do not offer."""
    problems = []
    for node_id, node in workflow.items():
        class_type = node["class_type"]
        info = object_info.get(class_type)
        if info is None:
            problems.append(f"node {node_id}: class {class_type} is not installed on the server (missing custom node?)")
            continue
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name, value in node["inputs"].items():
            if isinstance(value, list) or name not in specs:
                continue
            options, extra = _combo(specs[name])
            if options is None or extra.get("image_upload") or value in options:
                continue
            kind = "model file" if str(value).endswith((".safetensors", ".ckpt", ".pt", ".pth", ".gguf")) else "value"
            offered = ", ".join(map(str, options[:10])) or "nothing"
            problems.append(
                f"node {node_id}: {kind} {value!r} is not offered by {class_type}.{name} (offered: {offered})")
    return problems


def check_preflight(workflow: dict, object_info: dict, name: str) -> None:
    problems = preflight(workflow, object_info)
    if problems:
        raise PreflightError(f"workflow {name} cannot run on this server:\n  " + "\n  ".join(problems))


def generation_workflow(client, profile) -> dict:
    """The profile's generation workflow, its LoadImage pointed at the uploaded edit image, checked by preflight."""
    workflow = load_workflow(profile.workflow_path(profile.comfyui.generation_workflow))
    if any(node["class_type"] == "LoadImage" for node in workflow.values()):
        uploaded = client.upload_image(profile.resolve(profile.comfyui.edit_image), overwrite=True)
        for node in workflow.values():
            if node["class_type"] == "LoadImage":
                node["inputs"]["image"] = uploaded["name"]
    check_preflight(workflow, client.object_info(), profile.comfyui.generation_workflow)
    return workflow


SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
SIZED = frozenset({"ImageScale", "EmptyLatentImage", "EmptySD3LatentImage", "EmptyImage"})
MODEL_INPUTS = ("unet_name", "ckpt_name")  # the diffusion model a graph samples with (UNETLoader, checkpoints)
# the model folder each core loader input reads from (ComfyUI's folder_paths names, as /models/<folder> lists them)
MODEL_FOLDERS = {"unet_name": "diffusion_models", "ckpt_name": "checkpoints", "clip_name": "text_encoders",
                 "clip_name1": "text_encoders", "clip_name2": "text_encoders", "vae_name": "vae",
                 "lora_name": "loras", "control_net_name": "controlnet", "upscale_model_name": "upscale_models"}


def models_named(workflow: dict) -> dict[str, list[str]]:
    """The model files a workflow's loaders name, by the folder each is read from: {"vae": ["x.safetensors"]}."""
    found: dict[str, set[str]] = {}
    for node in workflow.values():
        for name, value in (node.get("inputs") or {}).items() if isinstance(node, dict) else ():
            if name in MODEL_FOLDERS and isinstance(value, str):
                found.setdefault(MODEL_FOLDERS[name], set()).add(value)
    return {folder: sorted(files) for folder, files in sorted(found.items())}


def describe(workflow: dict, name: str) -> tuple[str, bool]:
    """What a workflow runs, in the words its figures are labelled with ('one 512x512 generation of
    qwen_image_edit_2509_fp8_e4m3fn.safetensors (qwen_image_edit_2509.json)', 'one model-free run of
    cpu_load_modelfree.json (2048x2048)'), and whether it is what the generation targets are about: a model
    sampling a 512x512 image."""
    sizes = {(n["inputs"].get("width"), n["inputs"].get("height")) for n in workflow.values()
             if isinstance(n, dict) and n.get("class_type") in SIZED}
    size = f"{next(iter(sizes))[0]}x{next(iter(sizes))[1]}" if len(sizes) == 1 else ""
    if any(isinstance(n, dict) and n.get("class_type") in SAMPLERS for n in workflow.values()):
        models = sorted({str(n["inputs"][k]) for n in workflow.values() if isinstance(n, dict)
                         for k in MODEL_INPUTS if isinstance(n.get("inputs", {}).get(k), str)})
        of = f" of {' and '.join(models)}" if models else ""
        return (f"one {size + ' ' if size else ''}generation{of} ({name})", size == "512x512")
    return f"one model-free run of {name}{f' ({size})' if size else ''}", False
