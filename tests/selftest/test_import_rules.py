"""The support package imports along its roles: a lower layer never reaches up into one that builds on it, so each
folder can be read, tested and changed on its own (and the stand-in stays apart from the client it imitates)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import comfycheck

pytestmark = pytest.mark.selftest
PACKAGE = Path(comfycheck.__file__).parent
BASE = {"__init__", "exitcodes", "extras", "polling", "hints"}  # comfycheck's own modules everything may use
_LOW = {"config"}
_CLIENT = _LOW | {"comfy"}
_MEASURE = _CLIENT | {"probes"}
_JUDGE = _MEASURE | {"judge"}
_KEEP = _JUDGE | {"history"}
_REPORT = _KEEP | {"outputs"}
MAY_IMPORT = {  # folder (or top-level module): the folders it may import from, beside BASE
    "config": set(),                     # the profile, its schema, paths, units
    "comfy": _LOW,                       # ComfyUI's API: the one client
    "probes": _CLIENT,                   # what is measured: GPUs, processes, TLS, the browser, Forge
    "judge": _MEASURE,                   # Measurements against targets, foundations, exposure, auth
    "history": _JUDGE,                   # runs kept night after night, the versions each saw, the trend
    "outputs": _KEEP,                    # the report, Prometheus, the record of a pytest run
    "standin": _LOW,                     # the stand-in ComfyUI: apart from the client it imitates
    "stack": _MEASURE,                   # the embedded stack
    "watchdog": _JUDGE | {"stack"},      # the kill test's guard, killers, recovery
    "load": _REPORT,                     # the load run
    "classrun": _REPORT | {"load"},      # the class run, on the load run's Locust plumbing
    "soak": _REPORT | {"stack"},         # the soak
    "rehearsal": _CLIENT | {"stack"},    # the GPU rehearsal; its kit.py runs in ComfyUI's Python, on no comfycheck
    "parallel": _REPORT,                 # pytest-xdist scheduling
    "pytest_entry": _LOW,                # decides whether the plugin joins a pytest run
    "pytest_plugin": None,               # the entry points: anything
    "cli": None,
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, the folder or top-level module of comfycheck) for each import of comfycheck in a module."""
    rel = path.relative_to(PACKAGE)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[1:] for a in node.names if a.name.startswith("comfycheck.")]
        elif not isinstance(node, ast.ImportFrom):
            continue
        elif node.level == 0:
            module = node.module or ""
            names = [module.split(".")[1:]] if module.startswith("comfycheck.") else []
            if module == "comfycheck":  # from comfycheck import hints, ComfycheckError
                names = [[a.name] for a in node.names]
        else:
            base = list(rel.parts[:-1])
            base = base[:len(base) - (node.level - 1)]
            parts = base + (node.module.split(".") if node.module else [])
            names = [parts] if parts else [[a.name] for a in node.names]
        found += [(node.lineno, _module(parts[0])) for parts in names if parts]
    return found


def _module(name: str) -> str:
    """A folder or module of comfycheck by name; a name defined in comfycheck/__init__.py is "__init__"."""
    return name if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() else "__init__"


def _owner(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_folder_imports_only_along_its_role():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "suite" in path.relative_to(PACKAGE).parts:
            continue  # an installed copy's tests and locustfiles
        owner = _owner(path)
        allowed = MAY_IMPORT.get(owner, set()) if owner not in BASE else set()
        if allowed is None:
            continue
        for line, target in _imports(path):
            if target != owner and target not in BASE | allowed:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports comfycheck.{target} "
                             f"({owner} may import {', '.join(sorted(allowed)) or 'only'} {sorted(BASE)})")
    assert not wrong, "imports across roles:\n" + "\n".join(wrong)


def test_every_folder_has_a_role():
    folders = {_owner(p) for p in PACKAGE.rglob("*.py") if "suite" not in p.relative_to(PACKAGE).parts}
    assert folders - BASE <= set(MAY_IMPORT), f"folders without a rule here: {sorted(folders - BASE - set(MAY_IMPORT))}"
