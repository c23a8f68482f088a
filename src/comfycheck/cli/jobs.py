"""What each `comfycheck` subcommand runs: the pytest layers in a pytest of their own, the load and class runs in
Locust (always a subprocess), the soak, the history, the stack and the nightly job in this process."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .. import exitcodes, extras

PYTEST_JOBS = {  # job: (pytest arguments, whether comfycheck's own tests are left out)
    "smoke": (["-m", "smoke"], True),
    "check": (["-m", "not selftest"], True),
    "ui": (["tests/ui"], False),
}
PASS_THROUGH = {  # job: what its extra arguments go to, for --help
    "smoke": "pytest", "check": "pytest", "ui": "pytest", "nightly": "pytest",
    "load": "Locust (and loadtests/locustfile.py)", "class": "Locust (and loadtests/classroom.py)",
    "soak": "the soak", "trend": "the trend page", "history": "the history", "rehearse": "pytest",
}
PROFILED = ("smoke", "check", "ui", "load", "class", "soak", "nightly", "stack")  # the jobs that load a profile
NEEDS = {"load": "load", "class": "load", "ui": "ui"}  # job: the extra it cannot run without
# options whose value is a path: given relative to the caller's folder, while pytest runs in the suite's
PATH_OPTIONS = ("--html", "--junitxml", "--junit-xml", "--history", "--prometheus", "--basetemp", "--report-dir")


def add_options(parsers: dict[str, argparse.ArgumentParser]) -> None:
    for job, target in PASS_THROUGH.items():
        parsers[job].set_defaults(passes_through=True)
        parsers[job].epilog = f"Other arguments go to {target}."
    parsers["stack"].add_argument("action", choices=("up", "down", "status"))
    parsers["rehearse"].add_argument("--fill", choices=("random", "zeros"),
                                     help="the weights' data: random (default on a GPU) or zeros (a sparse file)")
    from .init import add_options as init_options
    init_options(parsers["init"])


def run(args: argparse.Namespace, rest: list[str]) -> int:
    lacking = extras.lacking(NEEDS[args.job], f"comfycheck {args.job}") if args.job in NEEDS else None
    if lacking:
        print(lacking, file=sys.stderr)
        return exitcodes.CANNOT_RUN
    if args.job in PROFILED:  # a bad profile is "could not run" (2) in every job, before anything starts
        from ..config.profile import ProfileError, load_profile
        try:
            load_profile(args.profile)
        except ProfileError as exc:
            print(f"comfycheck {args.job}: {exc}", file=sys.stderr)
            return exitcodes.CANNOT_RUN
    rest = absolute_paths(rest)
    if args.job in PYTEST_JOBS:
        return run_pytest(pytest_command(args.job, args.profile, rest))
    if args.job in ("load", "class"):
        return run_locust(args.job, args.profile, rest)
    if args.job == "soak":
        from ..soak.__main__ import main as soak
        return soak(rest if rest[:1] == ["report"] else _profile(args) + rest)  # `soak report DIR`: a killed soak
    if args.job in ("trend", "history"):
        from ..config.paths import DEFAULT_PROFILE
        from ..config.profile import PROFILE_ENV
        from ..history.__main__ import main as history
        return history(["trend" if args.job == "trend" else "runs", "--profile", args.profile or
                        os.environ.get(PROFILE_ENV) or str(DEFAULT_PROFILE), *rest])
    if args.job == "stack":
        from ..stack.__main__ import main as stack
        return stack([args.action, *_profile(args)])
    if args.job == "nightly":
        from .nightly import nightly
        return nightly(args.profile, rest)
    if args.job == "rehearse":
        from .rehearse import rehearse
        return rehearse(args.profile, args.fill, rest)
    from .init import init
    return init(args)


def _profile(args: argparse.Namespace) -> list[str]:
    return ["--profile", args.profile] if args.profile else []


def absolute_paths(rest: list[str]) -> list[str]:
    """The caller's relative paths made absolute: pytest runs in the suite's folder, Locust wherever it is started."""
    out: list[str] = []
    take_next = False
    for arg in rest:
        if take_next:
            out.append(os.path.abspath(arg))
            take_next = False
        elif arg in PATH_OPTIONS:
            out.append(arg)
            take_next = True
        elif arg.startswith(tuple(o + "=" for o in PATH_OPTIONS)):
            name, value = arg.split("=", 1)
            out.append(f"{name}={os.path.abspath(value)}")
        elif not arg.startswith("-") and Path(arg.split("::", 1)[0]).exists():
            path, sep, node = arg.partition("::")
            out.append(os.path.abspath(path) + sep + node)
        else:
            out.append(arg)
    return out


def pytest_command(job: str, profile: str | None, rest: list[str], *, selection: list[str] | None = None) -> list[str]:
    """pytest on the suite's own tests with its own configuration, wherever the caller stands: an installed copy's
    suite is comfycheck/suite/ with the pytest.ini its build wrote, a checkout's is the checkout. `selection`: the
    job's own choice of checks instead of its default (-m smoke, ...)."""
    from ..config import paths

    ini = paths.SUITE_ROOT / ("pyproject.toml" if paths.IN_CHECKOUT else "pytest.ini")
    cmd = [sys.executable, "-m", "pytest", "-c", str(ini), f"--rootdir={paths.SUITE_ROOT}", "-p", "comfycheck"]
    if not paths.IN_CHECKOUT:
        cmd += ["-p", "no:cacheprovider"]  # pytest's cache would be written into the installed package
    marks, checklist_only = PYTEST_JOBS[job]
    cmd += marks if selection is None else selection
    if checklist_only:  # the deployment's checklist; comfycheck's own tests are ./run all's, in the checkout
        cmd.append(f"--ignore={paths.TESTS_DIR / 'selftest'}")
    if profile:
        cmd.append(f"--profile={profile}")
    return cmd + rest


