"""Profiles: one TOML file carries a deployment's endpoints, expectations and targets.

Every key is validated before any test runs; an error names the file, the key and what was expected.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .targets import DEFAULT_TARGETS, Target

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROFILE = PROJECT_ROOT / "profiles" / "local.toml"
WORKFLOWS_DIR = PROJECT_ROOT / "fixtures" / "workflows"
PROFILE_ENV = "COMFYCHECK_PROFILE"


def is_loopback(url_or_host: str) -> bool:
    """Whether a URL (or bare host name) points at this machine's loopback."""
    host = urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host
    return host == "localhost" or (host or "").startswith("127.") or host == "::1"


class ProfileError(Exception):
    """A profile that cannot be used; the message names the file and every bad key."""


# --- schema ---------------------------------------------------------------------------------------
# Each key: (kind, default). kind is one of the checkers below; REQUIRED marks a key without default.
REQUIRED = object()


def _str(v):
    return isinstance(v, str)


def _bool(v):
    return isinstance(v, bool)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _models(v):
    return isinstance(v, dict) and all(_str_list(x) for x in v.values())


def _url(v):
    if not isinstance(v, str):
        return False
    parts = urlsplit(v)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _kill(v):
    return v in ("local", "command", "supervisor")


def _poll(v):
    return _num(v) and 0 < v <= 0.1


def _size(v):
    return isinstance(v, list) and len(v) == 2 and all(_int(x) and x > 0 for x in v)


def _url_or_empty(v):
    return v == "" or _url(v)


def _prefix(v):
    return v in ("", "/api")


def _backend(v):
    return v in ("standin", "real")


KINDS = {
    _str: "a string",
    _bool: "true or false",
    _int: "an integer",
    _num: "a number",
    _str_list: "a list of strings",
    _models: "a table of folder = [file names]",
    _url: "an http:// or https:// URL with a host",
    _url_or_empty: 'an http:// URL with a host, or "" for none',
    _size: "[width, height] in pixels",
    _kill: '"local", "command" or "supervisor"',
    _poll: "a number of seconds above 0 and at most 0.1",
    _prefix: '"" or "/api"',
    _backend: '"standin" or "real"',
}

SCHEMA: dict[str, Any] = {
    "name": (_str, REQUIRED),
    "description": (_str, ""),
    "allow_destructive": (_bool, False),
    "allow_load": (_bool, False),  # load runs against this profile's deployment (always allowed on the embedded stack)
    "comfyui": {
        "url": (_url, REQUIRED),
        "api_prefix": (_prefix, ""),
        "token_env": (_str, ""),
        "timeout_s": (_num, 10.0),
        "generation_timeout_s": (_num, 300.0),
        "latency_samples": (_int, 30),
        "required_nodes": (_str_list, []),
        "required_models": (_models, {}),
        "models_installed": (_bool, False),
        "smoke_workflow": (_str, "smoke_modelfree.json"),
        "generation_workflow": (_str, "qwen_image_edit_2509.json"),
        "edit_image": (_str, "fixtures/images/edit_input.png"),
        "must_not_be_public": (_bool, False),
        "upload_limit_mb": (_num, None),  # the uploads ComfyUI itself must take; None: public.upload_limit_mb, else 100
    },
    "public": {
        "url": (_url, REQUIRED),
        "http_url": (_url_or_empty, None),  # None: http://<host of url>; "": no plain-HTTP listener
        "ca_bundle": (_str, ""),
        "token_env": (_str, ""),
        "upload_limit_mb": (_num, 100),
        "cors_origins": (_str_list, []),
        "hsts_min_age_s": (_int, 15768000),
        "min_days_left": (_num, None),  # None: the renewal point, a third of the certificate's lifetime
        # the longest a generation may keep the page's WebSocket silent (loading a model sends nothing): the
        # proxy's read timeout must be longer; the default is above nginx's 60 s default
        "websocket_idle_s": (_num, 90.0),
    },
    "forge": {
        "url": (_url, REQUIRED),
    },
    "ui": {
        "browser_path": (_str, ""),  # "": Playwright's own Chromium if installed, else /usr/bin/chromium
        "timeout_s": (_num, 60.0),
        "viewport": (_size, [1280, 800]),
        "baseline_tolerance_pct": (_num, 1.0),
        "expected_404": (_str_list, []),  # more paths a healthy page may get 404 for (beyond ComfyUI's own)
        "run_workflow": (_bool, True),  # click Run on the smoke workflow in the page
        "baselines_dir": (_str, ""),  # "": fixtures/baselines/<profile name>
    },
    "watchdog": {
        "kill": (_kill, "local"),
        "kill_command": (_str, ""),
        "supervisor_url": (_str, ""),  # "": the embedded stack's supervisord
        "supervisor_program": (_str, "comfyui"),
        "deadline_s": (_num, 120.0),
        "poll_interval_s": (_poll, 0.1),
    },
    "gpus": {
        "comfyui": (_str, ""),
        "forge": (_str, ""),
        "comfyui_uuid": (_str, ""),  # settle which card is ComfyUI's where NVML cannot see its PID
        "comfyui_pci_bus_id": (_str, ""),
        "forge_uuid": (_str, ""),
        "forge_pci_bus_id": (_str, ""),
    },
    "load": {
        "generations": (_int, 10),
        "time_limit_s": (_num, 600.0),
        "sample_hz": (_num, 10.0),
        "settle_s": (_num, 30.0),  # how long VRAM may take to settle at the idle baseline, before and after
    },
    "stack": {
        "embedded": (_bool, False),
        "control_url": (_url, REQUIRED),
        "startup_delay_s": (_num, 0.0),
        "model_step_s": (_num, 0.05),
        "vram_total_gb": (_num, 24.0),
        "vram_idle_gb": (_num, 0.4),
        "startup_timeout_s": (_num, 60.0),
        "supervisor_url": (_url, REQUIRED),  # supervisord's XML-RPC, the stand-in's watchdog
        "autorestart": (_bool, True),  # false: a watchdog that never restarts (self-tests)
        "forge_vram_total_gb": (_num, 12.0),
        # "real": supervisord runs real ComfyUI (comfyui_dir, else $COMFYCHECK_COMFYUI_DIR, else the user config)
        "comfyui": (_backend, "standin"),
        "comfyui_dir": (_str, ""),
        "comfyui_python": (_str, ""),  # "": $COMFYCHECK_COMFYUI_PYTHON, the user config, a venv beside it, python3
        # more arguments for ComfyUI's main.py (--cpu is added where NVML sees no GPU); the stand-in takes the
        # ComfyUI flags it imitates (--max-upload-size)
        "comfyui_args": (_str_list, []),
    },
    "targets": {key: (_num, None) for key in DEFAULT_TARGETS},
}
OPTIONAL_TABLES = {"public", "forge", "gpus", "stack", "targets", "ui", "watchdog", "load"}


