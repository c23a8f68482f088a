"""How much CPU the GPU sampler costs: run it at --hz for --seconds and report its thread's CPU time.

    .venv/bin/python loadtests/bench_sampler.py [--profile PATH] [--hz 10] [--seconds 20]

Samples NVML when it is available on this host (ComfyUI's card, matched as in a load run), else /system_stats.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from comfycheck.comfy.client import ComfyClient
from comfycheck.config.profile import load_profile
from comfycheck.polling import wait_until
from comfycheck.probes.gpu import Sampler
from comfycheck.probes.gpu_choice import choose_source


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile")
    p.add_argument("--hz", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    profile = load_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp, ComfyClient.from_profile(profile) as client:
        choice = choose_source(profile, client)
        source = choice.source
        sampler = Sampler(source, Path(tmp) / "samples.csv", args.hz).start()
        wanted = int(args.hz * args.seconds)
        wait_until(lambda: sampler.count >= wanted, timeout=args.seconds * 3, interval=0.5,
                   what=f"{wanted} samples")
        sampler.stop()
    print(f"source {source.name} ({source.device}); {sampler.count} samples in {sampler.wall_s:.1f} s "
          f"({sampler.count / sampler.wall_s:.2f} Hz), {sampler.errors} errors")
    print(f"sampler thread CPU {sampler.cpu_s:.3f} s = {100 * sampler.cpu_share_of_one_core:.2f} % of one core "
          f"({1000 * sampler.cpu_s / max(1, sampler.count):.2f} ms per sample)")
    for note in choice.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
