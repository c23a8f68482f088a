"""Synthetic weights of real architectures, made from ComfyUI's own model classes, and ComfyUI's own verdict on them.

Runs with ComfyUI's Python, in ComfyUI's folder (it imports torch and comfy; nothing of comfycheck):

    python kit.py --comfyui DIR --set qwen-edit --fill meta                  # detection only: nothing allocated
    python kit.py --comfyui DIR --set qwen-edit --fill zeros --models OUT    # real-size files, sparse (no disk)
    python kit.py --comfyui DIR --set sd15 --fill random --models OUT --device cuda
    python kit.py --comfyui DIR --set qwen-edit --fill zeros --models OUT --validate WORKFLOW.json

Every file is built as ComfyUI's class for it declares its tensors (keys, shapes), in the dtypes of the file it
stands for (fp8 e4m3fn linear weights, a scaled-fp8 text encoder, a bf16 VAE, an fp16 checkpoint), under the file name
the profile requires; ComfyUI's own detection then says which model each file is. `meta` builds nothing;
`zeros` writes real-size safetensors whose data is a hole (reads as zeros, takes no disk); `random` writes random
weights (noise images, but loading, VRAM, sampling time and /free behave as production's), made on --device.
Prints one JSON object per line: {"file", "folder", "params", "bytes", "detected", "expected", "ok"}, then, with
--validate, {"validate": workflow, "ok", "errors"}. Exit 0 when every file is what it stands for (and the workflow
validates), 1 when not, 2 when the kit could not run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import struct
import sys
from pathlib import Path

SETS = {  # set: [(folder, file name, builder, what ComfyUI must detect)]
    "qwen-edit": [("diffusion_models", "qwen_image_edit_2509_fp8_e4m3fn.safetensors", "qwen_diffusion", "QwenImage"),
                  ("text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_text_encoder", "QWEN25_7B"),
                  ("vae", "qwen_image_vae.safetensors", "qwen_vae", "WanVAE (Wan 2.1, 16 latent channels)")],
    "sd15": [("checkpoints", "comfycheck_sd15_synthetic.safetensors", "sd15_checkpoint", "SD15")],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", required=True, type=Path, help="ComfyUI's folder (its main.py)")
    ap.add_argument("--set", required=True, choices=sorted(SETS))
    ap.add_argument("--fill", default="meta", choices=("meta", "zeros", "random"))
    ap.add_argument("--models", type=Path, help="the models folder to write into (its diffusion_models/, ...)")
    ap.add_argument("--device", default="cpu", help="where random weights are made (cuda on a GPU box)")
    ap.add_argument("--validate", type=Path, help="an API-format workflow ComfyUI must accept against these files")
    ap.add_argument("--no-build", action="store_true", help="only --validate, against the files already in --models")
    ap.add_argument("--only", action="append", default=[], metavar="FOLDER",
                    help="build only the set's file in this models folder (vae, ...); repeatable")
    args = ap.parse_args(argv)
    if args.fill != "meta" and args.models is None:
        ap.error("--models is needed to write files (--fill zeros or random)")
    if args.validate and args.models is None:
        ap.error("--validate needs --models: ComfyUI validates file names against its model folders")
    for name in ("models", "validate"):  # before the kit moves into ComfyUI's folder
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).absolute())
    try:
        comfy = _import_comfy(args.comfyui, cpu=not str(args.device).startswith("cuda"))
    except Exception as exc:  # noqa: BLE001 - whatever keeps ComfyUI from importing is named, exit 2
        print(json.dumps({"error": f"cannot import ComfyUI from {args.comfyui}: {type(exc).__name__}: {exc}"}))
        return 2
    ok = True
    wanted = [f for f in SETS[args.set] if not args.only or f[0] in args.only]
    for folder, name, builder, expected in [] if args.no_build else wanted:
        tensors = BUILDERS[builder](comfy)
        row = {"file": name, "folder": folder, "params": sum(math.prod(t.shape) for t in tensors.values()),
               "bytes": sum(math.prod(t.shape) * t.element_size() for t in tensors.values())}
        if args.fill != "meta" and args.models is not None:  # ComfyUI then judges the file as written
            path = args.models / folder / name
            write_safetensors(path, tensors, args.fill, args.device)
            tensors = read_declared(comfy.torch, path)
            row["path"] = str(path)
        detected = DETECTORS[builder](comfy, tensors)
        row |= {"detected": detected, "expected": expected, "ok": detected == expected}
        ok = ok and row["ok"]
        print(json.dumps(row), flush=True)
    if args.validate:
        errors = validate(comfy, args.validate, args.models)
        print(json.dumps({"validate": str(args.validate), "ok": not errors, "errors": errors}), flush=True)
        ok = ok and not errors
    return 0 if ok else 1


def _import_comfy(folder: Path, *, cpu: bool):
    """ComfyUI's modules, imported as its main.py would (its arguments parsed: --cpu where no GPU is used)."""
    sys.path.insert(0, str(folder.resolve()))
    os.chdir(folder)
    sys.argv = [sys.argv[0], *(["--cpu"] if cpu else [])]
    import comfy.options
    comfy.options.enable_args_parsing()
    import comfy.model_detection
    import comfy.ops
    import comfy.sd
    import comfy.utils
    import torch
    return type("Comfy", (), {"torch": torch, "comfy": comfy})


