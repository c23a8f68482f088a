"""Where things are: the suite's own files (workflows, profiles, tests, locustfiles), the results a run writes, the
stack's state.

Two layouts. In comfycheck's checkout (an editable install, `./run`) everything is where the repository keeps it:
the suite's files in its top-level folders, results in reports/, state in .comfycheck/. Installed as a tool (a wheel:
`pipx install`, `uv tool install`) the suite's files ship inside the package (comfycheck/suite/, read only) and
results and state go to the user's folders: $COMFYCHECK_OUT (the `--out` of every `comfycheck` command), else
$XDG_DATA_HOME/comfycheck (~/.local/share/comfycheck); $COMFYCHECK_STATE, else $XDG_STATE_HOME/comfycheck
(~/.local/state/comfycheck). Nothing is ever written into the installed package.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from .env import OUT_ENV, STATE_ENV

_PACKAGE = Path(__file__).resolve().parents[1]
_CHECKOUT = _PACKAGE.parents[1]  # <checkout>/src/comfycheck


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "tests").is_dir() and (root / "src" / "comfycheck").is_dir()


IN_CHECKOUT = _is_checkout(_CHECKOUT)
SUITE_ROOT = _CHECKOUT if IN_CHECKOUT else _PACKAGE / "suite"  # tests/, fixtures/, profiles/, loadtests/
PROJECT_ROOT = SUITE_ROOT  # what a profile's relative paths start from (the older name)


def _user_dir(xdg: str, fallback: str) -> Path:
    base = os.environ.get(xdg) or str(Path.home() / fallback)
    return Path(base) / "comfycheck"


def _results_root() -> Path:
    given = os.environ.get(OUT_ENV)
    if given:
        return Path(given).expanduser().absolute()
    return _CHECKOUT / "reports" if IN_CHECKOUT else _user_dir("XDG_DATA_HOME", ".local/share")


def _state_root() -> Path:
    given = os.environ.get(STATE_ENV)
    if given:
        return Path(given).expanduser().absolute()
    return _CHECKOUT / ".comfycheck" if IN_CHECKOUT else _user_dir("XDG_STATE_HOME", ".local/state")


PROFILES_DIR = SUITE_ROOT / "profiles"
DEFAULT_PROFILE = PROFILES_DIR / "local.toml"
WORKFLOWS_DIR = SUITE_ROOT / "fixtures" / "workflows"
SHIPPED_BASELINES_DIR = SUITE_ROOT / "fixtures" / "baselines"
TESTS_DIR = SUITE_ROOT / "tests"
LOCUSTFILE = SUITE_ROOT / "loadtests" / "locustfile.py"
CLASSROOM_LOCUSTFILE = SUITE_ROOT / "loadtests" / "classroom.py"
REPORTS_DIR = _results_root()
DEFAULT_HTML_REPORT = str(REPORTS_DIR / "report.html")
DEFAULT_HISTORY = "reports/history.sqlite"  # as the profile's [results] history: reports/ is REPORTS_DIR
SCREENSHOTS_DIR = REPORTS_DIR / "screenshots"
STATE_ROOT = _state_root()
PKI_DIR = STATE_ROOT / "pki"  # the stack's CA, shared by every embedded stack; profiles/local.toml trusts it
# screenshot baselines: the checkout's own, kept in git; an installed copy's in the user's results
BASELINES_DIR = SHIPPED_BASELINES_DIR if IN_CHECKOUT else REPORTS_DIR / "baselines"


def resolve(value: str | os.PathLike) -> Path:
    """A path from a profile: absolute as given; relative, from the suite's root, where `reports/...` means the
    results folder and `.comfycheck/...` the state folder (the same places in a checkout, the user's folders in an
    installed copy: a profile's `ca_bundle = ".comfycheck/pki/ca.pem"` names the CA the stack minted there)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    if p.parts[:1] == ("reports",):
        return REPORTS_DIR.joinpath(*p.parts[1:])
    if p.parts[:1] == (".comfycheck",):
        return STATE_ROOT.joinpath(*p.parts[1:])
    return SUITE_ROOT / p


def shown(path: str | os.PathLike) -> str:
    """A path as a report shows it: relative to the suite's folder where it lies in it (reports/load/...), else whole
    (an installed copy's results, --out)."""
    full = Path(path).resolve()
    return str(full.relative_to(SUITE_ROOT)) if full.is_relative_to(SUITE_ROOT) else str(full)


def baselines_for(profile_name: str) -> Path:
    """The screenshot baselines of a profile, to read and to write. An installed copy starts from the baselines it
    ships (the embedded stack's), copied to the user's folder on first use: the package itself stays read only."""
    folder = BASELINES_DIR / profile_name
    shipped = SHIPPED_BASELINES_DIR / profile_name
    if folder != shipped and not folder.exists() and shipped.is_dir():
        shutil.copytree(shipped, folder)
    return folder


def new_report_dir(kind: str) -> Path:
    """A fresh dated folder for one run of a kind ("load", "soak") in the results folder, made now: a second run
    started in the same second (beside it, by another worker) gets the next name, -2, -3, ..."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (REPORTS_DIR / kind).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = REPORTS_DIR / kind / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{REPORTS_DIR / kind}: no free folder name for {stamp}")
