"""What a class run holds and costs, in the figures issue 22 asks for (its bound in brackets):

    .venv/bin/python scripts/bench_class.py students [--students 200] [--rate-per-min 300] [--duration-s 40]
        one Locust process holding every student's page WebSocket through the embedded nginx while prompts arrive
        (the model-free workflow): students, connections held, client overhead p95 (<= 20 ms), queue-wait agreement
        p95 (<= 50 ms), the process's CPU
    .venv/bin/python scripts/bench_class.py burst [--students 30] [--profile P]
        the class presses Run at once: the whole run's time against 30 x service time + 30 s
    .venv/bin/python scripts/bench_class.py workers [--students 10] [--prompts-each 2] [--profile P]
        one process against a master with 2 worker processes: exactly students x prompts each, the same figures

Each runs loadtests/classroom.py as a subprocess against the profile's deployment (default: the embedded stack,
started if it is not running) and reads the run's own files (prompts.jsonl, summary.json).
"""
from __future__ import annotations

import argparse
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from comfycheck.classrun import records as raw
from comfycheck.classrun.report import SUMMARY_JSON, ClassSummary
from comfycheck.config.paths import DEFAULT_PROFILE
from comfycheck.config.paths import PROJECT_ROOT as ROOT
from comfycheck.config.profile import load_profile
from comfycheck.config.targets import percentile
from comfycheck.load.locust import class_command, class_master_args, class_worker_command
from comfycheck.stack import EmbeddedStack

FAST_WORKFLOW = "smoke_modelfree.json"  # the stand-in runs it in milliseconds: the client's cost stands out


def profile_with(profile: Path, folder: Path, **comfyui) -> Path:
    """A copy of the profile with [comfyui] keys replaced (paths made absolute, as the copy lives elsewhere)."""
    text = profile.read_text()
    for k, v in comfyui.items():
        text = re.sub(rf'(?m)^{k} = .*$', f'{k} = "{v}"', text, count=1)
    for k in ("edit_image", "ca_bundle"):
        text = re.sub(rf'(?m)^({k} = )"(?!/)([^"]+)"', lambda m: f'{m[1]}"{ROOT / m[2]}"', text)
    out = folder / profile.name
    out.write_text(text)
    return out


def stack_for(path: Path) -> None:
    p = load_profile(path)
    if p.embedded:
        EmbeddedStack(p).up()


def figures(out: Path) -> dict[str, float]:
    recs = raw.read(out / raw.PROMPTS_JSONL)
    ok = [r for r in recs if r.ok]
    overhead = [r.overhead_ms for r in ok if r.overhead_ms is not None]
    agree = [abs(r.client_queue_wait_s - r.queue_wait_s) * 1000 for r in ok
             if r.client_queue_wait_s is not None and r.queue_wait_s is not None]
    parts = [r.overhead_parts_ms for r in ok if r.overhead_parts_ms is not None]
    execs = [r.execution_s for r in ok if r.execution_s is not None]
    results = [r.result_s for r in ok if r.result_s is not None]
    waits = [r.queue_wait_s for r in ok if r.queue_wait_s is not None]
    span = (max(r.end_ms for r in ok if r.end_ms) - min(r.create_ms for r in ok if r.create_ms)) / 1000 if ok else 0
    return {
        "prompts": len(recs), "ok": len(ok), "students": len({r.student for r in recs}),
        "overhead_p95_ms": percentile(overhead, 95) if overhead else float("nan"),
        "before_create_p95_ms": percentile([p[0] for p in parts], 95) if parts else float("nan"),
        "end_delivery_p95_ms": percentile([p[1] for p in parts], 95) if parts else float("nan"),
        "client_step_p95_ms": percentile([p[2] for p in parts], 95) if parts else float("nan"),
        "agreement_p95_ms": percentile(agree, 95) if agree else float("nan"),
        "execution_mean_s": statistics.mean(execs) if execs else float("nan"),
        "result_p50_s": statistics.median(results) if results else float("nan"),
        "result_p95_s": percentile(results, 95) if results else float("nan"),
        "queue_wait_p95_s": percentile(waits, 95) if waits else float("nan"),
        "images_per_min": 60 * len(ok) / span if span else float("nan"),
    }


