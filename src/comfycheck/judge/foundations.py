"""The checks others stand on, so that one fault makes one red line.

A foundation (the backend answers, the public address answers TLS, its certificate verifies, the proxy keeps
Host, WebSocket upgrades pass, the proxy and ComfyUI take the uploads, the pages load, Forge answers) is probed
at most once per run. Its own check (the test marked `foundation(key)`) carries the failure; a check that stands
on it and fails while it is down is reported as blocked by it, naming it, instead of failing again with the
same error.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import hints
from ..comfy.client import ComfyClient, ComfyError
from ..config.profile import Profile
from ..config.units import MiB
from ..probes import tls
from ..probes.forge import ForgeClient, ForgeError
from . import install
from .auth import credentials_problem
from .measurements import FAIL, Measurement


@dataclass(frozen=True)
class Foundation:
    key: str
    title: str  # reads after "blocked: ", e.g. "the certificate of https://x verifies"
    requires: tuple[str, ...] = ()
    # False: what stands on it still runs once it is known to have failed (it may well pass: a half-done update
    # leaves most of the page working); only what then fails is reported as blocked by it
    skips_dependants: bool = True


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
    below_backend: tuple[str, ...] = ()
    defs = []
    if profile.embedded:  # reported by the `deployment` fixture: every check that needs the stack stands on it
        defs.append(Foundation("stack", f"the embedded stack of profile {profile.name!r} starts"))
        below_backend = ("stack",)
    defs += [Foundation("backend", f"ComfyUI at {profile.comfyui.url} answers", below_backend),
             Foundation("backend_upload", f"ComfyUI takes uploads of {profile.upload_limit_mib:g} MiB", ("backend",)),
             Foundation("comfy_packages", "ComfyUI's own packages are at the versions its requirements.txt requires",
                        ("backend",), skips_dependants=False)]
    probes: dict[str, Callable[[], str | None]] = {"backend": lambda: _backend(profile),
                                                   "backend_upload": lambda: _backend_upload(profile),
                                                   "comfy_packages": lambda: install.packages_problem(profile)}
    if profile.forge_url:
        defs += [Foundation("forge", f"Forge at {profile.forge_url} answers", below_backend),
                 Foundation("forge_page", f"the Forge page {profile.forge_url}/ loads", ("forge",))]
        probes["forge"] = lambda: _forge(profile)
    if profile.public is not None:
        url = profile.public.url
        defs += [
            Foundation("public_tls", f"the public address {url} answers TLS", below_backend),
            Foundation("certificate", f"the certificate of {url} verifies", ("public_tls",)),
            Foundation("public_auth", f"the public address {url} takes the credentials of "
                                      f"{profile.public.credentials.describe()}",
                       # asked of ComfyUI's own /system_stats: a silent backend is not a refused credential
                       ("certificate", "backend")),
            Foundation("host_origin", f"the proxy at {url} keeps Host, so ComfyUI accepts the page's Origin",
                       ("public_auth", "backend")),
            Foundation("public_websocket", f"WebSockets open through {url}", ("host_origin",)),
            Foundation("comfyui_page", f"the ComfyUI page {url}/ loads", ("host_origin",)),
            # reported by the page's fixture, which reads the frontend the page says it is
            Foundation("served_frontend", "the page serves the frontend ComfyUI requires",
                       ("comfyui_page", "comfy_packages"), skips_dependants=False),
            Foundation("proxy_upload", f"the proxy at {url} takes uploads of {profile.public.upload_limit_mib:g} MiB",
                       ("host_origin",)),
        ]
        probes |= {"public_tls": lambda: _public_tls(profile), "certificate": lambda: certificate_problem(profile),
                   "public_auth": lambda: credentials_problem(profile),
                   "host_origin": lambda: _host_origin(profile), "public_websocket": lambda: _websocket(profile),
                   "proxy_upload": lambda: _proxy_upload(profile)}
    return Foundations(defs, probes)


def backend_unusable(profile: Profile, exc: ComfyError) -> str:
    """What the backend's foundation and the `comfy` fixture say when ComfyUI does not answer."""
    return f"ComfyUI backend of profile {profile.name!r} is not usable: {exc}"


