"""The tables of a profile, one dataclass each: every key with its kind and its one default (config/schema.py
reads the schema off these fields). Units are in the names: _s seconds, _mib 2^20 bytes, _gib 2^30 bytes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .auth import AUTH_MODES, Credentials, from_environment
from .paths import DEFAULT_HISTORY, resolve
from .schema import (
    _bool,
    _duration,
    _duration_or_off,
    _int,
    _int_pos,
    _models,
    _num,
    _num_pos,
    _poll,
    _size,
    _str,
    _str_list,
    _url,
    _url_list,
    _url_or_empty,
    key,
    list_of,
    one_of,
)
from .targets import DEFAULT_TARGETS

# what one user can do to everyone (comfy.operations probes each); [public] allowed_/refused_operations name them
EXPOSURE_OPERATIONS = ("queue_edit", "history_edit", "interrupt", "free", "internal_logs", "userdata_write",
                       "jobs_cancel", "manager", "history_listing", "priority")

# The requirements that are also a target's threshold: the target holds the number, the key defaults to it.
WEBSOCKET_IDLE_S = DEFAULT_TARGETS["websocket_idle_s"].threshold
UPLOAD_LIMIT_MIB = DEFAULT_TARGETS["proxy_upload_limit_mib"].threshold


def project_path(value: str) -> Path | None:
    """A path from the profile (comfycheck.config.paths.resolve); "" for none."""
    return resolve(value) if value else None


class _TokenFromEnv:
    """A table whose `token_env` names the environment variable holding its bearer token."""

    token_env: str

    @property
    def token(self) -> str | None:
        """Read from the environment only: never stored in a profile or a report."""
        return (os.environ.get(self.token_env) or None) if self.token_env else None

    @property
    def credentials(self) -> Credentials:
        return from_environment("bearer", token_env=self.token_env) if self.token_env else Credentials()


@dataclass(frozen=True)
class ComfySettings(_TokenFromEnv):
    url: str = key(_url)
    api_prefix: str = key(one_of("", "/api"), "")
    token_env: str = key(_str, "")  # the name of an environment variable holding a bearer token
    timeout_s: float = key(_num, 10.0)
    generation_timeout_s: float = key(_num, 300.0)
    latency_samples: int = key(_int, 30)
    required_nodes: list[str] = key(_str_list, [])
    required_models: dict[str, list[str]] = key(_models, {})
    models_installed: bool = key(_bool, False)
    smoke_workflow: str = key(_str, "smoke_modelfree.json")
    generation_workflow: str = key(_str, "qwen_image_edit_2509.json")
    edit_image: str = key(_str, "fixtures/images/edit_input.png")
    must_not_be_public: bool = key(_bool, False)
    # the uploads ComfyUI itself must take; None: public.upload_limit_mib, else the proxy target's default
    upload_limit_mib: float | None = key(_num, None)
    # read ComfyUI's own log (/internal/logs on this backend url, never the public address) for the custom nodes
    # that failed to import; off unless the profile says so, as the log holds paths and command lines
    read_logs: bool = key(_bool, False)
    # ComfyUI's venv on its own host, so that the fix of a half-done update is written out in full
    venv: str = key(_str, "")


@dataclass(frozen=True)
class PublicSettings:
    """The public HTTPS entry: the reverse proxy in front of ComfyUI, how users authenticate to it, and what its
    certificate must be."""

    url: str = key(_url)
    # the plain-HTTP address that must redirect to `url`; absent: http://<host of url>; "": no such listener
    http_url: str | None = key(_url_or_empty, None)
    ca_bundle: Path | None = key(_str, None, convert=project_path)  # None: the system trust store
    # how every client proves itself to the proxy; "": "bearer" where token_env is set, else "none". Each secret
    # comes from the environment variable named here, never from the profile
    auth: str = key(one_of(*AUTH_MODES), "")
    token_env: str = key(_str, "")  # bearer and query
    user_env: str = key(_str, "")  # basic
    password_env: str = key(_str, "")  # basic
    cookie_name: str = key(_str, "")  # cookie: the session cookie an auth portal in front of the proxy sets
    cookie_env: str = key(_str, "")  # cookie
    query_param: str = key(_str, "token")  # query: ComfyUI-Login's ?token=
    # operator: only the operator reaches the address; shared: users (a class) do, and must not reach what acts
    # on everyone (the exposure check)
    audience: str = key(one_of("operator", "shared"), "operator")
    # per-operation overrides of what the audience requires (keys: EXPOSURE_OPERATIONS)
    allowed_operations: list[str] = key(list_of(*EXPOSURE_OPERATIONS), [])
    refused_operations: list[str] = key(list_of(*EXPOSURE_OPERATIONS), [])
    # POST /prompt per user and minute the proxy allows (answering 429 above it); 0: the profile sets none
    rate_limit_per_min: float = key(_num, 0)
    upload_limit_mib: float = key(_num, UPLOAD_LIMIT_MIB)
    cors_origins: list[str] = key(_str_list, [])
    # the longest a generation may keep the page's WebSocket silent (loading a model sends nothing): the
    # proxy's read timeout must be longer; the default is above nginx's 60 s default
    websocket_idle_s: float = key(_num, WEBSOCKET_IDLE_S)

    def must_refuse(self, operation: str) -> bool:
        """Whether the public address must refuse this operation to a user (a shared audience: every one)."""
        if operation in self.refused_operations:
            return True
        return self.audience == "shared" and operation not in self.allowed_operations

    @property
    def auth_mode(self) -> str:
        return self.auth or ("bearer" if self.token_env else "none")

    @property
    def credentials(self) -> Credentials:
        """Read from the environment now: never stored in a profile or a report."""
        return from_environment(self.auth_mode, token_env=self.token_env, user_env=self.user_env,
                                password_env=self.password_env, cookie_name=self.cookie_name,
                                cookie_env=self.cookie_env, query_param=self.query_param)

    @property
    def token(self) -> str | None:
        return self.credentials.secret

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


@dataclass(frozen=True)
class ForgeSettings:
    url: str = key(_url)


@dataclass(frozen=True)
class GpuSettings:
    """Which card is whose, by name; the UUID or PCI bus id settle it where NVML cannot see ComfyUI's PID."""

    comfyui: str = key(_str, "")
    forge: str = key(_str, "")
    comfyui_uuid: str = key(_str, "")
    comfyui_pci_bus_id: str = key(_str, "")
    forge_uuid: str = key(_str, "")
    forge_pci_bus_id: str = key(_str, "")


