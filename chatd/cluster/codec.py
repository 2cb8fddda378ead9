"""Events as JSON, to carry them between nodes.

The domain's events are frozen dataclasses (``chatd.domain.events``) whose
fields hold plain values and a few records of their own. A dataclass becomes an
object naming its class; only classes of the modules listed here can come
back, so an entry in Redis can name no other code to run.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from typing import Any, Final

_MODULES: Final = ("chatd.domain.events", "chatd.domain.modes", "chatd.domain.room",
                   "storage.records")


def encode(value: Any) -> str:
    return json.dumps(_plain(value), separators=(",", ":"))


def decode(text: str | bytes) -> Any:
    return _typed(json.loads(text))


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return {"$e": _name(type(value)), "v": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                  if f.init}
        return {"$d": _name(type(value)), "f": fields}
    if isinstance(value, tuple):
        return {"$t": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {"$m": [[_plain(k), _plain(v)] for k, v in value.items()]}
    return value


def _typed(value: Any) -> Any:
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$e" in value:
        return _class(value["$e"])(value["v"])
    if "$d" in value:
        return _class(value["$d"])(**{k: _typed(v) for k, v in value["f"].items()})
    if "$t" in value:
        return tuple(_typed(v) for v in value["$t"])
    return {_typed(k): _typed(v) for k, v in value["$m"]}


def _name(cls: type) -> str:
    if cls.__module__ not in _MODULES:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not carried between nodes")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str) -> Any:
    module, _, qualname = name.partition(":")
    if module not in _MODULES or "." in qualname:
        raise ValueError(f"{name!r} is not an event class")
    return getattr(importlib.import_module(module), qualname)
