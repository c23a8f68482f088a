"""comfycheck's optional parts (pyproject.toml's extras) and what each needs: a smoke check against a real deployment
needs none of them. What lacks its extra says which one to install, never a bare ImportError."""
from __future__ import annotations

import importlib.util

EXTRAS = {  # extra: the modules it brings (the import names)
    "stack": ("aiohttp", "comfyui_frontend_package", "gradio"),
    "ui": ("playwright", "pytest_playwright", "pixelmatch"),
    "load": ("locust", "matplotlib"),
}


def missing(extra: str) -> list[str]:
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def lacking(extra: str, what: str) -> str | None:
    """Why `what` cannot run here (its extra is not installed, naming the command that installs it), or None."""
    absent = missing(extra)
    if not absent:
        return None
    return (f"{what}: comfycheck's [{extra}] extra is needed ({', '.join(absent)} not installed): pipx install "
            f"'comfycheck[{extra}]' (or uv tool install 'comfycheck[{extra}]'; ./run installs every extra)")
