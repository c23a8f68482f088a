"""comfycheck: acceptance and load tests for a ComfyUI + Qwen-Image-Edit deployment."""
__version__ = "0.1.0"


class ComfycheckError(Exception):
    """The base of every error comfycheck raises: its message says what went wrong and where (a file, a key, a
    URL), so a command-line tool catches this one class and prints it."""
