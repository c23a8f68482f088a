"""Run the stand-in ComfyUI: python -m comfycheck.standin --port 28188 --control-port 28189 --data-dir DIR."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from .server import FAULTS, StandIn


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m comfycheck.standin", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8188)
    p.add_argument("--control-port", type=int, default=0,
                   help="loopback port for the fault switches (0: none, as for a fleet's other backends)")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model", action="append", default=[], metavar="FOLDER/FILE",
                   help="a model file the loaders offer, e.g. vae/qwen_image_vae.safetensors")
    p.add_argument("--startup-delay", type=float, default=0.0, help="seconds before the port is bound")
    p.add_argument("--model-step-s", type=float, default=0.05, help="simulated seconds per model step")
    p.add_argument("--vram-total-gib", type=float, default=24.0)
    p.add_argument("--vram-idle-gib", type=float, default=0.4)
    p.add_argument("--max-upload-size", type=float, default=None, metavar="MiB",
                   help="ComfyUI's own flag: the largest request body in MiB (its help says MB; it counts "
                        "2^20 bytes); default 100")
    p.add_argument("--faults", default="{}", help=f"JSON of fault switches to start with: {sorted(FAULTS)}")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    for spec in args.model:
        path = args.data_dir / "models" / spec
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    standin = StandIn(args.data_dir, host=args.host, port=args.port, model_step_s=args.model_step_s,
                      vram_total_gib=args.vram_total_gib, vram_idle_gib=args.vram_idle_gib,
                      max_upload_mib=args.max_upload_size, faults=json.loads(args.faults))
    runners = []
    apps = [(standin.control_app(), args.control_port)] if args.control_port else []
    for app, port in apps + [(standin.app(), args.port)]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, port).start()
        runners.append(runner)
    print(f"stand-in ComfyUI ready on http://{args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in reversed(runners):
        await runner.cleanup()


CRASH_AT_START = "crash-at-start"  # in the data folder: every start exits at once, with the code and words it holds


def main(argv=None) -> None:
    args = parse_args(argv)
    crash = args.data_dir / CRASH_AT_START
    if crash.is_file():  # a watchdog's crash loop: what a bad argument left in ComfyUI's command line does
        code, _, words = crash.read_text().partition(" ")
        print(words.strip(), file=sys.stderr, flush=True)
        sys.exit(int(code))
    # Real ComfyUI binds its port only after importing every node; a startup delay imitates that.
    time.sleep(args.startup_delay)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