def run_class(path: Path, out: Path, *args: str, watch_port: int | None = None) -> tuple[int, float, float, int]:
    """The run's exit code, wall seconds, CPU seconds of it and its children, and the most connections it held to
    `watch_port` at once."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(class_command(path, out, allow_load=True, keep=False) + list(args), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    most = 0
    while True:
        try:
            proc.wait(timeout=0.5)  # the sampling interval of the connection count, bounded by the run's own end
            break
        except subprocess.TimeoutExpired:
            if watch_port is not None:
                most = max(most, held(proc.pid, watch_port))
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        print(proc.stdout.read() if proc.stdout else "", file=sys.stderr)
    return proc.returncode, wall, cpu, most


def held(pid: int, port: int) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).net_connections("tcp")
                   if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    except psutil.Error:
        return 0


def show(name: str, f: dict[str, float]) -> None:
    print(f"{name}: {f['ok']}/{f['prompts']} prompts back from {f['students']} students; time to result p50 "
          f"{f['result_p50_s']:.2f} s, p95 {f['result_p95_s']:.2f} s; queue wait p95 {f['queue_wait_p95_s']:.2f} s; "
          f"execution mean {f['execution_mean_s']:.3f} s; {f['images_per_min']:.1f} images/min")
    print(f"  client overhead p95 {f['overhead_p95_ms']:.1f} ms (<= 20 ms) [submit -> create_time "
          f"{f['before_create_p95_ms']:.1f} ms, ComfyUI's end -> socket {f['end_delivery_p95_ms']:.1f} ms, end "
          f"received -> download {f['client_step_p95_ms']:.1f} ms]; queue wait against ComfyUI's timestamps p95 "
          f"{f['agreement_p95_ms']:.1f} ms (<= 50 ms)")


def students(args, tmp: Path) -> int:
    path = profile_with(args.profile, tmp, generation_workflow=FAST_WORKFLOW)
    stack_for(path)
    p = load_profile(path)
    port = urlsplit(p.public.url).port if p.public else urlsplit(p.comfyui.url).port
    out = tmp / "students"
    rc, wall, cpu, most = run_class(path, out, "--students", str(args.students), "--shape", "rate",
                                    "--rate-per-min", str(args.rate_per_min), "--duration-s", str(args.duration_s),
                                    watch_port=port)
    f = figures(out)
    show(f"{args.students} students, prompts at {args.rate_per_min:g}/min for {args.duration_s:g} s (exit {rc})", f)
    print(f"  one Locust process held up to {most} connections to port {port} ({args.students} page WebSockets and "
          f"the students' HTTP connections); CPU {cpu:.1f} s in {wall:.1f} s: {100 * cpu / wall:.0f} % of one core")
    return 0 if rc == 0 else 1


def burst(args, tmp: Path) -> int:
    path = profile_with(args.profile, tmp)
    stack_for(path)
    out = tmp / "burst"
    rc, wall, cpu, _ = run_class(path, out, "--students", str(args.students), "--prompts-each", "1")
    f = figures(out)
    bound = args.students * f["execution_mean_s"] + 30
    show(f"burst of {args.students} (exit {rc})", f)
    print(f"  finished and reported in {wall:.1f} s (bound {args.students} x {f['execution_mean_s']:.2f} s + 30 s = "
          f"{bound:.1f} s): {'within' if wall <= bound else 'OVER'}; CPU {cpu:.1f} s")
    return 0 if rc == 0 and wall <= bound else 1


def workers(args, tmp: Path) -> int:
    path = profile_with(args.profile, tmp)
    stack_for(path)
    want = args.students * args.prompts_each
    each = ["--students", str(args.students), "--prompts-each", str(args.prompts_each)]
    one = tmp / "one"
    rc1, wall1, _, _ = run_class(path, one, *each)
    master_out = tmp / "master"
    with socket.socket() as s:  # a free port for the master, taken by it a moment later
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spawned = [subprocess.Popen(class_worker_command("127.0.0.1", port), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        rc2, wall2, _, _ = run_class(path, master_out, *each, *class_master_args(2, port))
    finally:
        for w in spawned:
            w.kill()
            w.wait(timeout=30)
    f1, f2 = figures(one), figures(master_out)
    show(f"one process (exit {rc1}, {wall1:.1f} s)", f1)
    show(f"master + 2 workers (exit {rc2}, {wall2:.1f} s)", f2)
    summary = ClassSummary.read(master_out / SUMMARY_JSON)
    exact = f2["prompts"] == want == summary.prompts_requested
    print(f"  master + 2 workers: {f2['prompts']} prompts of {want} asked ({'exact' if exact else 'NOT exact'}); "
          f"time to result p95 {f2['result_p95_s']:.2f} s against {f1['result_p95_s']:.2f} s in one process")
    return 0 if rc1 == rc2 == 0 and exact else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for name, students_default in (("students", 200), ("burst", 30), ("workers", 10)):
        s = sub.add_parser(name)
        s.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
        s.add_argument("--students", type=int, default=students_default)
        s.add_argument("--keep", type=Path, default=None, help="keep the runs' folders here (default: removed)")
        if name == "students":
            s.add_argument("--rate-per-min", type=float, default=300.0)
            s.add_argument("--duration-s", type=float, default=40.0)
        if name == "workers":
            s.add_argument("--prompts-each", type=int, default=2)
    args = p.parse_args()
    run = {"students": students, "burst": burst, "workers": workers}[args.what]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args, args.keep)
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
