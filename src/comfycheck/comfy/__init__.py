"""ComfyUI's API: the client, its WebSocket, workflows and what a run produces."""