# --- what each file holds, as ComfyUI's classes declare it ---------------------------------------------------------
def _declared(comfy, make) -> dict:
    """The tensors a module declares, as meta tensors (shapes and dtypes, no memory)."""
    torch = comfy.torch
    with torch.device("meta"):
        module = make()
    return dict(module.state_dict())


def qwen_diffusion(comfy) -> dict:
    """Qwen-Image(-Edit): 60 double-stream blocks, 20.4 B parameters; linear weights in fp8 e4m3fn as the
    _fp8_e4m3fn files carry them, the rest bf16."""
    from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
    torch = comfy.torch
    sd = _declared(comfy, lambda: QwenImageTransformer2DModel(
        num_layers=60, in_channels=64, out_channels=16, image_model="qwen_image", dtype=torch.bfloat16,
        operations=comfy.comfy.ops.disable_weight_init))
    return {k: _as(v, torch.float8_e4m3fn) if _linear_weight(k, v, "transformer_blocks.") else v
            for k, v in sd.items()}


def qwen_text_encoder(comfy) -> dict:
    """Qwen2.5-VL 7B with its vision tower, scaled fp8 as the _fp8_scaled file: each linear weight of the language
    model in fp8 with its scale, and the scaled_fp8 marker ComfyUI looks for."""
    from comfy.text_encoders.llama import Qwen25_7BVLI
    torch = comfy.torch
    sd = _declared(comfy, lambda: Qwen25_7BVLI({}, torch.bfloat16, None, comfy.comfy.ops.disable_weight_init))
    out = {}
    for k, v in sd.items():
        if _linear_weight(k, v, "model.layers."):
            out[k] = _as(v, torch.float8_e4m3fn)
            out[k[: -len("weight")] + "scale_weight"] = torch.empty((), dtype=torch.float32, device="meta")
        else:
            out[k] = v
    out["scaled_fp8"] = torch.empty((0,), dtype=torch.float8_e4m3fn, device="meta")
    return out


def qwen_vae(comfy) -> dict:
    """Qwen-Image's VAE: the Wan 2.1 architecture (dim 96, 16 latent channels), bf16."""
    import comfy.ldm.wan.vae as wan
    torch = comfy.torch
    sd = _declared(comfy, lambda: wan.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                             attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0))
    return {k: _as(v, torch.bfloat16) for k, v in sd.items()}


SD15_UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
             "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
             "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
             "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
             "use_temporal_attention": False, "use_temporal_resblock": False}
SD15_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
            "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def sd15_checkpoint(comfy) -> dict:
    """A Stable Diffusion 1.5 checkpoint: its UNet, CLIP-L and VAE under the prefixes a checkpoint file uses, fp16."""
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.sd1_clip import SDClipModel
    torch = comfy.torch
    ops = comfy.comfy.ops.disable_weight_init
    unet = _declared(comfy, lambda: UNetModel(**SD15_UNET, dtype=torch.float16, operations=ops))
    clip = _declared(comfy, lambda: SDClipModel(device="meta", dtype=torch.float16))
    vae = _declared(comfy, lambda: AutoencoderKL(ddconfig=SD15_VAE, embed_dim=4))
    out = {f"model.diffusion_model.{k}": v for k, v in unet.items()}
    out |= {f"cond_stage_model.{k}": _as(v, torch.float16) for k, v in clip.items()}
    out |= {f"first_stage_model.{k}": _as(v, torch.float16) for k, v in vae.items()}
    return out


def _linear_weight(key: str, t, within: str) -> bool:
    return key.startswith(within) and key.endswith(".weight") and t.ndim == 2


def _as(t, dtype):
    return t if t.dtype == dtype else t.to(dtype)


BUILDERS = {"qwen_diffusion": qwen_diffusion, "qwen_text_encoder": qwen_text_encoder, "qwen_vae": qwen_vae,
            "sd15_checkpoint": sd15_checkpoint}


# --- what ComfyUI's own detection says each is ---------------------------------------------------------------------
def detect_diffusion(comfy, sd: dict, prefix: str = "") -> str:
    config = comfy.comfy.model_detection.model_config_from_unet(sd, prefix)
    return type(config).__name__ if config is not None else "not recognised"


def detect_text_encoder(comfy, sd: dict) -> str:
    found = comfy.comfy.sd.detect_te_model(comfy.comfy.utils.convert_old_quants(dict(sd), "", {})[0])
    return found.name if found is not None else "not recognised"


