"""Real ComfyUI in the embedded stack: where it is, which python runs it, and its command line.

Found by, in order: the profile's `[stack] comfyui_dir`, `$COMFYCHECK_COMFYUI_DIR`, then `comfyui_dir` in the
user config `~/.config/comfycheck/config.toml` (so a scheduled run or CI on the same machine finds it too).
It runs with its own base directory under the stack's state folder: the stack owns its models, input, output
and user folders and never touches the installation's own.
"""
from __future__ import annotations

import json
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .. import ComfycheckError

DIR_ENV = "COMFYCHECK_COMFYUI_DIR"
PYTHON_ENV = "COMFYCHECK_COMFYUI_PYTHON"


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "comfycheck" / "config.toml"


class RealComfyUINotFound(ComfycheckError):
    """No real ComfyUI is configured, or the one configured is not usable; the message says what to set."""


@dataclass(frozen=True)
class RealComfyUI:
    directory: Path
    python: Path
    source: str  # where the directory came from, for messages

    def command(self, host: str, port: int, base_dir: Path, extra_args: list[str], gpu: bool) -> list[str]:
        cmd = [str(self.python), str(self.directory / "main.py"), "--listen", host, "--port", str(port),
               "--base-directory", str(base_dir), "--disable-auto-launch"]
        if not gpu and "--cpu" not in extra_args:
            cmd.append("--cpu")
        return cmd + list(extra_args)


def _user_config() -> dict:
    path = user_config_path()
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RealComfyUINotFound(f"user config {path}: not valid TOML: {exc}") from None


def locate(comfyui_dir: str = "", comfyui_python: str = "") -> RealComfyUI:
    config = _user_config()
    candidates = ((comfyui_dir, "[stack] comfyui_dir"), (os.environ.get(DIR_ENV, ""), f"${DIR_ENV}"),
                  (config.get("comfyui_dir", ""), f"comfyui_dir in {user_config_path()}"))
    found = next(((value, source) for value, source in candidates if value), None)
    if found is None:
        raise RealComfyUINotFound(
            f"no real ComfyUI configured: set [stack] comfyui_dir, ${DIR_ENV}, or comfyui_dir in "
            f"{user_config_path()} to a ComfyUI checkout whose requirements are installed")
    value, source = found
    directory = Path(value).expanduser().resolve()
    if not (directory / "main.py").is_file():
        raise RealComfyUINotFound(f"{source} = {value}: no ComfyUI there (no main.py)")
    python = comfyui_python or os.environ.get(PYTHON_ENV, "") or config.get("comfyui_python", "")
    if not python:
        beside = [directory / "venv" / "bin" / "python", directory / ".venv" / "bin" / "python",
                  directory.parent / "venv" / "bin" / "python"]
        python = next((str(p) for p in beside if p.is_file()), None) or shutil.which("python3") or ""
    if not python or not Path(python).is_file():
        raise RealComfyUINotFound(f"no python to run ComfyUI in {directory}: set [stack] comfyui_python "
                                  f"or ${PYTHON_ENV}")
    return RealComfyUI(directory, Path(python), source)


MODEL_FOLDERS = ("diffusion_models", "text_encoders", "vae", "checkpoints", "loras")


def extra_model_paths(base_dir: Path, models_dir: Path) -> Path:
    """ComfyUI's extra_model_paths.yaml naming `models_dir`'s folders, written in the stack's base directory."""
    path = base_dir / "extra_model_paths.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("comfycheck:\n" + f"  base_path: {json.dumps(str(models_dir))}\n"
                    + "".join(f"  {folder}: {folder}\n" for folder in MODEL_FOLDERS))
    return path


def prepare_base(base_dir: Path, models: list[str], drop: tuple[str, ...] | list[str] = ()) -> None:
    """The stack's own base directory; each required model is an empty placeholder, so /models lists it. A model in
    `drop` is found elsewhere (the rehearsal's models folder): an earlier placeholder of it would shadow that file."""
    for sub in ("input", "output", "temp", "user", "custom_nodes"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    for model in drop:
        placeholder = base_dir / "models" / model
        if placeholder.is_file() and placeholder.stat().st_size == 0:
            placeholder.unlink()
    for model in models:
        path = base_dir / "models" / model
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
