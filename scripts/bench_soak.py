"""What the soak costs, in three figures (the issue's budget in brackets):

    .venv/bin/python scripts/bench_soak.py cpu    [--profile P] [--minutes 10]
        the soak's CPU at 1 Hz (budget: <= 1 % of a core)
    .venv/bin/python scripts/bench_soak.py rss    [--profile P] [--minutes 30]
        its RSS at 10 Hz, after 1 min against the end (budget: within 10 %)
    .venv/bin/python scripts/bench_soak.py report [--rounds 86400]
        a 24-hour report: its time and peak memory (budget: <= 5 s, <= 300 MB)

cpu and rss run `python -m comfycheck.soak` as a subprocess against the profile's deployment (default: the embedded
stack) and read the subprocess's CPU time and RSS with psutil; report writes a synthetic day of samples (one round
a second, a canary every 10 minutes, a few outages and WebSocket drops) and times `python -m comfycheck.soak report`.
"""
from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from comfycheck.config.paths import PROJECT_ROOT as ROOT
from comfycheck.config.units import MB
from comfycheck.polling import wait_until
from comfycheck.soak.samples import SampleStore, Tick


def _after(due: float):
    """A probe for wait_until: true once the monotonic clock has passed `due`."""
    return lambda: time.monotonic() >= due


def soak(profile: str | None, out: Path, seconds: float, interval: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "comfycheck.soak", f"--duration={seconds}s", f"--interval={interval}s",
           f"--out={out}", "--no-history", "--quiet"] + ([f"--profile={profile}"] if profile else [])
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rounds_written(out: Path) -> int:
    import sqlite3
    try:
        with sqlite3.connect(f"file:{out / 'samples.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    except sqlite3.Error:
        return 0


def cpu(args) -> int:
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak"
        proc = soak(args.profile, out, seconds, 1.0)
        p = psutil.Process(proc.pid)
        wait_until(lambda: rounds_written(out) >= 1, timeout=120, interval=0.2, what="the soak's first round")
        c0, t0 = sum(p.cpu_times()[:2]), time.monotonic()  # after start-up (imports, the stack, the first canary)
        wait_until(lambda: rounds_written(out) >= seconds - 5, timeout=seconds + 120, interval=1.0,
                   what=f"{seconds - 5:.0f} rounds")
        c1, t1 = sum(p.cpu_times()[:2]), time.monotonic()
        text, _ = proc.communicate(timeout=120)
        total = resource.getrusage(resource.RUSAGE_CHILDREN)
    steady = (c1 - c0) / (t1 - t0)
    print(f"soak at 1 Hz for {args.minutes:g} min: {rounds_written_text(text)}")
    print(f"steady state: {c1 - c0:.2f} s CPU in {t1 - t0:.0f} s = {100 * steady:.2f} % of one core "
          f"({1000 * (c1 - c0) / (t1 - t0):.2f} ms per round)")
    print(f"whole process, start-up and report included: {total.ru_utime + total.ru_stime:.2f} s CPU "
          f"= {100 * (total.ru_utime + total.ru_stime) / seconds:.2f} % of one core over {seconds:.0f} s")
    return 0 if steady <= 0.01 else 1


def rounds_written_text(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("soak: ")), text.strip()[-300:])


def rss(args) -> int:
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak"
        proc = soak(args.profile, out, seconds + 30, 0.1)
        p = psutil.Process(proc.pid)
        wait_until(lambda: rounds_written(out) >= 1, timeout=120, interval=0.2, what="the soak's first round")
        t0 = time.monotonic()
        readings = []
        for minute in range(1, int(args.minutes) + 1):
            wait_until(_after(t0 + minute * 60), timeout=120, interval=1.0, what=f"minute {minute}")
            readings.append((minute, p.memory_info().rss / MB, rounds_written(out)))
            print(f"  minute {minute:3d}: RSS {readings[-1][1]:.1f} MB, {readings[-1][2]} rounds", flush=True)
        proc.terminate()
        proc.communicate(timeout=120)
    first, last = readings[0][1], readings[-1][1]
    print(f"soak at 10 Hz: RSS {first:.1f} MB after 1 min, {last:.1f} MB after {args.minutes:g} min "
          f"({readings[-1][2]} rounds): {100 * (last - first) / first:+.1f} %")
    return 0 if abs(last - first) <= 0.1 * first else 1


def synthetic_day(folder: Path, rounds: int) -> None:
    rng = random.Random(13)
    start = time.time() - rounds
    outages = {rng.randrange(rounds): rng.randrange(2, 60) for _ in range(6)}
    with SampleStore(folder / "samples.sqlite", create=True) as store:
        store.set_meta(profile="synthetic", profile_path="-", started="2026-11-23T03:00:00+00:00", start_t=start,
                       duration_s=float(rounds), interval_s=1.0, probe_timeout_s=5.0, canary_every_s=600.0,
                       canary="smoke", comfyui_url="http://127.0.0.1:8188", public_url="https://example.test",
                       websocket_idle_s=90.0, gpu_source="nvml", gpu_device="nvml:0 synthetic", on_gpu=True,
                       process_watched=True, versions={}, stopped_by="the duration", finished="-")
        down_until = -1
        batch = []
        for i in range(rounds):
            if i in outages:
                down_until = i + outages[i]
            up = i >= down_until
            batch.append(Tick(start + i, up, "" if up else "backend,proxy", 2 + rng.random() if up else None,
                              8 + 3 * rng.random() if up else None, "" if up else "cannot reach ComfyUI",
                              up, rng.choice((0, 0, 0, 1)), int(8e9 + 4e9 * rng.random()), int(24e9),
                              55 + 10 * rng.random(), int(3e9 + 1e5 * i), 5 * rng.random(), 4242))
            if len(batch) == 5000:
                store.add_ticks(batch)
                batch = []
        store.add_ticks(batch)
        for i in range(0, rounds, 600):
            store.add_canary(start + i, True, 14 + rng.random(), 15 + rng.random())
        for i in outages:
            store.add_event(start + i, "ws_drop", 3.0, "the server closed the connection")


def report(args) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic_day(folder, args.rounds)
        cmd = [sys.executable, "-m", "comfycheck.soak", "report", str(folder)]
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
            times.append(time.monotonic() - t0)
            if done.returncode not in (0, 1):
                raise SystemExit(done.stdout + done.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest of the three (KB on Linux)
        size = (folder / "report.html").stat().st_size
    wall = sorted(times)[1]
    print(f"24-hour report ({args.rounds} rounds per series): median {wall:.2f} s of 3, peak RSS {peak:.0f} MB, "
          f"page {size / 1024:.0f} KB (whole command, Python start-up included)")
    return 0 if wall <= 5 and peak <= 300 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("cpu", "rss", "report"))
    p.add_argument("--profile")
    p.add_argument("--minutes", type=float)
    p.add_argument("--rounds", type=int, default=86400)
    args = p.parse_args()
    args.minutes = args.minutes or {"cpu": 10, "rss": 30}.get(args.what, 0)
    return {"cpu": cpu, "rss": rss, "report": report}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
