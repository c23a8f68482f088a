"""Record what a real ComfyUI outputs for EmptyImage(color) -> [ImageInvert] -> SaveImage, for every channel value.

    .venv/bin/python scripts/record_pixel_values.py http://127.0.0.1:8188 > fixtures/recordings/pixel_values.json

The contract tests hold the stand-in and comfycheck's own prediction (comfycheck.expected) to this file.
"""
from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from typing import cast

from PIL import Image

from comfycheck.comfy.client import ComfyClient

GRAPH_INVERT = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "comfycheck_rec/i"}}}
GRAPH_PLAIN = {"1": GRAPH_INVERT["1"],
               "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "comfycheck_rec/p"}}}


def colours() -> list[int]:
    """86 colours whose channels together cover every value 0..255."""
    out = []
    for k in range(86):
        r, g, b = (min(255, 3 * k + i) for i in range(3))
        out.append(r << 16 | g << 8 | b)
    return out


def main(url: str) -> None:
    rows = []
    with ComfyClient(url) as comfy:
        stats = comfy.system_stats()["system"]
        for graph_name, graph in (("invert", GRAPH_INVERT), ("plain", GRAPH_PLAIN)):
            for colour in colours():
                wf = json.loads(json.dumps(graph))
                wf["1"]["inputs"]["color"] = colour
                result = comfy.run(wf, timeout=60)
                if not result.ok:
                    sys.exit(result.failure_message())
                image = Image.open(io.BytesIO(comfy.view(**result.images()[0]))).convert("RGB")
                pixel = cast(tuple[int, ...], image.getpixel((0, 0)))
                rows.append({"graph": graph_name, "color": colour, "pixel": list(pixel)})
    json.dump({"recorded": datetime.now(UTC).isoformat(timespec="seconds"),
               "server": {k: stats.get(k) for k in ("comfyui_version", "pytorch_version", "argv")},
               "graphs": {"invert": GRAPH_INVERT, "plain": GRAPH_PLAIN}, "values": rows}, sys.stdout, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188")
