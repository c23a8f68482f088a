"""comfycheck: acceptance and load tests for a ComfyUI + Qwen-Image-Edit deployment."""
from importlib import metadata

try:
    __version__ = metadata.version("comfycheck")  # one version, pyproject.toml's, as installed
except metadata.PackageNotFoundError:  # the source tree on sys.path without an install
    __version__ = "0+unknown"


class ComfycheckError(Exception):
    """The base of every error comfycheck raises: its message says what went wrong and where (a file, a key, a
    URL), so a command-line tool catches this one class and prints it."""
