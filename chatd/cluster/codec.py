"""Events as JSON, to carry them between nodes.

The domain's events are frozen dataclasses (``chatd.domain.events``) whose
fields hold plain values and a few records of their own. A dataclass becomes an
object naming its class and listing its fields' values in their order; only
classes of the modules listed here can come back, so an entry in Redis can
name no other code to run.

**Cheap, because every node decodes every entry.** Each class's fields and
constructor are looked up once (``_LAYOUTS``, ``_CLASSES``); a dict whose keys
are plain strings (an entry of the log) stays a JSON object. The JSON itself is
orjson's (the ``cluster`` extra): on this project's machine it parses an entry
in a third of the standard library's time and writes one in a fourteenth.
Decoding then rebuilds the marked objects bottom-up, looking only into dicts
and lists (a Message, the most frequent, straight from its values); encoding
writes a Message without the generic walk. An entry carries its event as such
(not as JSON inside JSON), so it is parsed once.

The marked objects: ``{"$d": class, "a": [values]}`` a dataclass (``"f":
{name: value}`` is read too, as older nodes wrote it; trailing values at their
field's default are left out, and values beyond the fields a reader knows are
ignored, so a field added later, with a default and at the end, leaves nodes of
adjacent versions able to read each other), ``{"$e": class, "v":
value}`` an enum member, ``{"$t": [items]}`` a tuple, ``{"$m": [[key, value],
...]}`` a dict whose keys are not all plain strings (or one that starts with
``$``, which could be taken for a mark).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from chatd.domain.events import Message
from chatd.domain.names import is_number
from chatd.errors import ChatError, Code

_MODULES: Final = ("chatd.domain.events", "chatd.domain.modes", "chatd.domain.room",
                   "storage.records")
_ATOMS: Final = frozenset({str, int, float, bool, type(None)})

# A dataclass's name on the wire, the names of its fields given to its constructor,
# and their defaults (_NO_DEFAULT for a field without one).
Layout = tuple[str, tuple[str, ...], tuple[Any, ...]]
_LAYOUTS: dict[type, Layout] = {}
_NO_DEFAULT: Final = object()
# How many values the constructor of each dataclass named on the wire takes.
_ARITY: dict[str, int] = {}
# The classes named on the wire, once checked and imported.
_CLASSES: dict[str, Callable[..., Any]] = {}
_MESSAGE: Final = f"{Message.__module__}:{Message.__qualname__}"  # its name on the wire
log = logging.getLogger(__name__)
_CONTAINERS: Final = frozenset({dict, list})
# The types whose subclasses travel as their base (see _as_base).
_PLAIN_TYPES: Final[tuple[type, ...]] = (int, str, float, tuple, list, dict)


class Uncarried(ValueError):
    """A value no reader could read back: an integer beyond what JSON parsers take,
    or a float that is not a number beside a value orjson refuses."""


def encode(value: Any) -> bytes:
    plain = _plain(value)
    try:
        return orjson.dumps(plain)
    except orjson.JSONEncodeError:
        return _encode_odd(plain)


def joined(encoded: list[bytes]) -> bytes:
    """The JSON list of values each already encoded (an item of several entries)."""
    return b"[" + b",".join(encoded) + b"]"


def refusal(exc: Uncarried) -> ChatError:
    """What the sender of a message JSON cannot carry is told."""
    return ChatError(Code.BAD_ARGUMENTS, f"this message cannot be sent ({exc}).")


def _encode_odd(plain: Any) -> bytes:
    """What orjson refuses: a lone surrogate in a string (a JSON client's ``\\ud800``
    escape makes one) becomes ``?``, as the line protocol shows it; an integer beyond
    64 bits is written as it is (and read back as a float)."""
    try:
        text = json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise Uncarried(f"not carried between nodes: {exc}") from exc
    encoded = text.encode("utf-8", "replace")
    try:
        orjson.loads(encoded)  # what every reader will do with it (a huge integer fails)
    except orjson.JSONDecodeError as exc:
        raise Uncarried(f"not carried between nodes: {exc}") from exc
    return encoded


def decode(text: Any) -> Any:
    """The value of ``text``, JSON written by :func:`encode`. A value already
    decoded (an entry's event, decoded with its entry) is returned as it is."""
    if isinstance(text, bytes | str):
        return _revived(orjson.loads(text))
    return text


def readable_entries(stream_id: Any, fields: Mapping[bytes, bytes]) -> list[Any]:
    """:func:`entries_of`, or none (logged) for an item this version cannot read: a
    reader or a persister must not stop at one (a newer node's format, a damaged
    item); what it holds is skipped, and said."""
    try:
        return entries_of(fields)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        log.error("cluster: item %s of the log cannot be read, skipped: %s",
                  text(stream_id), exc or type(exc).__name__)
        return []


def text(value: Any) -> str:
    """A Redis reply's value as text: its bytes decoded, anything else as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def millis_of(stream_id: Any) -> int | None:
    """The milliseconds of an item's id in the log (``<ms>-<seq>``: Redis's clock
    when it was appended); None for an odd id."""
    millis = text(stream_id).partition("-")[0]
    return int(millis) if is_number(millis) else None


def entries_of(fields: Mapping[bytes, bytes]) -> list[Any]:
    """The entries of one item of the log: one (``j``), or several written together
    in one turn (``b``, a list), or room messages posted together, written
    compactly (``c``, see :func:`compact_post`). Posts numbered by the script that
    appended them (``f``, the first one's number) get their numbers here, in the
    list's order: the entry's ``s`` and its message's id."""
    posts = fields.get(b"c")
    if posts is not None:
        return _posts(posts, int(fields[b"f"]), text(fields[b"n"]))
    batch = fields.get(b"b")
    if batch is None:
        return [decode(fields[b"j"])]
    entries: list[Any] = decode(batch)
    first = fields.get(b"f")
    if first is not None:
        for number, entry in enumerate(entries, int(first)):
            entry["s"] = number
            # A frozen event, made here: its id is set once, before anyone sees it.
            object.__setattr__(entry["e"], "id", number)
    return entries


def compact_post(entry: dict[str, Any]) -> bytes:
    """The entry of a room message the poster's script numbers, as the log's format
    4 writes it: its values in one list, in a fixed order, no names and no marks.
    Every node decodes every such entry, and this form is parsed in about a third
    of the time of the same entry as an object (half the bytes, one container
    instead of five), and written in a sixth. What every entry of the kind holds
    alike (its kind, that the script numbers it, its node) is not repeated; the
    node is the item's (``n``)."""
    event: Message = entry["e"]
    sender_id, recipient_id, delivered = entry["p"]
    extra = event.extra
    values = [entry["r"], entry["t"], sender_id, recipient_id, delivered, event.sender,
              event.text, event.ts, event.room, event.to, event.msg_kind,
              _plain_dict(extra) if extra else None, event.history, event.offline]
    try:
        return orjson.dumps(values)
    except orjson.JSONEncodeError:
        return _encode_odd(values)


def _posts(blob: bytes, first: int, node: str) -> list[dict[str, Any]]:
    """The entries of an item of compact posts (:func:`compact_post`), numbered from
    ``first``: each as the poster made it, with its number and its message's id."""
    from_values = Message.from_values
    entries = []
    for number, (room_id, token, sender_id, recipient_id, delivered, sender, body, ts,
                 room, to, kind, extra, history, offline) in enumerate(orjson.loads(blob),
                                                                      first):
        event = from_values(sender, body, ts, number, room, to, kind,
                            _revived(extra) if extra else {}, history, offline)
        entries.append({"k": "room", "r": room_id, "e": event, "o": 1, "t": token, "n": node,
                        "p": [sender_id, recipient_id, delivered], "s": number})
    return entries


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is Message:
        return _plain_message(value)
    if cls is list:
        return [_plain(v) for v in value]
    if cls is tuple:
        return {"$t": [_plain(v) for v in value]}
    if cls is dict:
        return _plain_dict(value)
    if isinstance(value, enum.Enum):
        return {"$e": _name(cls), "v": value.value}
    base = _as_base(value)
    if base is not None:
        return _plain(base)
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _layout(cls)
    name, fields, defaults = layout
    values = [getattr(value, f) for f in fields]
    # Trailing fields at their defaults are left out: a field added in a later
    # version (with a default, at the end) is then not written until it is used,
    # and a node of the version before reads what it holds.
    while values and _is_default(values[-1], defaults[len(values) - 1]):
        values.pop()
    return {"$d": name, "a": [_plain(v) for v in values]}


def _as_base(value: Any) -> Any:
    """A value of a subclass of a plain type (an IRC guest's id, a named tuple) as
    a value of that type; None for any other."""
    plain: type
    for plain in _PLAIN_TYPES:
        if isinstance(value, plain):
            return plain(value)
    return None


def _plain_message(message: Message) -> Any:
    """A Message, the most frequent value by far, without the generic walk: its
    fields are atoms but ``extra`` (the same layout as the walk gives)."""
    extra = message.extra
    return {"$d": _MESSAGE, "a": [
        message.sender, message.text, message.ts, message.id, message.room, message.to,
        message.msg_kind, _plain_dict(extra) if extra else {}, message.history,
        message.offline]}


def _plain_dict(value: dict[Any, Any]) -> Any:
    # Written out, not as all() and a comprehension calling _plain on every value:
    # an entry of the log is a dict of a few atoms and its event, and every post
    # is encoded through here (the generic way took 3 of its 4 us).
    for key in value:
        if type(key) is not str or key[:1] == "$":
            return {"$m": [[_plain(k), _plain(v)] for k, v in value.items()]}
    plain = {}
    atoms = _ATOMS
    for key, item in value.items():
        plain[key] = item if type(item) in atoms else _plain(item)
    return plain


def _is_default(value: Any, default: Any) -> bool:
    """Whether ``value`` is the field's ``default`` itself (of its type: a 0 is not
    a False, which would come back as one)."""
    return value is default or (default is not _NO_DEFAULT and type(value) is type(default)
                                and value == default)


def _layout(cls: type) -> Layout:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not carried between nodes")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    layout = (_name(cls), tuple(f.name for f in fields),
              tuple(_NO_DEFAULT if f.default is dataclasses.MISSING else f.default
                    for f in fields))
    _LAYOUTS[cls] = layout
    return layout


