"""ForgeClient: the health endpoints of stable-diffusion-webui-forge (Gradio + FastAPI) the suite reads."""
from __future__ import annotations

from typing import Any

import httpx

from .. import ComfycheckError


class ForgeError(ComfycheckError):
    pass


class ForgeClient:
    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def get_json(self, path: str) -> Any:
        url = f"{self.base_url}{path}"
        try:
            resp = self._http.get(url)
        except httpx.TransportError as exc:
            raise ForgeError(f"Forge at {self.base_url} does not answer {path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise ForgeError(f"GET {url}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise ForgeError(f"GET {url}: expected JSON, got {resp.text[:200]!r}") from None

    def ping(self) -> Any:
        return self.get_json("/internal/ping")

    def options(self) -> dict:
        return self.get_json("/sdapi/v1/options")

    def models(self) -> list:
        return self.get_json("/sdapi/v1/sd-models")

    def memory(self) -> dict:
        return self.get_json("/sdapi/v1/memory")
