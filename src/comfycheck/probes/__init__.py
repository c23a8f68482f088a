"""What the suite observes beyond ComfyUI's API: TLS, GPUs, processes, the browser, Forge."""
