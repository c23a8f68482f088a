"""What a model-free workflow must output, computed the way ComfyUI computes it.

ComfyUI holds images as float tensors in [0, 1] (float32, or float16 with `--fp16-intermediates`) and SaveImage
writes `np.clip(255. * i, 0, 255).astype(np.uint8)`, which truncates: EmptyImage(0x808080) -> ImageInvert saves
126, not 127. Predicting 255 - c would fail a healthy server for most colours, so the prediction repeats that
arithmetic. `fixtures/recordings/pixel_values.json` (real ComfyUI, every channel value) holds this to the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ComfycheckError

FP16_FLAG = "--fp16-intermediates"
PREDICTABLE = ("EmptyImage", "ImageInvert", "SaveImage")


class Unpredictable(ComfycheckError):
    """The graph uses a node whose output comfycheck does not compute."""


def intermediate_dtype(argv: list[str] | None) -> type:
    """The dtype ComfyUI keeps images in, from its command line (/system_stats system.argv)."""
    return np.float16 if argv and FP16_FLAG in argv else np.float32


def empty_image(color: int, dtype: type = np.float32) -> np.ndarray:
    """EmptyImage's one pixel: torch.full(channel / 0xFF) in the intermediate dtype."""
    return np.array([((color >> s) & 0xFF) / 0xFF for s in (16, 8, 0)], dtype=dtype)


def image_invert(pixel: np.ndarray) -> np.ndarray:
    """ImageInvert: 1.0 - image, in the image's own dtype."""
    return (pixel.dtype.type(1.0) - pixel).astype(pixel.dtype)


def save_image(pixel: np.ndarray) -> tuple[int, ...]:
    """SaveImage's conversion to 8 bits: scale by 255 in the image's dtype, clip, truncate."""
    scaled = pixel * pixel.dtype.type(255.0)
    return tuple(int(v) for v in np.clip(scaled, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class ExpectedImage:
    node_id: str  # the SaveImage node that writes it
    size: tuple[int, int]  # width, height
    rgb: tuple[int, ...]  # every pixel of a model-free image is this colour

    def describe(self) -> str:
        return f"{self.size[0]}x{self.size[1]} of RGB {self.rgb}"


def predict(workflow: dict, *, dtype: type = np.float32) -> list[ExpectedImage]:
    """The image each SaveImage of a graph of EmptyImage/ImageInvert nodes must write."""
    memo: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}

    def value(node_id: str) -> tuple[np.ndarray, tuple[int, int]]:
        if node_id in memo:
            return memo[node_id]
        node = workflow[node_id]
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "EmptyImage":
            out = empty_image(int(inputs.get("color", 0)), dtype), (int(inputs["width"]), int(inputs["height"]))
        elif kind == "ImageInvert":
            pixel, size = value(str(inputs["image"][0]))
            out = image_invert(pixel), size
        else:
            raise Unpredictable(f"node {node_id} ({kind}): comfycheck computes only {', '.join(PREDICTABLE)}")
        memo[node_id] = out
        return out

    images = []
    for node_id, node in workflow.items():
        if node["class_type"] == "SaveImage":
            pixel, size = value(str(node["inputs"]["images"][0]))
            images.append(ExpectedImage(node_id, size, save_image(pixel)))
    return images
