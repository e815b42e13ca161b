"""Typed conversion of raw YAML values into the config dataclasses of `gflowout.config`.

`build_dataclass(cls, raw, where)` checks every key of a mapping against a dataclass's fields (an unknown
key -> `unknown_key_error`: the valid keys and the closest match) and every value against its annotation
(`convert_value`: unions, Literal, list, dict, nested dataclasses; int -> float where lossless; a YAML
string such as 1e-3 read as a float). Errors name the dotted key, the expected and the found type.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, Literal, Union

from gflowout.errors import ConfigError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return repr(tp).replace("typing.", "")
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"  # type: ignore[union-attr]  # an annotation: a dataclass here is a class
    return getattr(tp, "__name__", repr(tp))


def closest_match(key: str, valid: list[str]) -> str:
    """'; did you mean X?' for the closest valid key, or '' when none is close."""
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def unknown_key_error(key: str, where: str, valid: list[str]) -> ConfigError:
    """A ConfigError naming the unknown key, the valid keys and the closest match."""
    location = f"{where}.{key}" if where else key
    return ConfigError(f"unknown config key {location!r}; valid keys here: {sorted(valid)}{closest_match(key, valid)}")


def build_dataclass(cls: type, raw: Any, where: str) -> Any:
    """An instance of dataclass `cls` from mapping `raw` (None = all defaults); `where` is its dotted key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config key {where or '<top>'!r} must be a mapping ({cls.__name__}), found {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise unknown_key_error(str(key), where, valid)
        location = f"{where}.{key}" if where else key
        values[key] = convert_value(hints[key], value, location)
    return cls(**values)


def convert_value(tp: Any, value: Any, where: str) -> Any:
    """Check (and where lossless, convert: int -> float) `value` against annotation `tp`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, where)  # type: ignore[arg-type]  # an annotation: a dataclass here is a class
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:  # exact matches first (so 1 stays int in int | float)
            if option is not type(None) and _matches_exactly(option, value):
                return convert_value(option, value, where)
        for option in options:
            if option is type(None):
                continue
            try:
                return convert_value(option, value, where)
            except ConfigError:
                continue
        raise _type_error(where, tp, value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _type_error(where, tp, value)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _type_error(where, tp, value)
        (item_type,) = typing.get_args(tp)
        return [convert_value(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _type_error(where, tp, value)
        _, value_type = typing.get_args(tp)
        return {str(k): convert_value(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(where, tp, value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(where, tp, value)
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads 1e-3 (no dot) as a string; it is meant as a number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(where, tp, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(where, tp, value)
        return value
    raise ConfigError(f"config key {where!r}: unsupported annotation {tp!r} (a bug in gflowout.config)")


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _matches_exactly(tp: Any, value: Any) -> bool:
    if tp in (int, str) and not isinstance(value, bool):
        return isinstance(value, tp)
    if tp is float:
        return isinstance(value, float)
    if tp is bool:
        return isinstance(value, bool)
    return False


def _type_error(where: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(
        f"config key {where!r} expects {_type_name(tp)}, found {value!r} ({type(value).__name__}); "
        f"fix the value in the YAML file or the --set override"
    )