def _validate(data: dict, schema: dict, where: str, errors: list[str]) -> dict:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            errors.append(f"{where}{key}: unknown key (known keys here: {known})")
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                errors.append(f"{where}{key}: expected a table [{key}], got {type(value).__name__}")
                continue
            out[key] = _validate(value, spec, f"{where}{key}.", errors)
            continue
        check, _default = spec
        if not check(value):
            errors.append(f"{where}{key}: expected {KINDS[check]}, got {value!r}")
            continue
        out[key] = value
    for key, spec in schema.items():
        if key in out or key in data:
            continue
        if isinstance(spec, dict):
            if key in OPTIONAL_TABLES:
                continue
            errors.append(f"{where}{key}: missing table [{key}]")
            out[key] = {}
            continue
        check, default = spec
        if default is REQUIRED:
            errors.append(f"{where}{key}: missing, expected {KINDS[check]}")
        elif default is not None:  # None: an optional key that stays absent (a target not overridden)
            out[key] = default
    return out


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
    hsts_min_age_s: int
    min_days_left: float | None
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

    def secrets(self) -> list[str]:
        """Every token this profile reads from the environment (to keep them out of reports)."""
        return [t for t in (self.comfyui.token, self.public.token if self.public else None) if t]

    @property
    def public_url(self) -> str | None:
        return self.public.url if self.public else None

    @property
    def upload_limit_mb(self) -> float:
        """The largest upload ComfyUI must take: comfyui.upload_limit_mb, else public.upload_limit_mb, else 100."""
        if self.comfyui.upload_limit_mb is not None:
            return self.comfyui.upload_limit_mb
        return self.public.upload_limit_mb if self.public else 100.0

    @property
    def ca_bundle(self) -> Path | None:
        return self.public.ca_bundle if self.public else None

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
    v = _validate(data, SCHEMA, "", errors)
    if errors:
        lines = "\n  ".join(errors)
        raise ProfileError(f"profile {chosen} has {len(errors)} error(s):\n  {lines}")

    targets = dict(DEFAULT_TARGETS)
    for key, value in v.get("targets", {}).items():
        targets[key] = targets[key].with_threshold(value)

    stack = StackSettings(**v["stack"]) if "stack" in v else None
    public = None
    if "public" in v:
        pub = dict(v["public"])
        if "http_url" not in pub:
            pub["http_url"] = f"http://{urlsplit(pub['url']).hostname}"
        pub["http_url"] = pub["http_url"] or None
        ca = pub.get("ca_bundle")
        pub["ca_bundle"] = (PROJECT_ROOT / ca) if ca and not Path(ca).is_absolute() else (Path(ca) if ca else None)
        pub.setdefault("min_days_left", None)
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
