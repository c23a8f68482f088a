"""Run the same pytest selection N times in a row and count the failures: a flaky check is a failing check.

    .venv/bin/python scripts/repeat.py -n 20 -- -m ui
    .venv/bin/python scripts/repeat.py -n 20 -- -m ui --profile=profiles/local-real.toml
    .venv/bin/python scripts/repeat.py -n 10 --command ./run all

Each run's report goes to reports/repeat/run-K.html. Prints one line per run, then which tests failed how
often; exit 1 if any run failed.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    ap.add_argument("--command", nargs="+", help="run this command instead of .venv/bin/pytest (e.g. ./run all)")
    ap.add_argument("pytest_args", nargs="*", help="after --: the pytest arguments (marker, profile, paths)")
    args = ap.parse_args()
    out_dir = ROOT / "reports" / "repeat"
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: collections.Counter[str] = collections.Counter()
    failed_runs = 0
    for k in range(1, args.runs + 1):
        report = out_dir / f"run-{k}.html"
        cmd = (args.command + args.pytest_args) if args.command else \
            [str(ROOT / ".venv" / "bin" / "pytest"), "-p", "no:cacheprovider", "-q", "-rfE", *args.pytest_args]
        cmd += [f"--html={report}", "--self-contained-html"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        lines = (done.stdout + done.stderr).strip().splitlines()
        summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|error)", line)), "?")
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.M)
        failures.update(failed)
        failed_runs += done.returncode != 0
        print(f"run {k:3}/{args.runs}: exit {done.returncode} in {time.monotonic() - t0:6.1f} s: "
              f"{summary.strip('= ')}", flush=True)
    print(f"{args.runs} runs: {args.runs - failed_runs} passed, {failed_runs} failed")
    for test, n in failures.most_common():
        print(f"  {n:3}x {test}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
