"""The profile's schema, read off the settings dataclasses of profile.py: each key's kind and its one default.

A key is declared once, as a dataclass field: `key(kind, default)`; a table as `table(SettingsClass)`. Validation
takes the TOML as written, names every bad key, and returns only the keys given; the dataclasses fill in the rest.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .duration import parse_duration

Kind = Callable[[Any], bool]


# --- the kinds a key can be -----------------------------------------------------------------------
def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_pos(v: Any) -> bool:
    return _int(v) and v > 0


def _num_pos(v: Any) -> bool:
    return _num(v) and v > 0


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _models(v: Any) -> bool:
    return isinstance(v, dict) and all(_str_list(x) for x in v.values())


def _url(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    parts = urlsplit(v)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url_list(v: Any) -> bool:
    return isinstance(v, list) and all(_url(x) for x in v)


def _url_or_empty(v: Any) -> bool:
    return v == "" or _url(v)


def _size(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_int(x) and x > 0 for x in v)


def _poll(v: Any) -> bool:
    return _num(v) and 0 < v <= 0.1


def one_of(*choices: str) -> Kind:
    """A key that takes one of these strings."""
    def check(v: Any) -> bool:
        return v in choices
    check.__doc__ = " or ".join(", ".join(f'"{c}"' for c in choices).rsplit(", ", 1))
    return check


def list_of(*choices: str) -> Kind:
    """A key that takes a list of these strings."""
    def check(v: Any) -> bool:
        return isinstance(v, list) and all(x in choices for x in v)
    check.__doc__ = "a list of " + ", ".join(f'"{c}"' for c in choices)
    return check


def _duration(v: Any) -> bool:
    try:
        parse_duration(v)
    except ValueError:
        return False
    return True


def _duration_or_off(v: Any) -> bool:
    return v == "off" or _duration(v)


KINDS: dict[Kind, str] = {
    _str: "a string",
    _bool: "true or false",
    _int: "an integer",
    _num: "a number",
    _int_pos: "a whole number above 0",
    _num_pos: "a number above 0",
    _str_list: "a list of strings",
    _models: "a table of folder = [file names]",
    _url: "an http:// or https:// URL with a host",
    _url_list: "a list of http:// or https:// URLs, each with a host",
    _url_or_empty: 'an http:// URL with a host, or "" for none',
    _size: "[width, height] in pixels",
    _poll: "a number of seconds above 0 and at most 0.1",
    _duration: 'a duration such as "90s", "30m", "24h" or "1h30m"',
    _duration_or_off: 'a duration such as "90s", "10m" or "1h", or "off"',
}


def describe(kind: Kind) -> str:
    return KINDS.get(kind) or kind.__doc__ or "?"


# --- declaring keys and tables --------------------------------------------------------------------
def key(kind: Kind, default: Any = dataclasses.MISSING, *, convert: Callable[[Any], Any] | None = None) -> Any:
    """A profile key of this kind. `default` is its only default (none: the key is required); `convert` turns
    the TOML value into the field's type (a list into a tuple, a path string into a Path)."""
    meta = {"kind": kind, "convert": convert}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def table(cls: type, *, required: bool = False, default: Any = None, schema: Table | None = None,
          name: str = "") -> Any:
    """A [table] of the profile whose keys are the fields of `cls` (or an explicit `schema`); `name`: its name in
    the TOML where that is not a Python name ([class])."""
    meta = {"table": cls, "required": required, "schema": schema, "name": name}
    if required:
        return field(metadata=meta)
    if default is not None:
        return field(default_factory=default, metadata=meta)
    return field(default=None, metadata=meta)


@dataclass(frozen=True)
class Table:
    keys: dict[str, Kind | Table]
    required: frozenset[str] = frozenset()
    convert: dict[str, Callable[[Any], Any]] = field(default_factory=dict)


def table_of(cls: type) -> Table:
    """The schema of a settings dataclass: every field declared with key() or table()."""
    keys: dict[str, Kind | Table] = {}
    required, convert = set(), {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "kind" in meta:
            keys[f.name] = meta["kind"]
            if meta["convert"]:
                convert[f.name] = meta["convert"]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.add(f.name)
        elif "table" in meta:
            keys[meta["name"] or f.name] = meta["schema"] or table_of(meta["table"])
            if meta["required"]:
                required.add(meta["name"] or f.name)
    return Table(keys, frozenset(required), convert)


def validate(data: dict, schema: Table, where: str, errors: list[str]) -> dict:
    """The keys given, checked (and converted) against `schema`; each problem appended to `errors`."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        spec = schema.keys.get(name)
        if spec is None:
            known = ", ".join(sorted(schema.keys))
            errors.append(f"{where}{name}: unknown key (known keys here: {known})")
        elif isinstance(spec, Table):
            if isinstance(value, dict):
                out[name] = validate(value, spec, f"{where}{name}.", errors)
            else:
                errors.append(f"{where}{name}: expected a table [{name}], got {type(value).__name__}")
        elif not spec(value):
            errors.append(f"{where}{name}: expected {describe(spec)}, got {value!r}")
        else:
            out[name] = schema.convert[name](value) if name in schema.convert else value
    for name in sorted(schema.required - set(data)):
        spec = schema.keys[name]
        if isinstance(spec, Table):
            errors.append(f"{where}{name}: missing table [{name}]")
        else:
            errors.append(f"{where}{name}: missing, expected {describe(spec)}")
    return out


def build(cls: type, given: dict, **derived: Any) -> Any:
    """A settings object from the keys given (validated), its sub-tables built the same way; the dataclass
    supplies every default. `derived`: fields worked out by the loader, not written in the profile."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        written = f.metadata.get("name") or f.name
        if f.name in derived or written not in given:
            continue
        if "table" in f.metadata and f.metadata["schema"] is None:
            kwargs[f.name] = build(f.metadata["table"], given[written])
        else:
            kwargs[f.name] = given[written]
    return cls(**kwargs, **derived)
