"""`comfycheck`: one command, a subcommand per job. Every subcommand takes --profile (a deployment profile, TOML)
and --out (the folder results go to), and exits with comfycheck.exitcodes' meanings: 0 every target met, 1 a target
missed, 2 could not run."""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__, exitcodes
from ..config.env import OUT_ENV

JOBS = (  # (subcommand, one line: the job it does); the order of `comfycheck --help`
    ("smoke", "the quick read-only checks, right after a deploy (seconds)"),
    ("check", "the whole deployment checklist: backend, proxy, TLS, auth, watchdog, UI, load"),
    ("ui", "the browser checks only: ComfyUI's page and Forge's, screenshots against baselines"),
    ("load", "a load run: N consecutive generations, VRAM and temperature sampled through NVML"),
    ("class", "a class run: many students on the one GPU at once (Locust, master/worker for big classes)"),
    ("soak", "hours of probing for availability and latency (the 24-hour soak)"),
    ("nightly", "the nightly job: the checklist, a short soak, the history and the trend page"),
    ("trend", "the trend page of a profile's runs, from the history"),
    ("history", "the runs kept in the history, one line each"),
    ("stack", "the embedded reference stack: up, down, status"),
    ("init", "write a profile for a deployment by asking it what it runs"),
    ("rehearse", "rehearse a new GPU box before the model is there: synthetic weights, the GPU layers, one report"),
)
EPILOG = ("exit status, the same for every job:\n" +
          "".join(f"  {code}  {text}\n" for code, text in exitcodes.MEANINGS.items() if code != exitcodes.USAGE) +
          f"results: --out DIR, else ${OUT_ENV}, else ~/.local/share/comfycheck (in comfycheck's checkout: reports/)\n"
          "a job's own options: comfycheck JOB --help")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="comfycheck", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Acceptance, load and soak tests of a ComfyUI deployment: one subcommand per job.")
    ap.add_argument("--version", action="version", version=f"comfycheck {__version__}")
    sub = ap.add_subparsers(dest="job", metavar="JOB", required=True, title="jobs")
    for name, text in JOBS:
        p = sub.add_parser(name, help=text, description=text, allow_abbrev=False)
        p.add_argument("--profile", help="deployment profile (TOML); default $COMFYCHECK_PROFILE, else the embedded "
                                         "stack's profiles/local.toml")
        p.add_argument("--out", help=f"folder for reports and the history (default ${OUT_ENV}, else "
                                     "~/.local/share/comfycheck; in the checkout, reports/)")
    from . import jobs  # the jobs' own options
    jobs.add_options(sub.choices)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = _out_given(argv)
    if out:  # before anything imports comfycheck.config.paths, which places results once: here or in a child
        os.environ[OUT_ENV] = os.path.abspath(os.path.expanduser(out))
    ap = parser()
    args, rest = ap.parse_known_args(argv)
    if rest and not getattr(args, "passes_through", False):
        ap.error(f"{args.job}: unrecognized arguments: {' '.join(rest)}")
    if args.profile and _is_path(args.profile):  # trend and history also take a profile's name
        args.profile = os.path.abspath(os.path.expanduser(args.profile))
    from . import jobs
    try:
        return jobs.run(args, rest)
    except KeyboardInterrupt:
        print(f"comfycheck {args.job}: interrupted", file=sys.stderr)
        return exitcodes.CANNOT_RUN


def _is_path(profile: str) -> bool:
    return profile.endswith(".toml") or os.sep in profile or os.path.exists(profile)


def _out_given(argv: list[str]) -> str | None:
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--out")
    return early.parse_known_args(argv)[0].out


if __name__ == "__main__":
    sys.exit(main())
