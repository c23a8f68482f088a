"""ComfyUI's own pip packages (the frontend, workflow templates, embedded docs, ...) against what its
requirements.txt requires, as /system_stats lists them (system.comfy_package_versions).

`git pull` in ComfyUI's folder without `pip install -r requirements.txt` in its venv leaves a package below its
requirement: ComfyUI starts and serves an older frontend, and only its startup log says so."""
from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

FRONTEND = "comfyui-frontend-package"


@dataclass(frozen=True)
class Package:
    name: str
    installed: str | None  # None: not installed at all
    required: str | None

    @property
    def below_required(self) -> bool:
        """Installed below its requirement (or not at all), compared as ComfyUI compares them (PEP 440)."""
        if not self.required:
            return False
        if not self.installed:
            return True
        return older(self.installed, self.required)

    def describe(self) -> str:
        installed = f"{self.installed} installed" if self.installed else "not installed"
        return f"{self.name} {installed}, {self.required} required"


def older(version: str, than: str) -> bool:
    """`version` is below `than`; False where either is not a version (nothing to judge: ComfyUI skips it too)."""
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


def listed(stats: dict) -> list[Package] | None:
    """The packages /system_stats lists; None where this ComfyUI does not list them (older than the field)."""
    rows = (stats.get("system") or {}).get("comfy_package_versions")
    if not isinstance(rows, list):
        return None
    return [Package(str(r.get("name")), _text(r.get("installed")), _text(r.get("required")))
            for r in rows if isinstance(r, dict) and r.get("name")]


def required_frontend(stats: dict) -> str | None:
    """The frontend this ComfyUI requires (system.required_frontend_version), where it says."""
    return _text((stats.get("system") or {}).get("required_frontend_version"))


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def custom_nodes(object_info: dict) -> list[str]:
    """The custom node packages the server loaded, by the module its classes come from (custom_nodes.<name>)."""
    found = {str(d.get("python_module", "")).split(".", 2)[1] for d in object_info.values()
             if isinstance(d, dict) and str(d.get("python_module", "")).startswith("custom_nodes.")}
    return sorted(found - {""})