@dataclass(frozen=True)
class UISettings:
    browser_path: str = key(_str, "")  # "": Playwright's own Chromium if installed, else /usr/bin/chromium
    timeout_s: float = key(_num, 60.0)
    viewport: tuple[int, int] = key(_size, (1280, 800), convert=tuple)
    baseline_tolerance_pct: float = key(_num, 1.0)
    expected_404: tuple[str, ...] = key(_str_list, (), convert=tuple)  # more than ComfyUI's own healthy 404s
    run_workflow: bool = key(_bool, True)  # click Run on the smoke workflow in the page
    baselines_dir: str = key(_str, "")  # "": fixtures/baselines/<profile name>


@dataclass(frozen=True)
class WatchdogSettings:
    kill: str = key(one_of("local", "command", "supervisor"), "local")
    kill_command: str = key(_str, "")
    supervisor_url: str = key(_str, "")  # "": the embedded stack's supervisord
    supervisor_program: str = key(_str, "comfyui")
    deadline_s: float = key(_num, 120.0)
    poll_interval_s: float = key(_poll, 0.1)
    idle_wait_s: float = key(_num, 60.0)  # how long a busy ComfyUI is waited for before the kill is refused
    # after a recovery that failed: "auto" (supervisord's start where one is known), "command", "supervisor", "none"
    rollback: str = key(one_of("auto", "command", "supervisor", "none"), "auto")
    rollback_command: str = key(_str, "")  # rollback = "command": a shell command that restarts ComfyUI
    rollback_wait_s: float = key(_num, 120.0)  # how long ComfyUI may take to answer after the rollback (a full start)


@dataclass(frozen=True)
class LoadSettings:
    generations: int = key(_int, 10)
    time_limit_s: float = key(_num, 600.0)
    sample_hz: float = key(_num, 10.0)
    settle_s: float = key(_num, 30.0)  # how long VRAM may take to settle at the idle baseline, before and after


