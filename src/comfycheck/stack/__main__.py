"""python -m comfycheck.stack up|down|status [--profile PATH]: run the embedded reference stack by hand."""
from __future__ import annotations

import argparse
import sys

from .. import ComfycheckError, exitcodes
from ..config.profile import load_profile
from . import EmbeddedStack


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m comfycheck.stack", description=__doc__)
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--profile", help="profile TOML (default: $COMFYCHECK_PROFILE or profiles/local.toml)")
    args = p.parse_args(argv)
    stack = None
    try:
        stack = EmbeddedStack(load_profile(args.profile))
        if args.action == "up":
            info = stack.up()
            how = f"started in {info.startup_s:.2f} s" if info.owned else "already running"
            switches = "" if stack.settings.real else f", faults {info.control_url}"
            print(f"embedded stack {how}: {stack.backend_name} {info.backend_url} (pid {info.pid}){switches}")
            if info.public_url:
                print(f"  public {info.public_url} through nginx (pid {info.proxy_pid}); "
                      f"CA to trust: {stack.profile.ca_bundle}")
        elif args.action == "down":
            print("embedded stack stopped" if stack.down() else "embedded stack was not running")
        else:
            found = stack.running()
            if found is None:
                print("embedded stack: not running")
                return exitcodes.MISSED
            info = found
            from .supervisor import program_pid
            pid = program_pid(info.supervisor_url)
            print(f"embedded stack: running, {stack.backend_name} {info.backend_url} (pid {pid}, "
                  f"watched by supervisord pid {info.supervisor_pid}), log {info.log}")
            if info.public_url:
                print(f"  public {info.public_url} through nginx (pid {info.proxy_pid}), "
                      f"proxy faults {stack.proxy_faults() or 'none'}")
    except ComfycheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    finally:
        for note in stack.left_alone if stack else []:
            print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
