"""The stand-in's nodes: image nodes run for real, model nodes are simulated.

An IMAGE is what ComfyUI passes between nodes: float32 pixels in [0, 1] (here one H x W x 3 array per batch item),
turned into 8 bits only by SaveImage's truncating `np.clip(255. * i, 0, 255).astype(np.uint8)`; so the stand-in's
output pixels are the real server's (fixtures/recordings/pixel_values.json).

Simulated model nodes take time (per sampling step) and hold simulated VRAM, which /system_stats
reports and /free releases, so the suite's timing and memory checks have something real to measure.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps, PngImagePlugin

from .. import ComfycheckError
from ..config.units import GiB

# Simulated resident sizes, chosen so a 512x512 Qwen edit peaks near 60 % of a 24 GiB card, as an fp8
# Qwen-Image-Edit-2509 run with partial offload does.
MODEL_BYTES = {"UNETLoader": int(10.0 * GiB), "CLIPLoader": int(2.5 * GiB), "VAELoader": int(0.3 * GiB)}
SAMPLING_BYTES = int(1.2 * GiB)
# a model's load onto the GPU, in sampling steps per GiB: a 512x512 Qwen edit after /free takes about twice a warm
# one, as on a real GPU (an H200 took 2.57 s for the first generation after /free against 1.1 s for the warm ones)
LOAD_STEPS_PER_GIB = 2.0
MODEL_FOLDERS = {"UNETLoader": ("unet_name", "diffusion_models"), "CLIPLoader": ("clip_name", "text_encoders"),
                 "VAELoader": ("vae_name", "vae"), "CheckpointLoaderSimple": ("ckpt_name", "checkpoints")}


class Interrupted(ComfycheckError):
    pass


class NodeFailure(ComfycheckError):
    """An exception a node raised, reported in execution_error as `exception_type`."""

    def __init__(self, exception_type: str, message: str):
        super().__init__(message)
        self.exception_type = exception_type


@dataclass
class Vram:
    total: int
    idle: int
    loaded: dict[str, int] = field(default_factory=dict)
    working: int = 0
    leaked: int = 0

    @property
    def used(self) -> int:
        return min(self.total, self.idle + sum(self.loaded.values()) + self.working + self.leaked)

    def free_models(self, release: bool) -> None:
        if release:
            self.loaded.clear()
            self.leaked = 0


@dataclass
class Token:
    """A simulated model object (MODEL, CLIP, VAE, CONDITIONING)."""

    kind: str
    name: str
    vram_key: str = ""  # loaders' tokens: what they occupy on the GPU while loaded
    vram_bytes: int = 0


async def _on_gpu(ctx: Context, *tokens) -> None:
    """As ComfyUI's load_models_gpu: a model not on the GPU (never loaded, or unloaded by /free) is loaded when
    used, which takes time (LOAD_STEPS_PER_GIB steps a GiB): the first generation after /free is the slow one."""
    for t in tokens:
        if isinstance(t, Token) and t.vram_key:
            if t.vram_key not in ctx.vram.loaded:
                await ctx.pause(ctx.model_step_s * LOAD_STEPS_PER_GIB * t.vram_bytes / GiB)
            ctx.vram.loaded[t.vram_key] = t.vram_bytes


@dataclass
class Latent:
    images: list[Image.Image]
    seed: int = 0


@dataclass
class Context:
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    vram: Vram
    faults: dict
    model_step_s: float
    prompt: dict
    extra_pnginfo: dict | None
    progress: Callable[[int, int], Awaitable[None]]
    interrupted: Callable[[], bool]

    async def pause(self, seconds: float) -> None:
        """Simulated work that an interrupt can stop, as ComfyUI checks between steps."""
        end = asyncio.get_running_loop().time() + seconds
        while True:
            if self.interrupted():
                raise Interrupted()
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))


class LoadImageCheck:
    inputs: tuple[str, ...] = ("image",)

    def __init__(self, input_dir: Path):
        self.input_dir = input_dir

    def __call__(self, value: str) -> str | None:
        return None if _input_path(self.input_dir, value).is_file() else f"Invalid image file: {value}"


def _input_path(input_dir: Path, name: str) -> Path:
    name, _, kind = name.partition(" [")
    return input_dir / name


def input_files(input_dir: Path) -> list[str]:
    if not input_dir.is_dir():
        return []
    return sorted(
        str(p.relative_to(input_dir)) for p in input_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
    )


def signature_extra(class_type: str, inputs: dict, input_dir: Path) -> str:
    """What ComfyUI's IS_CHANGED adds to a node's cache key (LoadImage: the file's hash)."""
    if class_type == "LoadImage":
        p = _input_path(input_dir, str(inputs.get("image", "")))
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "missing"
    return ""


# --- image nodes, for real ------------------------------------------------------------------------
def to_pil(pixels: np.ndarray) -> Image.Image:
    """SaveImage's conversion: scale, clip, truncate to 8 bits."""
    return Image.fromarray(np.clip(255.0 * pixels, 0, 255).astype(np.uint8))


def from_pil(im: Image.Image) -> np.ndarray:
    """LoadImage's conversion: 8 bits to float32 in [0, 1]."""
    return np.asarray(im.convert("RGB")).astype(np.float32) / 255.0


async def empty_image(ctx, width, height, batch_size, color):
    pixel = np.array([((color >> s) & 0xFF) / 0xFF for s in (16, 8, 0)], dtype=np.float32)
    return ([np.broadcast_to(pixel, (height, width, 3)).copy() for _ in range(batch_size)],)


async def image_invert(ctx, image):
    return ([np.float32(1.0) - im for im in image],)


async def image_blur(ctx, image, blur_radius, sigma):
    def blur():
        return [from_pil(to_pil(im).filter(ImageFilter.GaussianBlur(radius=sigma * blur_radius / 3))) for im in image]
    if ctx.interrupted():
        raise Interrupted()
    return (await asyncio.to_thread(blur),)


_RESAMPLE = {"nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


async def image_scale(ctx, image, upscale_method, width, height, crop):
    out = []
    for im in map(to_pil, image):
        w = width or round(im.width * height / im.height)
        h = height or round(im.height * width / im.width)
        if crop == "center":
            out.append(from_pil(ImageOps.fit(im, (w, h), _RESAMPLE[upscale_method])))
        else:
            out.append(from_pil(im.resize((w, h), _RESAMPLE[upscale_method])))
    return (out,)


async def image_scale_to_total_pixels(ctx, image, upscale_method, megapixels, resolution_steps=1):
    out = []
    for im in map(to_pil, image):
        scale = (megapixels * 1024 * 1024 / (im.width * im.height)) ** 0.5
        step = max(1, resolution_steps)
        w = max(step, round(im.width * scale / step) * step)
        h = max(step, round(im.height * scale / step) * step)
        out.append(from_pil(im.resize((w, h), _RESAMPLE[upscale_method])))
    return (out,)


async def load_image(ctx, image):
    path = _input_path(ctx.input_dir, image)
    try:
        im = Image.open(path)
        im.load()
    except Exception as exc:  # noqa: BLE001 - reported as ComfyUI reports a node's exception
        raise NodeFailure(f"PIL.{type(exc).__name__}", f"cannot identify image file '{path}'\n") from None
    alpha = im.getchannel("A") if "A" in im.getbands() else Image.new("L", im.size, 0)
    return ([from_pil(im)], ImageOps.invert(alpha))


def _next_counter(folder: Path, base: str) -> int:
    pattern = re.compile(re.escape(base) + r"_(\d{5})_\.png$")
    found = [int(m.group(1)) for p in folder.glob("*.png") if (m := pattern.match(p.name))] if folder.is_dir() else []
    return max(found, default=0) + 1


def _save(ctx, images, folder_root: Path, prefix: str, kind: str) -> dict:
    subfolder, _, base = prefix.replace("\\", "/").rpartition("/")
    folder = folder_root / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(folder, base)
    results = []
    for im in images:
        meta = PngImagePlugin.PngInfo()
        meta.add_text("prompt", json.dumps(ctx.prompt))
        for key, value in (ctx.extra_pnginfo or {}).items():
            meta.add_text(key, json.dumps(value))
        name = f"{base}_{counter:05}_.png"
        to_pil(im).save(folder / name, pnginfo=meta, compress_level=4)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"images": results}


async def save_image(ctx, images, filename_prefix="ComfyUI"):
    ui = await asyncio.to_thread(_save, ctx, images, ctx.output_dir, filename_prefix, "output")
    return (images,), ui


async def preview_image(ctx, images):
    prefix = "ComfyUI_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    ui = await asyncio.to_thread(_save, ctx, images, ctx.temp_dir, prefix, "temp")
    return (images,), ui


# --- model nodes, simulated -----------------------------------------------------------------------
async def _load(ctx: Context, class_type: str, name: str, kind: str) -> Token:
    await ctx.pause(ctx.model_step_s)
    token = Token(kind, name, f"{class_type}:{name}", MODEL_BYTES[class_type])
    await _on_gpu(ctx, token)
    return token


async def unet_loader(ctx, unet_name, weight_dtype="default"):
    return (await _load(ctx, "UNETLoader", unet_name, "MODEL"),)


async def clip_loader(ctx, clip_name, type="stable_diffusion", device="default"):
    return (await _load(ctx, "CLIPLoader", clip_name, "CLIP"),)


async def vae_loader(ctx, vae_name):
    return (await _load(ctx, "VAELoader", vae_name, "VAE"),)


async def text_encode_qwen(ctx, clip, prompt, vae=None, image=None, image1=None, image2=None, image3=None):
    await _on_gpu(ctx, clip, vae)
    await ctx.pause(ctx.model_step_s)
    return (Token("CONDITIONING", prompt),)


async def clip_text_encode(ctx, text, clip):
    await _on_gpu(ctx, clip)
    await ctx.pause(ctx.model_step_s)
    return (Token("CONDITIONING", text),)


async def empty_sd3_latent(ctx, width, height, batch_size=1):
    return (Latent([Image.new("RGB", (width, height), (128, 128, 128)) for _ in range(batch_size)]),)


async def model_patch(ctx, model, **_):
    return (model,)


async def vae_encode(ctx, pixels, vae):
    await _on_gpu(ctx, vae)
    await ctx.pause(ctx.model_step_s)
    return (Latent([to_pil(p) for p in pixels]),)


async def ksampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                   denoise=1.0):
    await _on_gpu(ctx, model)
    ctx.vram.working = SAMPLING_BYTES
    try:
        for step in range(steps):
            await ctx.pause(ctx.model_step_s)
            await ctx.progress(step + 1, steps)
    finally:
        if ctx.faults.get("vram_not_released"):
            ctx.vram.leaked += SAMPLING_BYTES // 2
        ctx.vram.working = 0
    return (Latent(latent_image.images, seed),)