def run_pytest(cmd: list[str], log: Path | None = None) -> int:
    """pytest's exit status, but "collected nothing" is "could not run"; `log`: its output goes there."""
    from ..config import paths

    env = dict(os.environ)
    if not paths.IN_CHECKOUT:  # bytecode of the shipped tests goes to the state folder, not the installed package
        env.setdefault("PYTHONPYCACHEPREFIX", str(paths.STATE_ROOT / "pycache"))
    # pytest runs in the suite's folder: its rootdir, where its testpaths apply
    if log is None:
        code = subprocess.run(cmd, cwd=paths.SUITE_ROOT, env=env).returncode
    else:
        with open(log, "w") as out:
            code = subprocess.run(cmd, cwd=paths.SUITE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code == 5:  # pytest's "no tests collected": nothing was judged
        print("comfycheck: no check was selected (pytest collected none): nothing was judged", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    return exitcodes.CANNOT_RUN if code == exitcodes.USAGE else code  # a bad option: 2, as in every job


def run_locust(job: str, profile: str | None, rest: list[str]) -> int:
    """Locust on the job's locustfile; the embedded stack started first where the profile is one (as pytest and
    the soak do), and stopped after if this run started it."""
    from ..config import paths
    from ..config.profile import load_profile
    from ..stack import EmbeddedStack, StackError

    locustfile = paths.LOCUSTFILE if job == "load" else paths.CLASSROOM_LOCUSTFILE
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--only-summary"]
    worker = "--worker" in rest  # a class run's worker takes everything from its master
    if not worker:
        cmd.append("--headless")
        cmd += ["-u", "1", "-r", "1"] if job == "load" else []
        cmd += ["--comfy-profile", profile] if profile else []
    loaded = load_profile(profile)
    stack = EmbeddedStack(loaded) if loaded.embedded and not worker else None
    try:
        owned = stack is not None and stack.up().owned
    except StackError as exc:
        print(f"comfycheck {job}: embedded stack of profile {loaded.path}: {exc}", file=sys.stderr)
        return exitcodes.CANNOT_RUN
    try:
        return subprocess.run(cmd + rest).returncode
    finally:
        if owned and stack is not None:
            stack.down()