@dataclass(frozen=True)
class ClassSettings:
    """A class run (loadtests/classroom.py, pytest -m class): students on the one GPU at once, as they arrive."""

    students: int = key(_int_pos, 10)
    prompts_each: int = key(_int_pos, 2)
    # burst: every student submits at t = 0; ramp: the students arrive evenly over ramp_s; rate: prompts arrive
    # at random (Poisson) at rate_per_min for duration_s, each taken by a free student of the class
    shape: str = key(one_of("burst", "ramp", "rate"), "burst")
    ramp_s: float = key(_num_pos, 60.0)
    rate_per_min: float = key(_num_pos, 6.0)
    duration_s: float = key(_num_pos, 300.0)
    seed: int = key(_int, 1)  # the rate's arrival times: the same seed, the same arrivals
    result_within_s: float = key(_num_pos, 300.0)  # the wait the teacher accepts: goodput counts prompts within it
    think_time_s: float = key(_num, 0.0)  # between a student's prompts
    time_limit_s: float = key(_num_pos, 900.0)  # the run stops by itself at this bound, whatever is left
    # a fleet of ComfyUI backends, each by its own address ([]: the one at comfyui.url); figures per backend come
    # from each one's own timestamps. spread = "balancer": students reach the fleet through the public address
    # (else comfyui.url), which balances them; "direct": each student is given a backend in turn (round-robin)
    backends: list[str] = key(_url_list, [])
    spread: str = key(one_of("balancer", "direct"), "balancer")

    @property
    def prompts(self) -> int:
        """The prompts the run asks for: students x prompts_each, or the rate's expected arrivals."""
        if self.shape == "rate":
            return max(1, round(self.rate_per_min * self.duration_s / 60))
        return self.students * self.prompts_each

    def fleet(self, comfyui_url: str) -> list[str]:
        """Every backend the class runs on, each once, in the profile's order."""
        return list(dict.fromkeys(u.rstrip("/") for u in self.backends)) or [comfyui_url.rstrip("/")]


@dataclass(frozen=True)
class StackSettings:
    """The embedded stack (loopback only): supervisord, nginx, the Forge stand-in, and the stand-in or real ComfyUI."""

    control_url: str = key(_url)  # the stand-in's fault switches (not part of ComfyUI's API)
    supervisor_url: str = key(_url)  # supervisord's XML-RPC, the stand-in's watchdog
    embedded: bool = key(_bool, False)
    startup_delay_s: float = key(_num, 0.0)
    model_step_s: float = key(_num, 0.05)
    vram_total_gib: float = key(_num, 24.0)  # the stand-in's simulated card (an RTX 3090: 24 GiB)
    vram_idle_gib: float = key(_num, 0.4)
    startup_timeout_s: float = key(_num, 60.0)
    autorestart: bool = key(_bool, True)  # false: a watchdog that never restarts (self-tests)
    forge_vram_total_gib: float = key(_num, 12.0)  # the Forge stand-in's simulated card (an RTX 3080 Ti)
    # "real": supervisord runs real ComfyUI (comfyui_dir, else $COMFYCHECK_COMFYUI_DIR, else the user config)
    comfyui: str = key(one_of("standin", "real"), "standin")
    comfyui_dir: str = key(_str, "")
    comfyui_python: str = key(_str, "")  # "": $COMFYCHECK_COMFYUI_PYTHON, the user config, a venv beside it
    # more arguments for ComfyUI's main.py (--cpu is added where NVML sees no GPU); the stand-in takes the
    # ComfyUI flags it imitates (--max-upload-size)
    comfyui_args: list[str] = key(_str_list, [])
    # real ComfyUI also reads this models folder (--extra-model-paths-config): the rehearsal's synthetic weights
    # (comfycheck rehearse builds them there); a required model found there gets no empty placeholder
    models_dir: Path | None = key(_str, None, convert=project_path)

    @property
    def real(self) -> bool:
        """supervisord runs real ComfyUI, not the stand-in (no fault switches then)."""
        return self.comfyui == "real"


@dataclass(frozen=True)
class ResultsSettings:
    """Where a run's results go beyond its report, and how a run is compared with the ones before it."""

    history: str = key(_str, DEFAULT_HISTORY)  # every run appends here; "" keeps no history
    prometheus_file: str = key(_str, "")  # "": none; e.g. node_exporter's textfile directory/comfycheck.prom
    regression_window: int = key(_int_pos, 20)  # the previous runs whose median a value is compared with
    regression_pct: float = key(_num, 25.0)  # how much worse than that median flags a regression


@dataclass(frozen=True)
class SoakSettings:
    """The soak (python -m comfycheck.soak): how often it probes, how it runs its canary, how long it lasts."""

    interval_s: float = key(_num_pos, 1.0)  # one round of probes per interval
    probe_timeout_s: float = key(_num_pos, 5.0)  # a probe slower than this counts as down
    canary_every_s: float = key(_num, 600.0)  # a cache-busted generation this often; 0: no canary
    canary: str = key(one_of("smoke", "generation"), "smoke")  # the smoke or the generation workflow
    duration: str = key(_duration, "24h")  # when --duration is not given
    nightly_duration: str = key(_duration_or_off, "10m")  # the nightly job's short soak (deploy/nightly.sh); "off"
