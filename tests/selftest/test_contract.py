"""Contract tests: the recordings of a real ComfyUI 0.33.0 server, replayed against the embedded stack.

Same statuses, same JSON keys and types, same WebSocket message sequences, same error bodies. On the stand-in they
hold it to the real server; on the stack's real ComfyUI (profiles/local-real.toml) they check the tests themselves.
"""
from __future__ import annotations

import io
import json
import uuid

import pytest
from PIL import Image

from comfycheck.comfy.client import ComfyClient, ComfyError
from comfycheck.comfy.protocol import protocol_problems
from comfycheck.comfy.workflows import make_unique
from tests.selftest.helpers import RECORDINGS, recording

pytestmark = pytest.mark.selftest


@pytest.fixture(scope="module", autouse=True)
def _embedded_only(profile):
    if not profile.embedded:
        pytest.skip(f"contract tests replay recordings against the embedded stack; profile {profile.name!r} has none")


def load(name: str):
    path = recording(name)
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def shape(value):
    """Keys and types, not values: what a client relies on."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def recorded_types(name: str) -> list[str]:
    """The recorded message types after the greeting (the `status` with `sid` that websocket() consumes)."""
    return [r["message"]["type"] for r in load(name) if r["kind"] == "text" and "sid" not in r["message"]["data"]]


@pytest.mark.parametrize("path, recorded", [
    ("/system_stats", "system_stats.json"), ("/queue", "queue_empty.json"), ("/prompt", "prompt_get_queue_info.json"),
    ("/features", "features.json"), ("/models", "models.json"), ("/embeddings", "embeddings.json"),
    ("/users", "users.json"), ("/object_info/NoSuchNode", "object_info_unknown_node.json"),
    ("/history/00000000-0000-0000-0000-000000000000", "history_unknown_id.json"),
])
def test_basic_gets_match(comfy, path, recorded):
    live = comfy.request("GET", path).json()
    expected = load(recorded)
    if path == "/system_stats":  # a CUDA device (simulated) has an int index where the CPU recording has null
        assert shape(live["system"]) == shape(expected["system"])
        assert set(live["devices"][0]) == set(expected["devices"][0])
        return
    assert shape(live) == shape(expected)


def test_get_statuses_and_headers_match(comfy):
    meta = load("responses_meta_part1.json")
    for path, rec in meta.items():
        if path in ("/history", "/api/jobs", "/settings"):  # contents depend on what ran before
            continue
        resp = comfy.request("GET", path, expect=())
        assert resp.status_code == rec["status"], f"GET {path}: {resp.status_code}, recorded {rec['status']}"
        for header in ("Content-Type", "Server"):
            assert resp.headers.get(header) == rec["headers"].get(header), f"GET {path} header {header}"


def test_object_info_entries_match_recorded_shapes(comfy):
    recorded = load("object_info_subset.json")
    live = comfy.object_info()
    for name in ("EmptyImage", "ImageInvert", "SaveImage", "KSampler", "TextEncodeQwenImageEditPlus"):
        assert live[name] == recorded[name], f"/object_info {name} differs from the recording"
    assert set(live["LoadImage"]) == set(recorded["LoadImage"])


ERROR_CASES = sorted(p.name for p in RECORDINGS.glob("prompt_error_*.json"))


@pytest.mark.parametrize("name", ERROR_CASES)
def test_prompt_errors_match(comfy, name):
    rec = load(name)
    req = rec["request"]
    if "body" in req:
        content, ctype = json.dumps(req["body"]).encode(), "application/json"
    else:
        content, ctype = req["raw_body"].encode(), req["content_type"]
    resp = comfy.request("POST", "/prompt", expect=(), content=content, headers={"Content-Type": ctype})
    assert resp.status_code == rec["status"]
    assert resp.headers["Content-Type"] == rec["headers"]["Content-Type"]
    if rec["status"] == 500:
        assert resp.text == rec["body"]
        return
    live, expected = resp.json(), rec["body"]
    assert live["error"] == expected["error"]
    assert list(live["node_errors"]) == list(expected["node_errors"])
    for node_id, exp in expected["node_errors"].items():
        got = live["node_errors"][node_id]
        assert (got["class_type"], got["dependent_outputs"]) == (exp["class_type"], exp["dependent_outputs"])
        for g, e in zip(got["errors"], exp["errors"], strict=True):
            keys = ("type", "message", "details")
            assert {k: g[k] for k in keys} == {k: e[k] for k in keys}
            assert set(g["extra_info"]) == set(e["extra_info"])
            assert {k: v for k, v in g["extra_info"].items() if k != "traceback"} == \
                   {k: v for k, v in e["extra_info"].items() if k != "traceback"}


def _modelfree():
    return make_unique(load("workflow_modelfree_api.json"))


def test_success_run_message_sequence_and_history(comfy):
    result = comfy.run(_modelfree(), timeout=30)
    assert result.ok and not protocol_problems(result)
    assert result.message_types == recorded_types("ws_messages_success.jsonl")
    recorded = [r["message"]["data"] for r in load("ws_messages_success.jsonl") if "sid" not in r["message"]["data"]]
    for m, rec in zip(result.messages, recorded, strict=True):
        assert shape(m.data) == shape(rec), f"{m.type} message differs in keys or types"
    (expected,) = load("history_success.json").values()
    assert shape(result.history) == shape(expected)
    png = comfy.view(**result.images()[0])
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_identical_prompt_is_answered_from_cache(comfy):
    wf = _modelfree()
    first = comfy.run(wf, timeout=30)
    again = comfy.run(wf, timeout=30)
    assert again.message_types == recorded_types("ws_messages_cached.jsonl")
    assert again.cached_nodes == ["1", "2", "3"] and again.images() == first.images()
    (expected,) = load("history_cached.json").values()
    assert shape(again.history) == shape(expected)


def test_execution_error_sequence_and_history(comfy):
    comfy.upload_image(b"this is not an image", "acceptance_corrupt.png", overwrite=True)
    result = comfy.run(load("workflow_exec_error_api.json"), timeout=30)
    assert result.status == "error"
    assert result.message_types == recorded_types("ws_messages_exec_error.jsonl")
    (recorded,) = [r["message"]["data"] for r in load("ws_messages_exec_error.jsonl")
                   if r["message"]["type"] == "execution_error"]
    assert set(result.error) == set(recorded)
    assert result.error["exception_type"] == "PIL.UnidentifiedImageError"
    (expected,) = load("history_exec_error.json").values()
    assert shape({k: v for k, v in result.history.items() if k != "prompt"}) == \
           shape({k: v for k, v in expected.items() if k != "prompt"})
    job = comfy.request("GET", f"/api/jobs/{result.prompt_id}").json()
    assert set(job) == set(load("api_job_failed.json")) and job["status"] == "failed"


def test_interrupt_ends_the_prompt_as_recorded(comfy, profile):
    if not profile.comfyui.models_installed:
        pytest.skip(f"interrupting needs a sampler that reports progress (the generation workflow); profile "
                    f"{profile.name!r} says its models are not installed")
    wf = make_unique(json.loads(profile.workflow_path(profile.comfyui.generation_workflow).read_text()))
    comfy.upload_image(profile.resolve(profile.comfyui.edit_image), "edit_input.png", overwrite=True)
    with comfy.websocket() as ws:
        queued = comfy.submit(wf, ws.sid)
        while True:
            msg = ws.next(30)
            assert msg is not None, "no progress message before the deadline"
            if msg["type"] == "progress":
                break
        comfy.interrupt()
        tail: list[dict] = []
        while not tail or tail[-1]["type"] != "executing" or tail[-1]["data"]["node"] is not None:
            msg = ws.next(30)
            assert msg is not None, f"no end of prompt after /interrupt: {tail}"
            if msg["type"] in ("execution_interrupted", "status", "executing"):
                tail.append(msg)
    assert [m["type"] for m in tail] == ["execution_interrupted", "status", "executing"]
    (recorded,) = [r["message"]["data"] for r in load("ws_messages_interrupt_submitter.jsonl")
                   if r["message"]["type"] == "execution_interrupted"]
    assert set(tail[0]["data"]) == set(recorded) and tail[0]["data"]["node_type"] == "KSampler"
    job = comfy.request("GET", f"/api/jobs/{queued['prompt_id']}").json()
    assert job["status"] == "cancelled" and set(job) == set(load("api_job_interrupted.json"))


def test_upload_variants_match(comfy):
    data = Image.new("RGB", (32, 24), (1, 2, 3))
    buf = io.BytesIO()
    data.save(buf, format="PNG")
    name = f"contract_{uuid.uuid4().hex[:6]}.png"
    assert comfy.upload_image(buf.getvalue(), name) == {"name": name, "subfolder": "", "type": "input"}
    assert comfy.upload_image(buf.getvalue(), name)["name"] == name
    other = comfy.upload_image(b"\x89PNG different", name)
    assert other["name"] == name.replace(".png", " (1).png")
    assert comfy.upload_image(buf.getvalue(), name, subfolder="acc_sub")["subfolder"] == "acc_sub"
    wrong = comfy.request("POST", "/upload/image", expect=(), files={"file": (name, buf.getvalue())})
    assert (wrong.status_code, wrong.text) == (400, "")


def test_protocol_checks_match(comfy, profile):
    checks = load("protocol_checks.json")["http_checks"]
    host = profile.comfyui.url.split("//")[1]
    body = json.dumps({"prompt": _modelfree()})
    cases = {
        "POST /prompt Host=127.0.0.1:8188 Origin=https://comfy.example.com": ("POST", "/prompt", {"Origin": "https://comfy.example.com"}),
        "POST /prompt Host=comfy.example.com Origin=https://evil.example.org":
            ("POST", "/prompt", {"Host": "comfy.example.com", "Origin": "https://evil.example.org"}),
        "GET /system_stats Sec-Fetch-Site=cross-site": ("GET", "/system_stats", {"Sec-Fetch-Site": "cross-site"}),
        "GET /ws plain http (no upgrade)": ("GET", "/ws", {}),
        "OPTIONS /prompt": ("OPTIONS", "/prompt", {}),
        "PUT /prompt (wrong method)": ("PUT", "/prompt", {}),
        "GET /prompt/ (trailing slash)": ("GET", "/prompt/", {}),
        "GET /view (no params)": ("GET", "/view", {}),
        "GET /view traversal filename=../../etc/passwd": ("GET", "/view?filename=../../etc/passwd", {}),
        "GET /view traversal subfolder=../..": ("GET", "/view?filename=x.png&subfolder=../..", {}),
        "GET /view absolute filename": ("GET", "/view?filename=/etc/passwd", {}),
        "GET /view bad type": ("GET", "/view?filename=x.png&type=nope", {}),
        "GET /view missing file": ("GET", "/view?filename=does_not_exist.png", {}),
    }
    for key, (method, path, headers) in cases.items():
        resp = comfy.request(method, path, expect=(), headers=headers, content=body if method == "POST" else None)
        assert resp.status_code == checks[key]["status"], f"{key} (Host {host}): {resp.status_code}"
        if key == "GET /ws plain http (no upgrade)":
            assert resp.text == checks[key]["body"]
        if key == "PUT /prompt (wrong method)":
            assert resp.headers["Allow"] == checks[key]["headers"]["Allow"]


def test_upload_over_100_mib_is_refused_with_413(comfy):
    expected = load("protocol_checks.json")["http_checks"]["POST /upload/image 101 MiB"]
    big = b"\0" * (101 * 1024 * 1024)
    resp = comfy.request("POST", "/upload/image", expect=(), files={"image": ("big.png", big, "image/png")})
    assert (resp.status_code, resp.text) == (expected["status"], expected["body"])


def test_websocket_with_mismatched_origin_is_refused(profile):
    with ComfyClient(profile.comfyui.url, origin="https://comfy.example.com") as c:
        with pytest.raises(ComfyError, match="HTTP 403"):
            with c.websocket():
                pass


def test_websocket_feature_flags_exchange(comfy):
    rec = load("ws_feature_flags_exchange.json")
    with comfy.websocket() as ws:
        ws.send(rec["client_sent_first"])
        reply = ws.next(5)
    assert reply == rec["server_messages_in_order"][1]


def test_api_prefix_serves_the_same_api(profile):
    with ComfyClient(profile.comfyui.url, api_prefix="/api") as c:
        assert c.features() == load("features.json")
        with c.websocket("apiws") as ws:
            assert ws.sid == "apiws"
        assert c.run(_modelfree(), timeout=30).ok


def test_unknown_job_is_404(comfy):
    for job in ("not-a-uuid", str(uuid.uuid4())):
        resp = comfy.request("GET", f"/api/jobs/{job}", expect=())
        assert (resp.status_code, resp.json()) == (404, {"error": "Job not found"})


def test_frontend_index_is_served(comfy):
    rec = load("frontend_index.json")
    resp = comfy.request("GET", "/")
    assert resp.status_code == 200 and "<title>ComfyUI</title>" in resp.text
    assert resp.headers["Cache-Control"] == rec["headers"]["Cache-Control"]
    for asset in rec["assets"]:
        got = comfy.request("GET", asset["fetched_path"], expect=())
        assert got.status_code == asset["status"], asset["fetched_path"]