def detect_vae(comfy, sd: dict) -> str:
    """ComfyUI tells a VAE by building it from the state dict (comfy.sd.VAE): built here on the meta device."""
    torch = comfy.torch
    with torch.device("meta"):
        vae = comfy.comfy.sd.VAE(sd=dict(sd))
    model = type(vae.first_stage_model).__name__
    if model == "WanVAE" and "upsamples.0.upsamples.0.residual.2" not in " ".join(sd):
        return f"WanVAE (Wan 2.1, {vae.latent_channels} latent channels)"
    return f"{model} ({vae.latent_channels} latent channels)"


def detect_checkpoint(comfy, sd: dict) -> str:
    return detect_diffusion(comfy, sd, "model.diffusion_model.")


DETECTORS = {"qwen_diffusion": detect_diffusion, "qwen_text_encoder": detect_text_encoder, "qwen_vae": detect_vae,
             "sd15_checkpoint": detect_checkpoint}


# --- the files -----------------------------------------------------------------------------------------------------
SAFETENSORS_DTYPES = {"float8_e4m3fn": "F8_E4M3", "bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def write_safetensors(path: Path, tensors: dict, fill: str, device: str) -> None:
    """A safetensors file of `tensors`' keys, shapes and dtypes: data a hole (`zeros`), or random weights made one
    tensor at a time on `device` (memory stays one tensor's, whatever the model's size). Written beside, then moved
    into place: an interrupted build leaves no half file under the model's name."""
    torch = sys.modules["torch"]
    header: dict = {"__metadata__": {"comfycheck": f"synthetic weights ({fill}), not a trained model"}}
    offset = 0
    for key, t in tensors.items():
        size = math.prod(t.shape) * t.element_size()
        header[key] = {"dtype": SAFETENSORS_DTYPES[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                       "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    head = struct.pack("<Q", len(raw)) + raw
    if _already(path, head, len(head) + offset):
        return  # the same tensors, filled the same way, from an earlier run: 29 GB not made again
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(head)
        if fill == "random":
            for key, t in tensors.items():
                f.write(_random_bytes(torch, key, t, device))
        else:
            f.truncate(8 + len(raw) + offset)  # sparse: the filesystem stores no data blocks for the hole
    os.replace(partial, path)


def _already(path: Path, head: bytes, size: int) -> bool:
    try:
        with open(path, "rb") as f:
            return path.stat().st_size == size and f.read(len(head)) == head
    except OSError:
        return False


def read_declared(torch, path: Path) -> dict:
    """A safetensors file's tensors as its header declares them (meta tensors: nothing read but the header)."""
    by_name = {v: getattr(torch, k) for k, v in SAFETENSORS_DTYPES.items()}
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return {k: torch.empty(v["shape"], dtype=by_name[v["dtype"]], device="meta")
            for k, v in header.items() if k != "__metadata__"}


def _random_bytes(torch, key: str, t, device: str) -> bytes:
    if t.numel() == 0:
        return b""
    if key.endswith(("scale_weight", "weight_scale")):
        values = torch.ones(t.shape, dtype=torch.float32, device=device)
    elif key.endswith(".weight") and t.ndim == 1:  # norms: around one, as trained norms are
        values = 1.0 + 0.02 * torch.randn(t.shape, dtype=torch.float32, device=device)
    else:
        values = 0.02 * torch.randn(t.shape, dtype=torch.float32, device=device)
    return values.to(t.dtype).contiguous().view(torch.uint8).cpu().numpy().tobytes()


# --- ComfyUI's own validation of a workflow against the files ------------------------------------------------------
def validate(comfy, workflow: Path, models: Path) -> list[str]:
    """What ComfyUI answers a workflow (execution.validate_prompt, as POST /prompt does) with `models` as a models
    folder: [] where it would queue it. Nothing is loaded or run."""
    import folder_paths
    import nodes
    from execution import validate_prompt
    for folder in ("diffusion_models", "text_encoders", "vae", "checkpoints", "loras"):
        folder_paths.add_model_folder_path(folder, str(models / folder), is_default=True)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    prompt = json.loads(workflow.read_text())
    for node in prompt.values():  # the edit image, as an upload would put it in ComfyUI's input folder
        if node.get("class_type") == "LoadImage":
            node["inputs"]["image"] = _an_input_image(folder_paths, models / "input")
    valid, error, _outputs, node_errors = asyncio.run(validate_prompt("comfycheck-rehearsal", prompt, None))
    if valid:
        return []
    errors = [f"{error.get('message', error)}: {error.get('details', '')}".strip(": ")] if error else []
    for node_id, found in (node_errors or {}).items():
        for e in found.get("errors", []):
            errors.append(f"node {node_id} ({found.get('class_type')}): {e.get('message')}: {e.get('details', '')}")
    return errors


def _an_input_image(folder_paths, folder: Path) -> str:
    """LoadImage's validation checks the image exists in the input folder: the kit's own folder serves as that, with
    a small PNG in it (ComfyUI's own input folder is left alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder_paths.set_input_directory(str(folder))
    image = folder / "comfycheck_rehearsal.png"
    if not image.exists():
        from PIL import Image
        Image.new("RGB", (64, 64), (128, 128, 128)).save(image)
    return image.name


if __name__ == "__main__":
    sys.exit(main())
