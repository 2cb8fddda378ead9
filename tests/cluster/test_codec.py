"""The cluster's codec: events and log entries survive the trip through JSON, with
their types (tuples, enums, dicts of any keys); entries written by older nodes
(the event as JSON inside the entry, fields by name) still read; only the
domain's classes can be named."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.cluster import codec
from chatd.domain.events import Message, ModesChanged, Promoted
from chatd.domain.modes import ModeChange, RoomModes
from chatd.domain.room import Role


def test_a_message_entry_round_trips_with_its_event_parsed_once() -> None:
    event = Message(sender="ann", text="hi $d", ts=1.5, id=7, room="hall",
                    extra={"$d": "not a mark", "+draft/reply": "3", "n": [1, (2, 3)]})
    entry = {"k": "room", "r": 4, "e": event, "p": [1, None, False], "s": 7, "n": "n1"}
    text = codec.encode(entry)
    back = codec.decode(text)
    assert back == entry
    assert type(back["e"]) is Message
    with pytest.raises(dataclasses.FrozenInstanceError):  # made cheaply, still frozen
        back["e"].text = "changed"  # type: ignore[misc]
    assert codec.decode(codec.encode(codec.decode(text.decode()))) == entry  # text too
    assert back["e"] is codec.decode(back["e"])  # already decoded: given back as it is
    assert json.loads(text)["k"] == "room"  # an entry stays a plain JSON object


_INTS = st.integers(-2 ** 63, 2 ** 63 - 1)
_ATOMS = (st.none() | st.booleans() | _INTS
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
# Keys a mark could be taken for ("$d", "$t" ...) and keys that are not strings.
_KEYS = st.sampled_from(["$d", "$t", "$m", "$e", "a", "v", "f", "k", "e"]) | st.text(max_size=4)


def _values(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return (st.lists(children, max_size=4) | st.tuples(children, children)
            | st.dictionaries(_KEYS, children, max_size=4)
            | st.dictionaries(_INTS | st.tuples(_INTS), children, max_size=3))


_MESSAGES = st.builds(Message, sender=st.text(max_size=6), text=st.text(max_size=20),
                      ts=st.floats(0, 2e9), id=st.none() | st.integers(0, 2 ** 53),
                      room=st.none() | st.text(max_size=6),
                      extra=st.dictionaries(_KEYS, _ATOMS, max_size=3),
                      history=st.booleans())
_CARRIED = st.recursive(_ATOMS | _MESSAGES | st.sampled_from(Role), _values, max_leaves=12)


@given(_CARRIED)
def test_whatever_the_codec_writes_it_reads_back_with_its_types(value: object) -> None:
    """Marks (``$d`` ...) written by a client as keys stay keys, tuples stay tuples,
    dicts of other keys keep them, and a Message inside anything comes back a Message."""
    back = codec.decode(codec.encode(value))
    assert back == value
    assert _shape(back) == _shape(value)


def _shape(value: object) -> object:
    """The types of ``value`` all the way down (``==`` takes a tuple for no list)."""
    if isinstance(value, dict):
        return (type(value), sorted((repr(k), _shape(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value), [_shape(v) for v in value])
    return type(value)


def test_tuples_enums_and_dicts_with_other_keys_keep_their_types() -> None:
    event = ModesChanged(room="hall", actor="ann",
                         changes=(ModeChange(True, "k", "secret"), ModeChange(False, "m")),
                         modes=RoomModes(key="secret", moderated=False))
    value = {"event": event, "role": Role.ADMIN, "by": {(1, "a"): [Role.MEMBER], 2: "two"}}
    back = codec.decode(codec.encode(value))
    assert back == value
    assert type(back["event"].changes) is tuple
    assert back["role"] is Role.ADMIN
    promoted = Promoted(room="hall", user="bob", actor=None, role="admin")
    assert codec.decode(codec.encode(promoted)) == promoted


def test_an_older_nodes_entry_reads() -> None:
    """Fields by name, the event as a string of its own, the entry as a map."""
    event = {"$d": "chatd.domain.events:Message",
             "f": {"sender": "ann", "text": "old", "ts": 2.0, "id": 9, "room": "hall",
                   "to": None, "msg_kind": "text", "extra": {"$m": []}, "history": False,
                   "offline": False}}
    entry = {"$m": [["k", "room"], ["r", 4], ["e", json.dumps(event)], ["s", 9]]}
    back = codec.decode(json.dumps(entry))
    assert back["s"] == 9
    assert codec.decode(back["e"]) == Message(sender="ann", text="old", ts=2.0, id=9,
                                              room="hall")


def test_nodes_of_adjacent_versions_read_each_others_events() -> None:
    """A field added later (with a default, at the end) is written only when it is
    not at its default, and a reader ignores values beyond the fields it knows:
    a rolling upgrade neither writes what the old nodes cannot read nor stops at
    what the new ones write."""
    plain = Promoted(room="hall", user="bob", actor="ann", role="admin")
    written = json.loads(codec.encode(plain))
    assert written["a"] == ["hall", "bob", "ann", "admin"]  # as before `voiced`
    assert codec.decode(codec.encode(plain)) == plain
    voiced = Promoted(room="hall", user="bob", actor="ann", role="admin", voiced=True)
    assert json.loads(codec.encode(voiced))["a"][-1] is True
    assert codec.decode(codec.encode(voiced)) == voiced
    # A later version's event, one field longer: read as this version knows it.
    newer = {"$d": "chatd.domain.events:Promoted",
             "a": ["hall", "bob", "ann", "admin", True, "a field of a later version"]}
    assert codec.decode(json.dumps(newer)) == voiced
    # A value equal to the default but of another type is written (0 is no False).
    zero = Promoted(room="hall", user="bob", actor="ann", role="admin", voiced=0)  # type: ignore[arg-type]
    assert json.loads(codec.encode(zero))["a"] == ["hall", "bob", "ann", "admin", 0]


@pytest.mark.parametrize("name", ["os:system", "chatd.domain.events:Message.__init__",
                                  "builtins:eval"])
def test_only_the_domains_classes_can_be_named(name: str) -> None:
    with pytest.raises(ValueError, match="not an event class"):
        codec.decode(json.dumps({"$d": name, "a": []}))


def test_a_value_of_another_class_is_not_carried() -> None:
    with pytest.raises(TypeError, match="not carried"):
        codec.encode({"x": object()})


def test_subclasses_of_plain_containers_travel_as_their_base() -> None:
    value = {"counts": collections.OrderedDict(b=2, a=1), "names": collections.deque(["x"]),
             "pair": Pair(1, "one")}
    with pytest.raises(TypeError, match="not carried"):
        codec.encode(value)  # a deque is no list: not carried
    del value["names"]
    back = codec.decode(codec.encode(value))
    assert back == {"counts": {"b": 2, "a": 1}, "pair": (1, "one")}
    assert type(back["counts"]) is dict and type(back["pair"]) is tuple


class Number(int):
    """An id of a type of its own (as an IRC guest's is)."""


def test_subclasses_of_atoms_travel_as_their_base() -> None:
    back = codec.decode(codec.encode({"sender": Number(-3), "p": [Number(7), "x"]}))
    assert back == {"sender": -3, "p": [7, "x"]}
    assert type(back["sender"]) is int


class Pair(NamedTuple):
    number: int
    name: str


def test_a_message_takes_the_generic_layout_whichever_way_it_is_written() -> None:
    # Messages are written by a shortcut; what it writes is what the generic walk of
    # any dataclass writes, so every node reads either.
    message = Message(sender="ann", text="hi", ts=1.5, id=7, room="hall", to=None,
                      msg_kind="file", extra={"file": {"id": 3}, (1, 2): "x"}, history=True)
    fast = json.loads(codec.encode(message))
    name, fields, _ = codec._layout(Message)
    generic = {"$d": name, "a": [codec._plain(getattr(message, f)) for f in fields]}
    assert fast == json.loads(json.dumps(generic, separators=(",", ":")))
    assert codec.decode(codec.encode(message)) == message
    bare = Message(sender="bob", text="x", ts=2.0)
    assert codec.decode(codec.encode(bare)) == bare


def test_what_orjson_refuses_is_carried_as_the_line_protocol_shows_it() -> None:
    odd = Message(sender="ann", text="a\ud800b", ts=1.0, extra={"n": 2 ** 70})
    back = codec.decode(codec.encode(odd))
    assert back.text == "a?b" and back.extra == {"n": float(2 ** 70)}
    with pytest.raises(codec.Uncarried):
        codec.encode({"text": "\udfff", "x": math.nan})
    assert codec.decode(codec.joined([codec.encode(1), codec.encode("two")])) == [1, "two"]


def test_an_integer_no_reader_could_read_back_is_not_carried() -> None:
    with pytest.raises(codec.Uncarried):
        codec.encode({"text": "x", "n": 10 ** 400})


def test_an_item_this_version_cannot_read_is_skipped_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    for fields in ({b"b": b"not json"}, {b"x": b"{}"}, {b"b": b"[{}]", b"f": b"7"},
                   {b"c": b"[[1, 2]]", b"f": b"7", b"n": b"n1"}, {b"c": b"[]", b"f": b"7"},
                   {b"c": b'{"a": 1}', b"f": b"7", b"n": b"n1"}):
        assert codec.readable_entries(b"1-0", fields) == []
    assert caplog.text.count("cannot be read, skipped") == 6


def _post(event: Message, token: int) -> dict[str, object]:
    """A room message's entry as the poster's script is handed it (no id yet)."""
    return {"k": "room", "r": 4, "e": event, "o": 1, "t": token, "n": "n2",
            "p": [11, None, False]}


def _appended(*encoded: bytes, first: int) -> list[dict[str, object]]:
    """What a reader makes of an item of compact posts the script numbered from ``first``."""
    return codec.entries_of({b"c": codec.joined(list(encoded)), b"f": str(first).encode(),
                             b"n": b"n2"})


@given(_MESSAGES.map(lambda m: dataclasses.replace(m, id=None)), st.integers(1, 2 ** 53))
def test_a_compact_post_reads_back_as_the_entry_the_poster_made(
        event: Message, first: int) -> None:
    # Format 4: a post's values in order, numbered by the item as format 3 numbers it.
    entries = _appended(codec.compact_post(_post(event, 5)),
                        codec.compact_post(_post(event, 6)), first=first)
    expected = [_post(dataclasses.replace(event, id=number), token) | {"s": number}
                for number, token in ((first, 5), (first + 1, 6))]
    assert entries == expected
    assert all(type(entry["e"]) is Message for entry in entries)
    assert codec.decode(codec.encode(entries[0])) == entries[0]  # and travels on as before


def test_a_compact_post_keeps_its_extra_typed_and_its_odd_values_carried() -> None:
    event = Message(sender="ann", text="a\ud800b", ts=1.25, room="hall", msg_kind="file",
                    extra={"file": {"id": 3}, (1, 2): "x", "$d": "not a mark"}, history=True,
                    offline=True)
    [entry] = _appended(codec.compact_post(_post(event, 9)), first=40)
    back = entry["e"]
    assert isinstance(back, Message)
    assert back.text == "a?b"  # as the line protocol shows a lone surrogate
    assert back.extra == event.extra and back.id == 40 and back.history and back.offline
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.text = "changed"  # type: ignore[misc]
    with pytest.raises(codec.Uncarried):
        codec.compact_post(_post(Message(sender="x", text="\udfff", ts=math.nan), 1))


def test_a_compact_post_is_half_the_bytes_of_the_same_entry_as_an_object() -> None:
    event = Message(sender="user17", text="lorem ipsum dolor sit amet", ts=1765000000.123456,
                    room="room3")
    assert len(codec.compact_post(_post(event, 5))) * 1.5 < len(codec.encode(_post(event, 5)))