def _backend(profile: Profile) -> str | None:
    try:
        with ComfyClient.from_profile(profile) as client:
            client.system_stats()
    except ComfyError as exc:
        return backend_unusable(profile, exc)
    return None


def _forge(profile: Profile) -> str | None:
    assert profile.forge_url is not None
    client = ForgeClient(profile.forge_url, timeout=profile.comfyui.timeout_s)
    try:
        client.ping()
    except ForgeError as exc:
        return str(exc)
    finally:
        client.close()
    return None


# --- what a foundation's probe and its check both judge -------------------------------------------
def upload_limit_source(profile: Profile) -> str:
    """Which profile key requires ComfyUI's upload limit."""
    if profile.comfyui.upload_limit_mib is not None:
        return "comfyui.upload_limit_mib"
    return "public.upload_limit_mib" if profile.public else "the default"


def backend_upload_limit(profile: Profile, max_upload_size: float) -> Measurement:
    """ComfyUI's own upload limit (/features max_upload_size, bytes) against the uploads the profile requires."""
    target = profile.targets["backend_upload_limit_mib"]
    return Measurement(
        target.label, round(max_upload_size / MiB, 4), target.unit, target,
        details={"max_upload_size": max_upload_size, "required_by": upload_limit_source(profile)},
        fix=f"ComfyUI itself refuses uploads above {max_upload_size / MiB:.2f} MiB (its 413 comes before the "
            f"proxy's limit matters): {hints.raise_comfyui_upload_limit(profile.upload_limit_mib)}")


def host_kept(client: ComfyClient, origin: str) -> str | None:
    """Why ComfyUI refuses the page's Origin through the proxy (it rewrites Host), or None when it accepts it.
    Any other answer is another foundation's concern (the backend, the proxy)."""
    resp = client.request("GET", "/system_stats", headers={"Origin": origin}, expect=())
    if resp.status_code == 403:
        return hints.host_rewritten(f"GET {client.url('/system_stats')} with the page's Origin {origin}")
    return None


# --- the probes -----------------------------------------------------------------------------------
def _backend_upload(profile: Profile) -> str | None:
    try:
        with ComfyClient.from_profile(profile) as client:
            size = client.features().get("max_upload_size")
    except ComfyError as exc:
        return str(exc)
    if not isinstance(size, (int, float)) or isinstance(size, bool):
        return None  # not said, or not a number: the check says so
    m = backend_upload_limit(profile, size)
    return m.failure_message() if m.verdict == FAIL else None


def _proxy_upload(profile: Profile) -> str | None:
    assert profile.public is not None
    required = int(profile.public.upload_limit_mib * MiB)
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
    assert profile.public is not None
    try:
        tls.public_chain(profile.public.url, timeout=profile.comfyui.timeout_s)
    except tls.TLSProbeError as exc:
        return str(exc)
    return None


def certificate_problem(profile: Profile) -> str | None:
    """Why a TLS client that trusts the profile's CA bundle (or the system store) refuses the public address."""
    pub = profile.public
    assert pub is not None
    try:
        presented = tls.public_chain(pub.url, timeout=profile.comfyui.timeout_s)
        roots, where = tls.trust_store(pub.ca_bundle)
    except tls.TLSProbeError as exc:
        return str(exc)
    return tls.chain_problem(pub.url, presented, roots, where)[1]


def _host_origin(profile: Profile) -> str | None:
    assert profile.public is not None
    with ComfyClient.from_profile(profile, public=True, origin=profile.public.origin) as client:
        try:
            return host_kept(client, profile.public.origin)
        except ComfyError as exc:
            return str(exc)


def _websocket(profile: Profile) -> str | None:
    assert profile.public is not None
    try:
        with ComfyClient.from_profile(profile, public=True, origin=profile.public.origin) as client, \
                client.websocket():
            return None
    except ComfyError as exc:
        return str(exc)
