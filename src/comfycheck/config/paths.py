"""Where things are: the checkout, its profiles and workflows, the reports a run writes, the stack's state."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROFILES_DIR = PROJECT_ROOT / "profiles"
DEFAULT_PROFILE = PROFILES_DIR / "local.toml"
WORKFLOWS_DIR = PROJECT_ROOT / "fixtures" / "workflows"
BASELINES_DIR = PROJECT_ROOT / "fixtures" / "baselines"
LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"
CLASSROOM_LOCUSTFILE = PROJECT_ROOT / "loadtests" / "classroom.py"
REPORTS_DIR = PROJECT_ROOT / "reports"
DEFAULT_HTML_REPORT = "reports/report.html"  # relative: where pytest-html writes, from the project root
DEFAULT_HISTORY = "reports/history.sqlite"  # relative to the project root, as the profile's [results] history
SCREENSHOTS_DIR = REPORTS_DIR / "screenshots"
STATE_ROOT = PROJECT_ROOT / ".comfycheck"
PKI_DIR = STATE_ROOT / "pki"  # the stack's CA, shared by every embedded stack; profiles/local.toml trusts it


def new_report_dir(kind: str) -> Path:
    """A fresh dated folder for one run of a kind ("load", "soak") under reports/, made now: a second run started
    in the same second (beside it, by another worker) gets the next name, -2, -3, ..."""
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