def _revived(value: Any) -> Any:
    """What orjson parsed, with the marked objects rebuilt bottom-up (in place: the
    parsed values are this call's own)."""
    cls = type(value)
    if cls is list:
        for index, item in enumerate(value):
            if type(item) in _CONTAINERS:
                value[index] = _revived(item)
        return value
    if cls is not dict:
        return value
    if value.get("$d") == _MESSAGE and "a" in value:
        fields = value["a"]  # a Message's values are atoms but its extra (index 7)
        if fields[7]:
            fields[7] = _revived(fields[7])
        return Message.from_values(*fields)
    for key, item in value.items():
        if type(item) in _CONTAINERS:
            value[key] = _revived(item)
    return _typed(value)


def _typed(value: dict[str, Any]) -> Any:
    """A JSON object as :func:`encode` meant it (its members already typed)."""
    if "$d" in value:
        name = value["$d"]
        cls = _class(name)
        values = value.get("a")
        if values is None:
            return cls(**value["f"])
        # Values beyond the fields this version knows: a newer node's additions.
        known = _ARITY.get(name, len(values))
        return cls(*values[:known]) if len(values) > known else cls(*values)
    if "$t" in value:
        return tuple(value["$t"])
    if "$m" in value:
        return {k: v for k, v in value["$m"]}
    if "$e" in value:
        return _class(value["$e"])(value["v"])
    return value


def _name(cls: type) -> str:
    if cls.__module__ not in _MODULES:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not carried between nodes")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str) -> Callable[..., Any]:
    known = _CLASSES.get(name)
    if known is not None:
        return known
    module, _, qualname = name.partition(":")
    if module not in _MODULES or "." in qualname:
        raise ValueError(f"{name!r} is not an event class")
    found: Any = getattr(importlib.import_module(module), qualname)
    if dataclasses.is_dataclass(found):
        _ARITY[name] = sum(1 for f in dataclasses.fields(found) if f.init)
    # A class may offer a cheaper maker of its fields' values in order (Message does:
    # a frozen dataclass's __init__ sets each field through object.__setattr__).
    maker: Callable[..., Any] = getattr(found, "from_values", found)
    _CLASSES[name] = maker
    return maker

