"""The soak: hours of probing a deployment (directly, through the proxy, a held WebSocket, the GPU, the process,
a canary generation) streamed to disk and judged on targets. `python -m comfycheck.soak --help`."""
