"""How long a user waits for a verdict, in the figures the suite promises (the budget in brackets):

    .venv/bin/python scripts/bench_verdicts.py setup [--apt]
        a fresh clone, no venv, no package cache: `./run setup` [<= 20 s], then `./run smoke`; with --apt (root),
        the Debian packages are first reinstalled from an empty apt cache, `apt-get update` included, and the
        three add up to a bare machine's wait for its first verdict [<= 40 s]
    .venv/bin/python scripts/bench_verdicts.py acceptance [--profile P] [--idle 90]
        `pytest -m "acceptance and not watchdog"` on the running embedded stack, with public.websocket_idle_s at
        --idle: the wall time [<= 95 s at 90 s, <= 15 s at 5 s] and when everything but the idle wait was done
        [<= 15 s]
    .venv/bin/python scripts/bench_verdicts.py broken [--timeout 10]
        smoke against a blackholed backend [<= 15 s] and a hung backend behind nginx [<= 25 s]: the wall time and
        the red lines [exactly one, naming the URL]

Every run is a subprocess, timed from outside as a user would time it; the figures are printed, one per line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

from comfycheck.config.paths import PKI_DIR
from comfycheck.config.paths import PROJECT_ROOT as ROOT
from comfycheck.stack import certs
from comfycheck.stack.proxy import NginxProxy, ProxyConfig

sys.path.insert(0, str(ROOT))  # the self-tests' silent server and output readers, as the no-hang tests use them
from tests.selftest.helpers import free_port, red_lines
from tests.selftest.test_no_hang import SilentServer

BUDGETS = {"setup": 20.0, "smoke from bare": 40.0, "acceptance at 90 s": 95.0, "acceptance at 5 s": 15.0,
           "all but the idle wait": 15.0, "blackholed": 15.0, "hung behind the proxy": 25.0}


def timed(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 900) -> tuple[float, str, int]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return time.monotonic() - t0, proc.stdout + proc.stderr, proc.returncode


def show(what: str, seconds: float, budget_key: str, extra: str = "") -> bool:
    budget = BUDGETS[budget_key]
    ok = seconds <= budget
    print(f"{what}: {seconds:.1f} s (budget <= {budget:g} s: {'met' if ok else 'MISSED'}){extra}", flush=True)
    return ok


def apt_reinstall() -> float:
    """What a bare machine's apt step costs here: the packages of debian-packages.txt fetched and installed again."""
    wanted = [line.split("#")[0].strip() for line in (ROOT / "debian-packages.txt").read_text().splitlines()]
    wanted = [w for w in wanted if w]
    t0 = time.monotonic()
    subprocess.run(["apt-get", "clean"], check=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--reinstall", "--no-install-recommends", *wanted], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ,
                                                                                "DEBIAN_FRONTEND": "noninteractive"})
    return time.monotonic() - t0


