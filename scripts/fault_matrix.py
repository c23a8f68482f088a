"""One fault at a time in the embedded stack's proxy: what the checklist reports, and how long it takes.

    .venv/bin/python scripts/fault_matrix.py [--profile profiles/local-real.toml] [--ui-only]

For each fault it runs the acceptance and UI checks (no destructive or load ones) in a subprocess, as a user
would, and prints the checks that failed (ideally one, the one that names the fault), how many were reported
as blocked by it, and the wall time. --ui-only runs the UI layer alone (the page must name the cause itself).
The stack's proxy is healthy again at the end.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from comfycheck.config.paths import PROJECT_ROOT
from comfycheck.config.profile import load_profile
from comfycheck.stack import EmbeddedStack

FAULTS: list[dict[str, Any]] = [
    {"cert": "expired"}, {"cert": "wrong_host"}, {"cert": "untrusted"}, {"cert": "leaf_only"},
    {"cert": "expiring_5d"}, {"host_rewritten": True}, {"ws_upgrade_blocked": True}, {"upload_limit_mib": 30},
    {"legacy_tls": True}, {"no_hsts": True}, {"no_https_redirect": True}, {"read_timeout_s": 1},
]


def run(profile: Path, args: list[str]) -> tuple[list[str], int, float, str]:
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:html", "-p", "no:cacheprovider", "-q",
                             "-rfEs", "--no-header", "--no-history", f"--profile={profile}", *args],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    out = result.stdout
    red = [line.split()[1] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    blocked = sum(1 for line in out.splitlines() if line.startswith("SKIPPED") and "blocked: needs" in line)
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    return red, blocked, took, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=PROJECT_ROOT / "profiles" / "local.toml")
    parser.add_argument("--ui-only", action="store_true", help="run tests/ui alone for each fault")
    opts = parser.parse_args()
    profile = load_profile(opts.profile.resolve())
    stack = EmbeddedStack(profile)
    stack.up()
    args = ["tests/ui"] if opts.ui_only else ["-m", "(acceptance or ui) and not destructive and not load"]
    try:
        for faults in [{}, *FAULTS]:
            stack.set_proxy_faults(**faults)
            red, blocked, took, summary = run(profile.path, args)
            name = json.dumps(faults) if faults else "(healthy)"
            print(f"{name:32} red {len(red)}: {', '.join(r.split('::')[-1] for r in red) or '-':70} "
                  f"blocked {blocked:2}  {took:5.1f} s  [{summary}]", flush=True)
    finally:
        stack.set_proxy_faults()
    return 0


if __name__ == "__main__":
    sys.exit(main())
