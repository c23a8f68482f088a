"""comfycheck's pytest entry point (pytest11): decides, as pytest starts, whether comfycheck's plugin joins the run.

It joins when comfycheck's own tests run (pytest's rootdir is comfycheck's suite, or a path given lies in it), when
`--profile` is given, or when asked for by name (`-p comfycheck`, `-p comfycheck.pytest_plugin`). Any other pytest
run in the same environment gets nothing of it: no options, no fixtures, no profile, no report, no history.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest

PLUGIN = "comfycheck.pytest_plugin"
NAMES = ("comfycheck", PLUGIN)  # what -p may name it by
PROFILE_FLAG = "--profile"


def wanted(args: list[str], rootpath: Path, plugins: list[str]) -> bool:
    """Whether this pytest run is one of comfycheck's: `args` as given, `rootpath` pytest's rootdir, `plugins` the
    names given with -p."""
    from .config.paths import SUITE_ROOT  # imported only here: pytest's start-up stays light for other projects

    if any(name.strip() in NAMES for name in plugins):
        return True
    if any(a == PROFILE_FLAG or a.startswith(PROFILE_FLAG + "=") for a in args):
        return True
    suite = SUITE_ROOT.resolve()
    if rootpath.resolve() == suite:
        return True
    for arg in args:
        if arg.startswith("-"):
            continue
        path = Path(arg.split("::", 1)[0])
        try:
            if path.exists() and path.resolve().is_relative_to(suite / "tests"):
                return True
        except OSError:
            continue
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    manager = early_config.pluginmanager
    if manager.has_plugin(PLUGIN) or manager.is_blocked(PLUGIN):
        return  # -p comfycheck.pytest_plugin loaded it already, or -p no:comfycheck.pytest_plugin refused it
    if not wanted(args, early_config.rootpath, list(early_config.known_args_namespace.plugins or [])):
        return
    manager.register(importlib.import_module(PLUGIN), PLUGIN)
    # its options (--profile, ...) are known from now on: parse again, so `--profile PATH` is not taken for a path
    # to collect while pytest finds the initial conftests
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
