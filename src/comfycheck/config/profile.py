"""Profiles: one TOML file carries a deployment's endpoints, expectations and targets.

Every key is validated before any test runs; an error names the file, the key and what was expected. The keys
and their defaults are the fields of config/settings.py.
"""
from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from .. import ComfycheckError
from .auth import AUTH_KEY_MEANS, REQUIRED_KEYS, Credentials
from .hosts import is_loopback
from .paths import DEFAULT_PROFILE, WORKFLOWS_DIR, resolve
from .schema import Table, _bool, _num, _str, build, key, table, table_of, validate
from .settings import (
    UPLOAD_LIMIT_MIB,
    WEBSOCKET_IDLE_S,
    ClassSettings,
    ComfySettings,
    ForgeSettings,
    GpuSettings,
    LoadSettings,
    PublicSettings,
    ResultsSettings,
    SoakSettings,
    StackSettings,
    UISettings,
    WatchdogSettings,
)
from .targets import DEFAULT_TARGETS, Target

PROFILE_ENV = "COMFYCHECK_PROFILE"
# targets with a `source` take their threshold from that key, not from [targets]
TARGETS_TABLE = Table({k: _num for k, t in DEFAULT_TARGETS.items() if not t.source})

# Keys renamed since, still read as the same value: (table, older key) -> (table, key). The first two set a target
# before targets.py held every threshold; the others were named GB/MB while counted in GiB/MiB.
OLDER_SPELLINGS = {
    ("public", "hsts_min_age_s"): ("targets", "hsts_max_age_s"),
    ("public", "min_days_left"): ("targets", "cert_days_left"),
    ("comfyui", "upload_limit_mb"): ("comfyui", "upload_limit_mib"),
    ("public", "upload_limit_mb"): ("public", "upload_limit_mib"),
    ("stack", "vram_total_gb"): ("stack", "vram_total_gib"),
    ("stack", "vram_idle_gb"): ("stack", "vram_idle_gib"),
    ("stack", "forge_vram_total_gb"): ("stack", "forge_vram_total_gib"),
}


class ProfileError(ComfycheckError):
    """A profile that cannot be used; the message names the file and every bad key."""


@dataclass(frozen=True)
class Profile:
    path: Path
    targets: dict[str, Target]
    name: str = key(_str)
    comfyui: ComfySettings = table(ComfySettings, required=True)
    description: str = key(_str, "")
    allow_destructive: bool = key(_bool, False)  # tests marked destructive run only when true
    allow_load: bool = key(_bool, False)  # load runs against this deployment (always allowed on the embedded stack)
    public: PublicSettings | None = table(PublicSettings)
    forge: ForgeSettings | None = table(ForgeSettings)
    gpus: GpuSettings = table(GpuSettings, default=GpuSettings)
    stack: StackSettings | None = table(StackSettings)
    ui: UISettings = table(UISettings, default=UISettings)
    watchdog: WatchdogSettings = table(WatchdogSettings, default=WatchdogSettings)
    load: LoadSettings = table(LoadSettings, default=LoadSettings)
    results: ResultsSettings = table(ResultsSettings, default=ResultsSettings)
    soak: SoakSettings = table(SoakSettings, default=SoakSettings)
    classroom: ClassSettings = table(ClassSettings, default=ClassSettings, name="class")

    def secrets(self) -> list[str]:
        """Every secret this profile reads from the environment (to keep them out of reports)."""
        found = self.comfyui.credentials.secrets() + (self.public.credentials.secrets() if self.public else [])
        return list(dict.fromkeys(found))

    @property
    def public_url(self) -> str | None:
        return self.public.url if self.public else None

    @property
    def public_credentials(self) -> Credentials:
        """What the public address asks of every client (nothing, without a [public] table)."""
        return self.public.credentials if self.public else Credentials()

    @property
    def forge_url(self) -> str | None:
        return self.forge.url if self.forge else None

    @property
    def upload_limit_mib(self) -> float:
        """The largest upload ComfyUI must take: comfyui.upload_limit_mib, else public.upload_limit_mib, else the
        proxy target's default."""
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
        """A path from the profile (comfycheck.config.paths.resolve)."""
        return resolve(relative)

    def workflow_path(self, name: str) -> Path:
        p = Path(name)
        if p.is_absolute() or p.parent != Path("."):
            return self.resolve(name)
        return WORKFLOWS_DIR / name


# [targets] holds the profile's overrides of targets.py; Profile.targets is every target with them applied
_TOP = table_of(Profile)
SCHEMA = Table({**_TOP.keys, "targets": TARGETS_TABLE}, _TOP.required, _TOP.convert)


