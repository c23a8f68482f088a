"""Benchmark of the run history at scale: 1,000 runs x 60 measurements of one profile.

    .venv/bin/python scripts/bench_history.py [--runs 1000] [--figures 60] [--repeat 7]

Prints: the trend page's time (analyse + render, and the whole CLI command), and what the report's comparison
with the previous run costs a pytest session: compare() on its own, and the wall time of a small session with
that history against the same session with --no-history (medians of --repeat runs, interleaved).
Targets (issue 12): trend <= 2 s; comparison <= 0.2 s added to a run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.targets import DEFAULT_TARGETS
from comfycheck.history import History
from comfycheck.history.compare import compare
from comfycheck.history.trend import analyse, render
from comfycheck.judge.measurements import Measurement

TARGETS = list(DEFAULT_TARGETS.values())


def figures(n: int, rng: random.Random) -> list[Measurement]:
    out = []
    for i in range(n):
        t = TARGETS[i % len(TARGETS)]
        usual = t.threshold * (0.5 if t.op == "<" else 1.5)
        out.append(Measurement(f"figure {i}", round(usual * rng.uniform(0.9, 1.1), 3), t.unit, t, f"test_{i}"))
    return out


def build(path: Path, runs: int, n: int) -> None:
    rng = random.Random(12)
    with History(path) as h:
        for r in range(runs):
            day = f"{2024 + r // 336}-{1 + r // 28 % 12:02d}-{1 + r % 28:02d}T03:00:00+00:00"
            h.append("production", "pytest", started=day, verdict="passed", outcomes={"passed": 200},
                     versions={"comfyui": f"0.3.{50 + r // 100}", "gpu": "NVIDIA H100"},
                     measurements=figures(n, rng),
                     checks=[(f"tests/acceptance/test_{c}.py::test_{c}", "passed", "") for c in range(200)])


CHECKS = '''
import random

def test_sixty_figures(measure):
    rng = random.Random()
    for i, key in enumerate({keys!r} * 5):
        if i >= {n}:
            break
        t = measure.profile.targets[key]
        usual = t.threshold * (0.5 if t.op == "<" else 1.5)
        measure.against(t, usual * rng.uniform(0.9, 1.1), name=f"figure {{i}}")
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--figures", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=7)
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="comfycheck-bench-"))
    path = work / "history.sqlite"
    t0 = time.perf_counter()
    build(path, opts.runs, opts.figures)
    print(f"history: {opts.runs} runs x {opts.figures} measurements (+200 checks each), "
          f"{path.stat().st_size / 1e6:.1f} MB, built in {time.perf_counter() - t0:.1f} s")

    with History(path) as h:
        t0 = time.perf_counter()
        trend = analyse(h, "production")
        t1 = time.perf_counter()
        page = render(trend)
        t2 = time.perf_counter()
    print(f"trend: analyse {t1 - t0:.2f} s + render {t2 - t1:.2f} s = {t2 - t0:.2f} s "
          f"({len(trend.series)} series, {len(page) / 1e6:.1f} MB page)  [target <= 2 s]")
    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "comfycheck.history", "trend", "--profile", "production",
                        "--history", str(path), "--out", str(work / "trend.html")], check=True, capture_output=True)
        cli.append(time.perf_counter() - t0)
    print(f"trend command, whole process (Python start-up included): median {statistics.median(cli):.2f} s")

    rng = random.Random(5)
    current = figures(opts.figures, rng)
    with History(path) as h:
        times = []
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            c = compare(h, profile="production", kind="pytest", run_id=None, measurements=current,
                        checks={f"tests/acceptance/test_{c}.py::test_{c}": "passed" for c in range(200)},
                        versions={"comfyui": "0.3.59"})
            times.append(time.perf_counter() - t0)
    print(f"comparison with the previous run, compare() alone: median {1000 * statistics.median(times):.1f} ms "
          f"(max {1000 * max(times):.1f} ms)  [{c.summary()[:80]}...]")

    checks = work / "test_sixty_figures.py"
    keys = [k for k, t in DEFAULT_TARGETS.items() if not t.rule and not t.source]
    checks.write_text(CHECKS.format(keys=keys, n=opts.figures))
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:html", "--no-header",
            str(checks), f"--rootdir={work}"]
    walls: dict[str, list[float]] = {"no history": [], "with the history": []}
    for i in range(opts.repeat):
        copy = work / f"copy-{i}.sqlite"
        copy.write_bytes(path.read_bytes())  # each session appends to a fresh copy of the 1,000-run history
        for label, extra in (("no history", ["--no-history"]), ("with the history", [f"--history={copy}"])):
            t0 = time.perf_counter()
            done = subprocess.run(base + extra, cwd=PROJECT_ROOT, capture_output=True, text=True)
            walls[label].append(time.perf_counter() - t0)
            if done.returncode != 0:
                print(done.stdout[-2000:])
                return 1
    a, b = (statistics.median(v) for v in walls.values())
    print(f"pytest session with {opts.figures} figures: median {a:.2f} s without history, {b:.2f} s with it: "
          f"the history (open, start row, comparison, append) adds {1000 * (b - a):.0f} ms  [target <= 200 ms]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