async def vae_decode(ctx, samples, vae):
    await _on_gpu(ctx, vae)
    def render():
        rng = random.Random(samples.seed)
        out = []
        for im in samples.images:
            base = im.convert("RGB")
            tint = Image.new("RGB", base.size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            edited = Image.blend(ImageOps.posterize(base, 4), tint, 0.3).filter(ImageFilter.DETAIL)
            out.append(from_pil(edited))
        return out
    await ctx.pause(ctx.model_step_s)
    return (await asyncio.to_thread(render),)


EXECUTORS: dict[str, Callable[..., Awaitable[Any]]] = {
    "EmptyImage": empty_image,
    "ImageInvert": image_invert,
    "ImageBlur": image_blur,
    "ImageScale": image_scale,
    "ImageScaleToTotalPixels": image_scale_to_total_pixels,
    "LoadImage": load_image,
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    "UNETLoader": unet_loader,
    "CLIPLoader": clip_loader,
    "VAELoader": vae_loader,
    "TextEncodeQwenImageEdit": text_encode_qwen,
    "TextEncodeQwenImageEditPlus": text_encode_qwen,
    "CLIPTextEncode": clip_text_encode,
    "EmptySD3LatentImage": empty_sd3_latent,
    "ModelSamplingAuraFlow": model_patch,
    "CFGNorm": model_patch,
    "VAEEncode": vae_encode,
    "KSampler": ksampler,
    "VAEDecode": vae_decode,
}


def load_definitions() -> dict[str, dict]:
    data = Path(__file__).with_name("data") / "object_info.json"
    defs = json.loads(data.read_text())
    return {k: v for k, v in defs.items() if k in EXECUTORS}


def model_names(models_dir: Path, folder: str) -> list[str]:
    d = models_dir / folder
    if not d.is_dir():
        return []
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and not p.name.startswith("put_"))


def ensure_dirs(*dirs: Path) -> None:
    for d in dirs:
        os.makedirs(d, exist_ok=True)