def _older_spellings(data: dict, path: Path) -> tuple[dict, dict[str, str]]:
    """The profile with every older spelling moved to today's key, and {today's key: what the file wrote}."""
    data = copy.deepcopy(data)
    written: dict[str, str] = {}
    for (table_name, older), (new_table, new_key) in OLDER_SPELLINGS.items():
        source = data.get(table_name)
        if not isinstance(source, dict) or older not in source:
            continue
        value = source.pop(older)
        dest = data.setdefault(new_table, {})
        if not isinstance(dest, dict):
            continue  # validation names the table that is not one
        if new_key in dest and dest[new_key] != value:
            raise ProfileError(f"profile {path}: {table_name}.{older} = {value!r} and {new_table}.{new_key} = "
                               f"{dest[new_key]!r} set the same thing; keep {new_table}.{new_key}")
        dest[new_key] = value
        written[f"{new_table}.{new_key}"] = f"{table_name}.{older}"
    return data, written


def _targets(profile: Profile, overrides: dict[str, float]) -> dict[str, Target]:
    """targets.py's defaults, with the profile's [targets] overrides and the requirements that set a target."""
    targets = dict(DEFAULT_TARGETS)
    for name, value in overrides.items():
        targets[name] = targets[name].with_threshold(value)
    pub = profile.public
    proxy_limit = pub.upload_limit_mib if pub else UPLOAD_LIMIT_MIB
    limit = profile.comfyui.upload_limit_mib
    sources = {"public.websocket_idle_s": pub.websocket_idle_s if pub else WEBSOCKET_IDLE_S,
               "public.upload_limit_mib": proxy_limit,
               "comfyui.upload_limit_mib": proxy_limit if limit is None else limit}
    for name, t in DEFAULT_TARGETS.items():
        if t.source:
            targets[name] = t.with_threshold(sources[t.source])
    return targets


def load_profile(path: str | os.PathLike | None = None) -> Profile:
    """Load and validate a profile: `path`, else $COMFYCHECK_PROFILE, else profiles/local.toml. A relative path
    means the caller's folder, and the profile keeps it absolute: what the run starts elsewhere finds it too."""
    chosen = Path(path or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE).absolute()
    if not chosen.is_file():
        raise ProfileError(f"profile {chosen}: no such file")
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {chosen}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"profile {chosen}: not UTF-8 text: {exc}") from None

    data, written = _older_spellings(data, chosen)
    errors: list[str] = []
    given = validate(data, SCHEMA, "", errors)
    if errors:
        for today, older in written.items():
            errors = [e.replace(f"{today}:", f"{today} (written as {older}):", 1) for e in errors]
        lines = "\n  ".join(errors)
        raise ProfileError(f"profile {chosen} has {len(errors)} error(s):\n  {lines}")

    overrides = given.pop("targets", {})
    profile = build(Profile, given, path=chosen, targets={})
    pub = profile.public
    if pub is not None and pub.http_url in (None, ""):
        profile = replace(profile, public=replace(pub, http_url=None if pub.http_url == "" else
                                                  f"http://{urlsplit(pub.url).hostname}"))
    stack = profile.stack
    if stack is not None and stack.embedded and not profile.watchdog.supervisor_url:
        profile = replace(profile, watchdog=replace(profile.watchdog, supervisor_url=stack.supervisor_url))
    profile = replace(profile, targets=_targets(profile, overrides))
    if stack is not None and stack.embedded:
        _loopback_only(profile)
    if profile.public is not None:
        _auth_keys(profile.path, profile.public)
    return profile


def _auth_keys(path: Path, pub: PublicSettings) -> None:
    """Every key the auth mode needs is there: the names of its environment variables, the cookie's name."""
    mode = pub.auth_mode
    lacking = [f"public.{k} ({AUTH_KEY_MEANS[k]})" for k in REQUIRED_KEYS[mode] if not getattr(pub, k)]
    if lacking:
        raise ProfileError(f'profile {path}: public.auth = "{mode}" needs {" and ".join(lacking)}')
    if mode == "query" and not pub.query_param:
        raise ProfileError(f'profile {path}: public.auth = "query" needs public.query_param (e.g. "token")')


def _loopback_only(profile: Profile) -> None:
    assert profile.stack is not None
    urls = [(profile.comfyui.url, "comfyui.url"), (profile.stack.control_url, "stack.control_url")]
    if profile.public:
        urls.append((profile.public.url, "public.url"))
        if profile.public.http_url:
            urls.append((profile.public.http_url, "public.http_url"))
    urls += [(url, "class.backends") for url in profile.classroom.backends]
    for url, name in urls:
        if not is_loopback(url):
            raise ProfileError(f"profile {profile.path}: {name}: the embedded stack runs on loopback only, got {url!r}")
