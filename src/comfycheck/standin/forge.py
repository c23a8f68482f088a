"""A Forge stand-in: a Gradio app with stable-diffusion-webui-forge's element ids and health endpoints.

python -m comfycheck.standin.forge --port 27860 [--vram-total-gib 12] [--gpu-name "..."]

Forge is a Gradio Blocks app mounted on FastAPI; the UI checks rely on its ids (#tabs, #txt2img_prompt,
#txt2img_generate) and the API checks on /internal/ping and /sdapi/v1/{options,sd-models,memory}.
Generation is not simulated: Forge only has to be preserved beside ComfyUI.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a test stack

import gradio as gr
import psutil
import uvicorn
from fastapi import FastAPI

from ..config.units import GiB

MODEL = "flux1-dev-bnb-nf4-v2.safetensors"


def api(args: argparse.Namespace) -> FastAPI:
    app = FastAPI(title="Forge stand-in (comfycheck)")
    total = int(args.vram_total_gib * GiB)
    used = int(args.vram_used_gib * GiB)

    @app.get("/internal/ping")
    def ping():
        return {}

    @app.get("/sdapi/v1/options")
    def options():
        return {"sd_model_checkpoint": MODEL, "forge_preset": "flux", "samples_format": "png",
                "forge_additional_modules": [], "sd_checkpoint_hash": None}

    @app.get("/sdapi/v1/sd-models")
    def sd_models():
        return [{"title": MODEL, "model_name": MODEL.rsplit(".", 1)[0], "hash": None, "sha256": None,
                 "filename": f"/srv/forge/models/Stable-diffusion/{MODEL}", "config": None}]

    @app.get("/sdapi/v1/memory")
    def memory():
        vm = psutil.virtual_memory()
        return {
            "ram": {"free": vm.available, "used": vm.total - vm.available, "total": vm.total},
            "cuda": {
                "system": {"free": total - used, "used": used, "total": total},
                "active": {"current": used, "peak": used},
                "allocated": {"current": used, "peak": used},
                "reserved": {"current": used, "peak": used},
                "inactive": {"current": 0, "peak": 0},
                "events": {"retries": 0, "oom": 0},
            },
            # not in Forge's answer: the stand-in says which simulated card it is on
            "comfycheck_device": {"name": args.gpu_name},
        }

    return app


def ui() -> gr.Blocks:
    with gr.Blocks(title="Stable Diffusion", analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("txt2img", elem_id="tab_txt2img"):
                with gr.Row():
                    prompt = gr.Textbox(label="Prompt", elem_id="txt2img_prompt", lines=3,
                                        placeholder="Prompt (Ctrl+Enter to generate)")
                    generate = gr.Button("Generate", elem_id="txt2img_generate", variant="primary")
                gr.Textbox(label="Negative prompt", elem_id="txt2img_neg_prompt", lines=2)
                with gr.Row():
                    gr.Slider(1, 150, value=20, step=1, label="Sampling steps", elem_id="txt2img_steps")
                    gr.Slider(64, 2048, value=896, step=8, label="Width", elem_id="txt2img_width")
                    gr.Slider(64, 2048, value=1152, step=8, label="Height", elem_id="txt2img_height")
                status = gr.Markdown("Forge stand-in: generation is not simulated.", elem_id="txt2img_status")
                generate.click(lambda p: f"Queued: {p!r} (the stand-in does not generate)", prompt, status)
            with gr.Tab("img2img", elem_id="tab_img2img"):
                gr.Textbox(label="Prompt", elem_id="img2img_prompt", lines=3)
            with gr.Tab("Settings", elem_id="tab_settings"):
                gr.Markdown(f"Checkpoint: {MODEL}")
    return demo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m comfycheck.standin.forge", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--vram-total-gib", type=float, default=12.0)
    p.add_argument("--vram-used-gib", type=float, default=6.8)
    p.add_argument("--gpu-name", default="NVIDIA GeForce RTX 3080 Ti (comfycheck stand-in, simulated)")
    args = p.parse_args(argv)
    theme = gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])  # no web fonts: loopback only
    demo = ui()
    # Gradio's queue looks for work every millisecond on Linux (0.05 s on Windows): a tenth of a core for an idle
    # stand-in, one per embedded stack; its one button does not need to answer within a millisecond
    demo._queue.sleep_when_free = demo._queue.progress_update_sleep_when_free = 0.05
    app = gr.mount_gradio_app(api(args), demo, path="/", theme=theme, ssr_mode=False)
    print(f"Forge stand-in ready on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
