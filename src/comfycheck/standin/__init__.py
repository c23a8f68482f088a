"""The stand-in ComfyUI of the embedded reference stack."""
