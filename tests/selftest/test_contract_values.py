"""Values, not only shapes: real ComfyUI's output pixels (fixtures/recordings/pixel_values*.json, every channel
value 0..255 through EmptyImage -> [ImageInvert] -> SaveImage) against comfycheck's prediction and the stand-in.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from comfycheck.comfy.expected import intermediate_dtype, predict
from comfycheck.config.paths import PROJECT_ROOT

pytestmark = pytest.mark.selftest
RECORDED = PROJECT_ROOT / "fixtures" / "recordings"


def rows(name: str) -> tuple[dict, list[tuple[dict, dict]]]:
    data = json.loads((RECORDED / name).read_text())
    graphs = []
    for row in data["values"]:
        graph = json.loads(json.dumps(data["graphs"][row["graph"]]))
        graph["1"]["inputs"]["color"] = row["color"]
        graphs.append((graph, row))
    return data["server"], graphs


@pytest.mark.parametrize("name", ["pixel_values.json", "pixel_values_fp16.json"])
def test_prediction_is_real_comfyuis_arithmetic(name):
    server, graphs = rows(name)
    dtype = intermediate_dtype(server["argv"])
    wrong = [(row["graph"], hex(row["color"]), row["pixel"], predict(graph, dtype=dtype)[0].rgb)
             for graph, row in graphs if list(predict(graph, dtype=dtype)[0].rgb) != row["pixel"]]
    assert not wrong, f"{len(wrong)} of {len(graphs)} predictions differ from real ComfyUI: {wrong[:5]}"


def test_recordings_cover_every_channel_value():
    _, graphs = rows("pixel_values.json")
    for kind in ("invert", "plain"):
        seen = {(row["color"] >> s) & 0xFF for _, row in graphs if row["graph"] == kind for s in (16, 8, 0)}
        assert seen == set(range(256)), f"{kind}: channel values never recorded: {sorted(set(range(256)) - seen)}"


def test_naive_inversion_would_be_a_false_alarm():
    """Why the prediction exists: 255 - c disagrees with the real server on most channel values."""
    _, graphs = rows("pixel_values.json")
    naive_wrong = sum(row["pixel"][i] != 255 - ((row["color"] >> s) & 0xFF)
                      for _, row in graphs if row["graph"] == "invert" for i, s in enumerate((16, 8, 0)))
    assert naive_wrong > 100, naive_wrong


def test_standin_outputs_real_pixels(comfy, profile):
    if not profile.embedded:
        pytest.skip(f"the stand-in's pixels are checked on the embedded stack; profile {profile.name!r} has none")
    _, graphs = rows("pixel_values.json")
    wrong = []
    for graph, row in graphs:
        graph["3"]["inputs"]["filename_prefix"] = f"contract_values/{row['graph']}"
        result = comfy.run(graph, timeout=30)
        assert result.ok, result.failure_message()
        image = np.asarray(Image.open(io.BytesIO(comfy.view(**result.images()[0]))).convert("RGB"))
        if not (image == np.array(row["pixel"], dtype=np.uint8)).all():
            wrong.append((row["graph"], hex(row["color"]), row["pixel"], image[0, 0].tolist()))
    assert not wrong, f"{len(wrong)} of {len(graphs)} stand-in outputs differ from real ComfyUI's: {wrong[:5]}"
