"""Open N WebSocket connections the way ComfyClient opens them (greeting included) and count the stalls.

    .venv/bin/python loadtests/bench_ws_connect.py --count 2000 [--public] [--comfy-profile PATH]

A stall is a connection that took longer than --stall-s to deliver its `status` greeting, or none at all.
It prints the count, the stalls and the connect-time percentiles; exit 1 if any connection stalled or failed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from comfycheck.comfy.client import ComfyClient, ComfyError
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.config.targets import percentile


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--public", action="store_true", help="through the profile's public URL (the proxy)")
    ap.add_argument("--stall-s", type=float, default=2.0)
    ap.add_argument("--comfy-profile", default=None)
    args = ap.parse_args()
    try:
        profile = load_profile(args.comfy_profile)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return 2
    client = ComfyClient.from_profile(profile, public=args.public,
                                      origin=profile.public.origin if args.public and profile.public else None)
    times, stalls, failures = [], [], []
    t_all = time.perf_counter()
    for i in range(args.count):
        t0 = time.perf_counter()
        try:
            with client.websocket():
                pass
        except ComfyError as exc:
            failures.append(f"#{i}: {exc}")
            continue
        took = time.perf_counter() - t0
        times.append(took * 1000)
        if took > args.stall_s:
            stalls.append(f"#{i}: {took:.2f} s")
    wall = time.perf_counter() - t_all
    where = (profile.public_url if args.public else None) or profile.comfyui.url
    print(f"{args.count} WebSocket connections to {where} in {wall:.1f} s: {len(times)} greeted, "
          f"{len(stalls)} stalled (> {args.stall_s:g} s), {len(failures)} failed")
    if times:
        print(f"connect + greeting: median {statistics.median(times):.2f} ms, p95 {percentile(times, 95):.2f} ms, "
              f"p99 {percentile(times, 99):.2f} ms, max {max(times):.2f} ms")
    for line in (stalls + failures)[:20]:
        print("  " + line)
    return 1 if stalls or failures else 0


if __name__ == "__main__":
    sys.exit(main())
