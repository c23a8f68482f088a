"""comfycheck: acceptance and load tests for a ComfyUI + Qwen-Image-Edit deployment."""
__version__ = "0.1.0"
