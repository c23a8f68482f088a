"""How long the whole suite takes on this machine: `./run all` over pytest-xdist's workers (its default) and
serially (-n 0), each run's wall time and verdict, and the files that take longest.

    .venv/bin/python scripts/bench_suite.py                          # one parallel run, then one serial run
    .venv/bin/python scripts/bench_suite.py --modes parallel --runs 3  # three parallel runs in a row
    .venv/bin/python scripts/bench_suite.py --top 15 -- -m "not real_comfyui"

A file's time is the sum of its tests' times (set-up and teardown included): in a serial run, the wall time it
adds; in a parallel run, the time it holds one worker. Budgets: a parallel run <= 10 min, <= 15 min where real
ComfyUI is configured (its layer then runs too). Each run's JUnit XML goes to reports/bench-suite/<mode>-K.xml;
exit 1 if a run failed or missed its budget.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from comfycheck.config.paths import PROJECT_ROOT as ROOT
from comfycheck.config.paths import REPORTS_DIR
from comfycheck.stack import real

BUDGET_S = {False: 600.0, True: 900.0}  # parallel, keyed by "real ComfyUI configured"
MODES = {"parallel": [], "serial": ["-n", "0"]}


def real_configured() -> bool:
    try:
        real.locate()
        return True
    except real.RealComfyUINotFound:
        return False


def per_file(junit: Path) -> tuple[dict[str, float], collections.Counter[str]]:
    """Seconds per test file, and the outcomes, from a JUnit XML report."""
    seconds: dict[str, float] = collections.defaultdict(float)
    outcomes: collections.Counter[str] = collections.Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        seconds[path] += float(case.get("time") or 0)
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcomes[outcome] += 1
    return seconds, outcomes


def run(mode: str, k: int, pytest_args: list[str]) -> tuple[float, int, Path, str]:
    out = REPORTS_DIR / "bench-suite" / f"{mode}-{k}.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(ROOT / "run"), "all", *MODES[mode], "-q", "-p", "no:cacheprovider", "--no-history",
           f"--junitxml={out}", f"--html={out.with_suffix('.html')}", "--self-contained-html", *pytest_args]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    lines = (done.stdout + done.stderr).strip().splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|error)", line)), "?")
    return wall, done.returncode, out, summary.strip("= ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["parallel", "serial"])
    ap.add_argument("--runs", type=int, default=1, help="runs of each mode, in a row")
    ap.add_argument("--top", type=int, default=10, help="the slowest files shown for each run")
    ap.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = ap.parse_args()
    with_real = real_configured()
    budget = BUDGET_S[with_real]
    print(f"comfycheck suite on {ROOT} ({'with' if with_real else 'without'} real ComfyUI configured)", flush=True)
    bad = 0
    for mode in args.modes:
        for k in range(1, args.runs + 1):
            wall, code, junit, summary = run(mode, k, args.pytest_args)
            seconds, outcomes = per_file(junit) if junit.is_file() else ({}, collections.Counter())
            judged = f"budget <= {budget / 60:g} min: {'met' if wall <= budget else 'MISSED'}" \
                if mode == "parallel" else "no budget"
            print(f"{mode} run {k}: {wall / 60:.1f} min ({wall:.0f} s), exit {code}, {summary} [{judged}]",
                  flush=True)
            print(f"  {sum(outcomes.values())} tests: " + ", ".join(f"{n} {o}" for o, n in outcomes.most_common()))
            for path, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"  {s:7.1f} s  {path}")
            bad += code != 0 or (mode == "parallel" and wall > budget)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