def setup(args) -> int:
    """A clone of the committed tree with nothing installed: the venv and the package cache start empty."""
    apt = apt_reinstall() if args.apt else 0.0
    if args.apt:
        print(f"apt-get update and install of debian-packages.txt (empty apt cache): {apt:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {"UV_CACHE_DIR": str(Path(tmp) / "uv-cache"), "PIP_NO_CACHE_DIR": "1",
               "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        took, out, rc = timed(["./run", "setup"], clone, env)
        if rc != 0:
            print(out, file=sys.stderr)
            return rc
        ok = show("./run setup (fresh clone, no venv, no cache)", took, "setup")
        shutil.rmtree(clone / ".venv")
        shutil.rmtree(Path(tmp) / "uv-cache", ignore_errors=True)
        took, out, rc = timed(["./run", "smoke", "-q", "-p", "no:cacheprovider", "--no-history"], clone, env)
        verdict = next((line for line in reversed(out.splitlines()) if " in " in line and "passed" in line), "")
        what = "apt + ./run smoke" if args.apt else "./run smoke (the Debian packages present)"
        ok &= show(f"{what} (fresh clone, no venv, no cache)", apt + took, "smoke from bare", f"; {verdict}")
        return 0 if ok and rc == 0 else 1


def _profile_copy(profile: Path, tmp: Path, overrides: dict) -> Path:
    data = tomllib.loads(profile.read_text())
    for table, values in overrides.items():
        data.setdefault(table, {}).update(values)
    path = tmp / profile.name
    path.write_text(tomli_w.dumps(data))
    return path


def acceptance(args) -> int:
    base = Path(args.profile).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        profile = _profile_copy(base, Path(tmp), {"public": {"websocket_idle_s": args.idle}})
        subprocess.run([sys.executable, "-m", "comfycheck.stack", "up", f"--profile={base}"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)  # a deployment is up before anyone checks it
        html = Path(tmp) / "report.html"
        took, out, rc = timed([sys.executable, "-m", "pytest", "-m", "acceptance and not watchdog", "-q",
                               "-p", "no:cacheprovider", "--no-history", f"--html={html}",
                               f"--profile={profile}"], ROOT)
        if rc != 0:
            print(out, file=sys.stderr)
            return rc
        measured = json.loads((html.with_name("measurements.json")).read_text())
        held = next(m for m in measured if m["target"] == "websocket_idle_s")["details"]
        budget = "acceptance at 90 s" if args.idle >= 90 else "acceptance at 5 s"
        ok = show(f"pytest -m 'acceptance and not watchdog' on {base.name}, websocket_idle_s = {args.idle:g}",
                  took, budget, f"; {out.strip().splitlines()[-1]}")
        ok &= show("  of which everything but the idle wait", took - held["waited_at_the_end_s"],
                   "all but the idle wait", f" (the silence began {held['silence_began_after_s']:g} s after the "
                   f"socket opened; the end waited {held['waited_at_the_end_s']:g} s)")
        return 0 if ok else 1


def _smoke(profile: Path) -> tuple[float, list[str], str]:
    took, out, _ = timed([sys.executable, "-m", "pytest", "-m", "smoke", "-q", "-rfEs", "-p", "no:cacheprovider",
                          "-p", "no:html", "--no-history", f"--profile={profile}"], ROOT)
    return took, red_lines(out), out


def broken(args) -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        silent = SilentServer()
        overrides = {"name": "broken", "comfyui": {"url": silent.url, "timeout_s": args.timeout}}
        base = tomllib.loads((ROOT / "profiles" / "local.toml").read_text())
        for key in ("stack", "forge", "gpus", "public"):
            base.pop(key, None)
        base.update({"name": "blackholed"})
        base["comfyui"].update(overrides["comfyui"])
        profile = Path(tmp) / "blackholed.toml"
        profile.write_text(tomli_w.dumps(base))
        took, red, out = _smoke(profile)
        ok &= show(f"smoke, blackholed backend {silent.url}, timeout_s = {args.timeout:g}", took, "blackholed",
                   f"; red lines: {len(red)} {red}")
        ok &= len(red) == 1 and silent.url in out

        https, http = free_port(), free_port()
        proxy = NginxProxy(Path(tmp) / "nginx")
        files = certs.mint(PKI_DIR, Path(tmp) / "tls", ["localhost", "127.0.0.1"])
        proxy.write_config(ProxyConfig(backend=silent.url, https_port=https, http_port=http), files)
        pid = proxy.start([https, http])
        try:
            base["name"] = "hung-behind-proxy"
            base["public"] = {"url": f"https://localhost:{https}", "http_url": f"http://localhost:{http}",
                              "ca_bundle": str(PKI_DIR / "ca.pem"), "cors_origins": []}
            profile.write_text(tomli_w.dumps(base))
            took, red, out = _smoke(profile)
        finally:
            NginxProxy.stop(pid)
            silent.close()
        blocked = len(re.findall(r"^SKIPPED .*blocked: needs", out, re.M))
        ok &= show(f"smoke, hung backend {silent.url} behind nginx at https://localhost:{https}, "
                   f"timeout_s = {args.timeout:g}", took, "hung behind the proxy",
                   f"; red lines: {len(red)} {red}; blocked at once: {blocked}")
        ok &= len(red) == 1 and silent.url in out
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    st = sub.add_parser("setup")
    st.add_argument("--apt", action="store_true", help="reinstall the Debian packages first (root)")
    acc = sub.add_parser("acceptance")
    acc.add_argument("--profile", default=str(ROOT / "profiles" / "local.toml"))
    acc.add_argument("--idle", type=float, default=90.0)
    brk = sub.add_parser("broken")
    brk.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    return {"setup": setup, "acceptance": acceptance, "broken": broken}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
