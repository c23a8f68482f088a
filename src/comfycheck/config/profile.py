"""Profiles: one TOML file carries a deployment's endpoints, expectations and targets.

Every key is validated before any test runs; an error names the file, the key and what was expected.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..probes.process import is_loopback
from .paths import DEFAULT_PROFILE, PROJECT_ROOT, WORKFLOWS_DIR
from .schema import SCHEMA, validate
from .targets import DEFAULT_TARGETS, Target

PROFILE_ENV = "COMFYCHECK_PROFILE"



class ProfileError(Exception):
    """A profile that cannot be used; the message names the file and every bad key."""


# --- the profile object ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ComfySettings:
    url: str
    api_prefix: str
    token_env: str
    timeout_s: float
    generation_timeout_s: float
    latency_samples: int
    required_nodes: list[str]
    required_models: dict[str, list[str]]
    models_installed: bool
    smoke_workflow: str
    generation_workflow: str
    edit_image: str
    must_not_be_public: bool
    upload_limit_mb: float | None = None

    @property
    def token(self) -> str | None:
        """The bearer token, read from the environment only (never stored in a profile or a report)."""
        return os.environ.get(self.token_env) or None if self.token_env else None


@dataclass(frozen=True)
class PublicSettings:
    """The public HTTPS entry: the reverse proxy in front of ComfyUI, and what its certificate must be."""

    url: str
    http_url: str | None  # plain-HTTP address that must redirect to `url`; None: no such listener
    ca_bundle: Path | None  # None: the system trust store
    token_env: str
    upload_limit_mb: float
    cors_origins: list[str]
    websocket_idle_s: float = 90.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443

    @property
    def origin(self) -> str:
        """What a browser on the public page sends as Origin."""
        return f"https://{urlsplit(self.url).netloc}"

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None if self.token_env else None


@dataclass(frozen=True)
class UISettings:
    browser_path: str = ""
    timeout_s: float = 60.0
    viewport: tuple[int, int] = (1280, 800)
    baseline_tolerance_pct: float = 1.0
    expected_404: tuple[str, ...] = ()
    run_workflow: bool = True
    baselines_dir: str = ""


@dataclass(frozen=True)
class LoadSettings:
    generations: int = 10
    time_limit_s: float = 600.0
    sample_hz: float = 10.0
    settle_s: float = 30.0


@dataclass(frozen=True)
class ResultsSettings:
    """Where a run's results go beyond its report, and how a run is compared with the ones before it."""

    history: str = "reports/history.sqlite"  # "": no history
    prometheus_file: str = ""
    regression_window: int = 20
    regression_pct: float = 25.0


@dataclass(frozen=True)
class SoakSettings:
    """The soak (python -m comfycheck.soak): how often it probes, how it runs its canary, how long it lasts."""

    interval_s: float = 1.0
    probe_timeout_s: float = 5.0
    canary_every_s: float = 600.0  # 0: no canary
    canary: str = "smoke"  # or "generation"
    duration: str = "24h"
    nightly_duration: str = "10m"


@dataclass(frozen=True)
class WatchdogSettings:
    kill: str = "local"
    kill_command: str = ""
    supervisor_url: str = ""
    supervisor_program: str = "comfyui"
    deadline_s: float = 120.0
    poll_interval_s: float = 0.1


@dataclass(frozen=True)
class StackSettings:
    embedded: bool
    control_url: str
    startup_delay_s: float
    model_step_s: float
    vram_total_gb: float
    vram_idle_gb: float
    startup_timeout_s: float
    supervisor_url: str
    autorestart: bool
    forge_vram_total_gb: float
    comfyui: str = "standin"
    comfyui_dir: str = ""
    comfyui_python: str = ""
    comfyui_args: list[str] = field(default_factory=list)

    @property
    def real(self) -> bool:
        """supervisord runs real ComfyUI, not the stand-in (no fault switches then)."""
        return self.comfyui == "real"


@dataclass(frozen=True)
class Profile:
    path: Path
    name: str
    description: str
    allow_destructive: bool
    comfyui: ComfySettings
    targets: dict[str, Target]
    public: PublicSettings | None = None
    forge_url: str | None = None
    gpus: dict[str, str] = field(default_factory=dict)
    stack: StackSettings | None = None
    ui: UISettings = field(default_factory=UISettings)
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    load: LoadSettings = field(default_factory=LoadSettings)
    allow_load: bool = False
    results: ResultsSettings = field(default_factory=ResultsSettings)
    soak: SoakSettings = field(default_factory=SoakSettings)

    def secrets(self) -> list[str]:
        """Every token this profile reads from the environment (to keep them out of reports)."""
        return [t for t in (self.comfyui.token, self.public.token if self.public else None) if t]

    @property
    def public_url(self) -> str | None:
        return self.public.url if self.public else None

    @property
    def upload_limit_mb(self) -> float:
        """The largest upload ComfyUI must take: comfyui.upload_limit_mb, else public.upload_limit_mb, else 100."""
        return self.targets["backend_upload_limit_mib"].threshold

    @property
    def ca_bundle(self) -> Path | None:
        return self.public.ca_bundle if self.public else None

    @property
    def history_path(self) -> Path | None:
        """The run history (SQLite); None where the profile keeps none."""
        return self.resolve(self.results.history) if self.results.history else None

    @property
    def embedded(self) -> bool:
        return self.stack is not None and self.stack.embedded

    def resolve(self, relative: str) -> Path:
        """A path from the profile: absolute, or relative to the project root."""
        p = Path(relative)
        return p if p.is_absolute() else PROJECT_ROOT / p

    def workflow_path(self, name: str) -> Path:
        p = Path(name)
        if p.is_absolute() or p.parent != Path("."):
            return self.resolve(name)
        return WORKFLOWS_DIR / name


