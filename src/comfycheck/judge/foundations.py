"""The checks others stand on, so that one fault makes one red line.

A foundation (the backend answers, the public address answers TLS, its certificate verifies, the proxy keeps
Host, WebSocket upgrades pass, the proxy and ComfyUI take the uploads, the pages load, Forge answers) is probed
at most once per run. Its own check (the test marked `foundation(key)`) carries the failure; a check that stands
on it and fails while it is down is reported as blocked by it, naming it, instead of failing again with the
same error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..probes import tls
from ..comfy.client import ComfyClient, ComfyError
from ..probes.forge import ForgeClient, ForgeError
from ..config.profile import Profile
from ..comfy.uploads import MiB


@dataclass(frozen=True)
class Foundation:
    key: str
    title: str  # reads after "blocked: ", e.g. "the certificate of https://x verifies"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    """A failed foundation: itself, or the failed one below it that it could not be checked without."""

    key: str  # the foundation that really failed (the root cause)
    title: str
    message: str


class Foundations:
    """The run's foundations: each probed at most once; results reported by a fixture are taken as they come."""

    def __init__(self, defs: list[Foundation], probes: dict[str, Callable[[], str | None]]):
        self.defs = {d.key: d for d in defs}
        self.probes = probes
        self.results: dict[str, Failure | None] = {}

    def report(self, key: str, message: str | None) -> None:
        """A foundation checked by a fixture (the page load): its failure message, or None when it holds."""
        self.results[key] = self._below(key) or (Failure(key, self.defs[key].title, message) if message else None)

    def failure(self, key: str, *, probe: bool = True) -> Failure | None:
        """Why `key` does not hold (the root cause), or None when it holds or is not known yet (probe=False)."""
        if key in self.results:
            return self.results[key]
        below = self._below(key, probe=probe)
        if below is not None:
            self.results[key] = below
            return below
        if key not in self.probes or not probe:
            return None
        message = self.probes[key]()
        self.results[key] = Failure(key, self.defs[key].title, message) if message else None
        return self.results[key]

    def _below(self, key: str, probe: bool = True) -> Failure | None:
        for required in self.defs[key].requires:
            found = self.failure(required, probe=probe)
            if found is not None:
                return found
        return None


def for_profile(profile: Profile) -> Foundations:
    """The foundations of a deployment, with probes that ask each question once, fast, with the URL in the answer."""
    defs = [Foundation("backend", f"ComfyUI at {profile.comfyui.url} answers"),
            Foundation("backend_upload", f"ComfyUI takes uploads of {profile.upload_limit_mb:g} MiB", ("backend",))]
    probes: dict[str, Callable[[], str | None]] = {"backend": lambda: _backend(profile),
                                                   "backend_upload": lambda: _backend_upload(profile)}
    if profile.forge_url:
        defs += [Foundation("forge", f"Forge at {profile.forge_url} answers"),
                 Foundation("forge_page", f"the Forge page {profile.forge_url}/ loads", ("forge",))]
        probes["forge"] = lambda: _forge(profile)
    if profile.public is not None:
        url = profile.public.url
        defs += [
            Foundation("public_tls", f"the public address {url} answers TLS"),
            Foundation("certificate", f"the certificate of {url} verifies", ("public_tls",)),
            Foundation("host_origin", f"the proxy at {url} keeps Host, so ComfyUI accepts the page's Origin",
                       ("certificate", "backend")),
            Foundation("public_websocket", f"WebSockets open through {url}", ("host_origin",)),
            Foundation("comfyui_page", f"the ComfyUI page {url}/ loads", ("host_origin",)),
            Foundation("proxy_upload", f"the proxy at {url} takes uploads of {profile.public.upload_limit_mb:g} MiB",
                       ("host_origin",)),
        ]
        probes |= {"public_tls": lambda: _public_tls(profile), "certificate": lambda: certificate_problem(profile),
                   "host_origin": lambda: _host_origin(profile), "public_websocket": lambda: _websocket(profile),
                   "proxy_upload": lambda: _proxy_upload(profile)}
    return Foundations(defs, probes)


def _backend(profile: Profile) -> str | None:
    try:
        with ComfyClient.from_profile(profile) as client:
            client.system_stats()
    except ComfyError as exc:
        return f"ComfyUI backend of profile {profile.name!r} is not usable: {exc}"
    return None


def _forge(profile: Profile) -> str | None:
    client = ForgeClient(profile.forge_url, timeout=profile.comfyui.timeout_s)
    try:
        client.ping()
    except ForgeError as exc:
        return str(exc)
    finally:
        client.close()
    return None


def _backend_upload(profile: Profile) -> str | None:
    try:
        with ComfyClient.from_profile(profile) as client:
            size = client.features().get("max_upload_size")
    except ComfyError as exc:
        return str(exc)
    if isinstance(size, (int, float)) and size < profile.upload_limit_mb * MiB:
        return (f"ComfyUI's own upload limit is {size / MiB:.2f} MiB (/features max_upload_size {size!r}), below "
                f"the {profile.upload_limit_mb:g} MiB required: start ComfyUI with --max-upload-size "
                f"{profile.upload_limit_mb:g} (or more)")
    return None


def _proxy_upload(profile: Profile) -> str | None:
    required = int(profile.public.upload_limit_mb * MiB)
    try:
        with ComfyClient.from_profile(profile, public=True, origin=profile.public.origin) as client:
            answer = client.upload_early_answer(required - 64 * 1024)
    except ComfyError as exc:
        return str(exc)
    if answer == 413:
        return (f"the proxy at {profile.public.url} refuses a {required / MiB:g} MiB upload with 413 before any byte "
                "reaches ComfyUI: raise its body limit")
    return None


def _public_tls(profile: Profile) -> str | None:
    try:
        tls.fetch_chain(profile.public.host, profile.public.port, timeout=profile.comfyui.timeout_s)
    except tls.TLSProbeError as exc:
        return f"{profile.public.url}: {exc}"
    return None


def certificate_problem(profile: Profile) -> str | None:
    """Why a TLS client that trusts the profile's CA bundle (or the system store) refuses the public address."""
    pub = profile.public
    try:
        presented = tls.fetch_chain(pub.host, pub.port, timeout=profile.comfyui.timeout_s)
        roots, where = tls.trust_store(pub.ca_bundle)
    except tls.TLSProbeError as exc:
        return str(exc)
    try:
        tls.verify_chain(presented.chain, roots, pub.host)
    except tls.VerificationError as exc:
        return f"the certificate chain of {pub.url} does not verify against {where}: {exc}"
    return None


def _host_origin(profile: Profile) -> str | None:
    with ComfyClient.from_profile(profile, public=True, origin=profile.public.origin) as client:
        try:
            resp = client.request("GET", "/system_stats", headers={"Origin": profile.public.origin}, expect=())
        except ComfyError as exc:
            return str(exc)
    if resp.status_code == 403:
        return host_rewritten(f"GET {client.url('/system_stats')} with the page's Origin {profile.public.origin}")
    return None


def host_rewritten(what: str) -> str:
    """The words every check uses for ComfyUI's 403 behind a proxy that rewrites Host."""
    return (f"{what}: HTTP 403 from ComfyUI, which answers 403 when Host and Origin differ: the proxy rewrites "
            "Host; pass the original Host header (IIS ARR preserveHostHeader, nginx proxy_set_header Host $http_host)")


def _websocket(profile: Profile) -> str | None:
    try:
        with ComfyClient.from_profile(profile, public=True, origin=profile.public.origin) as client, \
                client.websocket():
            return None
    except ComfyError as exc:
        return str(exc)
