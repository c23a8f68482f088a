"""The profile's schema: every key, what it must be and its default; validation that names each bad key."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .targets import DEFAULT_TARGETS

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


def _int_pos(v):
    return _int(v) and v > 0


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


def _num_pos(v):
    return _num(v) and v > 0


def _canary(v):
    return v in ("smoke", "generation")


def _duration(v):
    from ..soak.duration import parse_duration
    try:
        parse_duration(v)
    except ValueError:
        return False
    return True


def _duration_or_off(v):
    return v == "off" or _duration(v)


def _backend(v):
    return v in ("standin", "real")


KINDS = {
    _str: "a string",
    _bool: "true or false",
    _int: "an integer",
    _num: "a number",
    _int_pos: "a whole number above 0",
    _str_list: "a list of strings",
    _models: "a table of folder = [file names]",
    _url: "an http:// or https:// URL with a host",
    _url_or_empty: 'an http:// URL with a host, or "" for none',
    _size: "[width, height] in pixels",
    _kill: '"local", "command" or "supervisor"',
    _poll: "a number of seconds above 0 and at most 0.1",
    _prefix: '"" or "/api"',
    _backend: '"standin" or "real"',
    _num_pos: "a number above 0",
    _canary: '"smoke" or "generation"',
    _duration: 'a duration such as "90s", "30m", "24h" or "1h30m"',
    _duration_or_off: 'a duration such as "90s", "10m" or "1h", or "off"',
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
        # older spellings of [targets] hsts_max_age_s and cert_days_left, still read
        "hsts_min_age_s": (_int, None),
        "min_days_left": (_num, None),
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
    "results": {
        "history": (_str, "reports/history.sqlite"),  # every run appends here; "" keeps no history
        "prometheus_file": (_str, ""),  # "": none; e.g. node_exporter's textfile directory/comfycheck.prom
        "regression_window": (_int_pos, 20),  # the previous runs whose median a value is compared with
        "regression_pct": (_num, 25.0),  # how much worse than that median flags a regression
    },
    "soak": {
        "interval_s": (_num_pos, 1.0),  # one round of probes per interval
        "probe_timeout_s": (_num_pos, 5.0),  # a probe slower than this counts as down
        "canary_every_s": (_num, 600.0),  # a cache-busted generation this often; 0: no canary
        "canary": (_canary, "smoke"),  # "smoke": the smoke workflow; "generation": the generation workflow
        "duration": (_duration, "24h"),  # when --duration is not given
        "nightly_duration": (_duration_or_off, "10m"),  # the nightly job's short soak (deploy/nightly.sh); "off"
    },
    # targets with a `source` take their threshold from that key, not from here
    "targets": {key: (_num, None) for key, t in DEFAULT_TARGETS.items() if not t.source},
}
OPTIONAL_TABLES = {"public", "forge", "gpus", "stack", "targets", "ui", "watchdog", "load", "results", "soak"}


def validate(data: dict, schema: dict, where: str, errors: list[str]) -> dict:
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
            out[key] = validate(value, spec, f"{where}{key}.", errors)
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