def _ui(table: dict | None) -> UISettings:
    if not table:
        return UISettings()
    t = dict(UISettings().__dict__) | table
    return UISettings(t["browser_path"], float(t["timeout_s"]), tuple(t["viewport"]), float(t["baseline_tolerance_pct"]),
                      tuple(t["expected_404"]), t["run_workflow"], t["baselines_dir"])


def _watchdog(table: dict | None, stack: StackSettings | None) -> WatchdogSettings:
    t = dict(WatchdogSettings().__dict__) | (table or {})
    if not t["supervisor_url"] and stack is not None and stack.embedded:
        t["supervisor_url"] = stack.supervisor_url
    return WatchdogSettings(**t)


# [public] keys that set a target before targets.py held every threshold; still read, and checked against [targets]
_OLDER_TARGET_KEYS = {"hsts_min_age_s": "hsts_max_age_s", "min_days_left": "cert_days_left"}


def _targets(v: dict, path: Path) -> dict[str, Target]:
    """targets.py's defaults, with the profile's [targets] overrides and the requirements that set a target."""
    targets = dict(DEFAULT_TARGETS)
    given = dict(v.get("targets", {}))
    for older, key in _OLDER_TARGET_KEYS.items():
        if older not in v.get("public", {}):
            continue
        value = v["public"][older]
        if key in given and given[key] != value:
            raise ProfileError(f"profile {path}: public.{older} = {value!r} and targets.{key} = {given[key]!r} "
                               f"set the same target; keep targets.{key}")
        given[key] = value
    for key, value in given.items():
        targets[key] = targets[key].with_threshold(value)
    websocket_idle = v.get("public", {}).get("websocket_idle_s", 90.0)
    sources = {"public.websocket_idle_s": websocket_idle,
               "public.upload_limit_mb": v.get("public", {}).get("upload_limit_mb", 100.0),
               "comfyui.upload_limit_mb": _upload_limit(v)}
    for key, t in DEFAULT_TARGETS.items():
        if t.source:
            targets[key] = t.with_threshold(sources[t.source])
    return targets


def _upload_limit(v: dict) -> float:
    if v["comfyui"].get("upload_limit_mb") is not None:
        return v["comfyui"]["upload_limit_mb"]
    return v["public"].get("upload_limit_mb", 100.0) if "public" in v else 100.0


def load_profile(path: str | os.PathLike | None = None) -> Profile:
    """Load and validate a profile: `path`, else $COMFYCHECK_PROFILE, else profiles/local.toml."""
    chosen = Path(path or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE)
    if not chosen.is_file():
        raise ProfileError(f"profile {chosen}: no such file")
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {chosen}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"profile {chosen}: not UTF-8 text: {exc}") from None

    errors: list[str] = []
    v = validate(data, SCHEMA, "", errors)
    if errors:
        lines = "\n  ".join(errors)
        raise ProfileError(f"profile {chosen} has {len(errors)} error(s):\n  {lines}")

    targets = _targets(v, chosen)

    stack = StackSettings(**v["stack"]) if "stack" in v else None
    public = None
    if "public" in v:
        pub = dict(v["public"])
        if "http_url" not in pub:
            pub["http_url"] = f"http://{urlsplit(pub['url']).hostname}"
        pub["http_url"] = pub["http_url"] or None
        ca = pub.get("ca_bundle")
        pub["ca_bundle"] = (PROJECT_ROOT / ca) if ca and not Path(ca).is_absolute() else (Path(ca) if ca else None)
        for older in _OLDER_TARGET_KEYS:
            pub.pop(older, None)
        public = PublicSettings(**pub)
    profile = Profile(
        path=chosen,
        name=v["name"],
        description=v["description"],
        allow_destructive=v["allow_destructive"],
        comfyui=ComfySettings(**v["comfyui"]),
        targets=targets,
        public=public,
        ui=_ui(v.get("ui")),
        watchdog=_watchdog(v.get("watchdog"), stack),
        load=LoadSettings(**(dict(LoadSettings().__dict__) | v.get("load", {}))),
        results=ResultsSettings(**(dict(ResultsSettings().__dict__) | v.get("results", {}))),
        soak=SoakSettings(**(dict(SoakSettings().__dict__) | v.get("soak", {}))),
        allow_load=v["allow_load"],
        forge_url=v["forge"]["url"] if "forge" in v else None,
        gpus=v.get("gpus", {}),
        stack=stack,
    )
    if stack and stack.embedded:
        urls = [(profile.comfyui.url, "comfyui.url"), (stack.control_url, "stack.control_url")]
        if public:
            urls += [(public.url, "public.url")] + ([(public.http_url, "public.http_url")] if public.http_url else [])
        for url, key in urls:
            if not is_loopback(url):
                raise ProfileError(
                    f"profile {chosen}: {key}: the embedded stack runs on loopback only, got {url!r}"
                )
    return profile
