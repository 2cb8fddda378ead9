"""Blocks of plain room text: many consecutive messages of one room in one row.

Nearly every message is plain text in a room (no kind, extra fields or
recipient). Stored a row each, SQLite spends about a microsecond and a half of
its thread on every one of them (B-tree and index entries, a foreign key
check): a tenth of all the daemon does to deliver a message to a hundred
members. A row holding up to BLOCK_SIZE such messages costs about what one
message row costs.

A block is a row of ``message_blocks`` (BLOCK_COLUMNS): its last message's id
(the key), its room, its first message's id, how many messages it holds, and
the messages in two columns, both built by a few C calls:

* ``numbers`` (BLOB), little-endian: the ids (int64), the sender ids (int64),
  the times (float64, exact), then the length in code points (uint32) of each
  sender name and of each text -- each group ``count`` long;
* ``strings`` (TEXT): the sender names, then the texts, joined without a
  separator (any character may occur in them; the lengths cut them apart).

Encoding a block costs about 0.3 us a message; JSON, with its float
formatting, cost four times as much. Blocks are cut from one written batch,
so a room's blocks never overlap (message ids only grow). A block does not
reference its senders: a sender deleted later is mapped to 0 when it is read
(see ``storage.messages``).
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Iterable
from typing import cast

from storage.api import StorageError
from storage.records import MessageRecord

__all__ = ["BLOCK_COLUMNS", "BLOCK_SIZE", "BlockRow", "block_rows", "is_plain", "read_block"]

# Larger blocks save little more on writes (the row cost is already spread
# over 64 messages) and make /history decode more messages it will not show.
BLOCK_SIZE = 64

BLOCK_COLUMNS = "last_id, room_id, first_id, count, numbers, strings"
BlockRow = tuple[int, int, int, int, bytes, str]

# The layout of ``numbers`` for each block size, compiled once.
_LAYOUTS = tuple(struct.Struct(f"<{n}q{n}q{n}d{2 * n}I") for n in range(BLOCK_SIZE + 1))

_ids = operator.attrgetter("id")
_senders = operator.attrgetter("sender_id")
_names = operator.attrgetter("sender_name")
_texts = operator.attrgetter("text")
_times = operator.attrgetter("ts")


def is_plain(message: MessageRecord) -> bool:
    """True for room text by an account, with every other field at its default."""
    return (message.room_id is not None and message.recipient_id is None
            and message.kind == "text" and not message.extra and message.delivered
            and message.sender_id > 0)


def block_rows(plain: Iterable[MessageRecord]) -> list[BlockRow]:
    """The rows storing ``plain`` messages (see is_plain), in the order of BLOCK_COLUMNS.

    Each room's messages are put in id order and cut into blocks of at most
    BLOCK_SIZE.
    """
    by_room: dict[int | None, list[MessageRecord]] = {}
    for message in plain:
        room = by_room.get(message.room_id)
        if room is None:
            by_room[message.room_id] = [message]
        else:
            room.append(message)
    rows: list[BlockRow] = []
    for room_id, messages in by_room.items():
        messages.sort(key=_ids)
        for start in range(0, len(messages), BLOCK_SIZE):
            block = messages[start:start + BLOCK_SIZE]
            numbers, strings = _encode(block)
            rows.append((block[-1].id, cast(int, room_id), block[0].id, len(block),
                         numbers, strings))
    return rows


def _encode(block: list[MessageRecord]) -> tuple[bytes, str]:
    strings = [*map(_names, block), *map(_texts, block)]
    numbers = _LAYOUTS[len(block)].pack(*map(_ids, block), *map(_senders, block),
                                        *map(_times, block), *map(len, strings))
    return numbers, "".join(strings)


def read_block(room_id: int, count: int, numbers: bytes, strings: str) -> list[MessageRecord]:
    """The messages of a block of room ``room_id``, in id order, senders as stored.

    StorageError if the block cannot be what block_rows made (the table's
    checks keep such rows out; this guards against a file changed by hand).
    """
    if not isinstance(numbers, bytes) or not isinstance(strings, str):
        raise StorageError(f"a message block of room {room_id} is damaged: "
                           f"{type(numbers).__name__} numbers, {type(strings).__name__} strings")
    try:
        values = _LAYOUTS[count].unpack(numbers)
    except (IndexError, TypeError, struct.error) as exc:
        raise StorageError(f"a message block of room {room_id} is damaged: {exc}") from exc
    ids, senders, times = values[:count], values[count:2 * count], values[2 * count:3 * count]
    bounds = list(itertools.accumulate(values[3 * count:], initial=0))
    if bounds[-1] != len(strings):
        raise StorageError(f"a message block of room {room_id} is damaged: "
                           f"{len(strings)} characters, {bounds[-1]} expected")
    cut = [strings[start:end] for start, end in itertools.pairwise(bounds)]
    return [MessageRecord(message_id, sender_id, name, text, ts, room_id=room_id)
            for message_id, sender_id, name, text, ts
            in zip(ids, senders, cut[:count], cut[count:], times, strict=True)]
