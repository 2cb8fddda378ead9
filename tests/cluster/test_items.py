"""The log's items decoded once for a node's two readers (the bus and the persister):
whichever reads an item first decodes it, the other takes the same entries."""

from __future__ import annotations

import pytest

from chatd.cluster import codec
from chatd.cluster.items import DecodedItems
from chatd.domain.events import Message


def _item(*texts: str) -> dict[bytes, bytes]:
    """An item of compact posts, as the poster's script appends it."""
    posts = [codec.compact_post({"r": 4, "t": n, "p": [1, None, False],
                                 "e": Message(sender="ann", text=text, ts=1.0, room="hall")})
             for n, text in enumerate(texts)]
    return {b"c": codec.joined(posts), b"f": b"10", b"n": b"n1"}


def test_the_second_reader_takes_what_the_first_decoded() -> None:
    items = DecodedItems()
    first = items.entries(b"1-0", _item("a", "b"))
    assert [e["e"].text for e in first] == ["a", "b"] and len(items) == 1
    second = items.entries(b"1-0", _item("a", "b"))
    assert second is first and items.shared == 1
    assert len(items) == 0  # taken: a third read (a claim, a restart) decodes again
    third = items.entries(b"1-0", _item("a", "b"))
    assert third == first and third is not first


def test_items_only_one_reader_reads_are_forgotten_oldest_first() -> None:
    items = DecodedItems(limit=5)
    for n in range(10):
        items.entries(f"{n}-0".encode(), _item("x", "y"))
    assert len(items) == 2  # 4 entries of the newest two; the rest forgotten
    assert items.entries(b"0-0", _item("x", "y")) is not None and items.shared == 0
    items.entries(b"9-0", _item("x", "y"))
    assert items.shared == 1


def test_items_appended_long_before_the_newest_are_forgotten() -> None:
    items = DecodedItems()
    items.entries(b"1000-0", _item("x"))
    items.entries(b"2500-0", _item("x"))
    assert len(items) == 2
    items.entries(b"3001-0", _item("x"))  # 2 s after the first: it goes
    assert len(items) == 2
    items.entries(b"1000-0", _item("x"))  # read again by the other reader: decoded again
    assert items.shared == 0


def test_an_unreadable_item_is_kept_as_none_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    items = DecodedItems(limit=3)
    for n in range(5):
        assert items.entries(f"{n}-0".encode(), {b"b": b"[{not json"}) == []
    assert len(items) == 3  # each counts for one, so they are bounded too
    assert items.entries(b"4-0", {b"b": b"[{not json"}) == [] and items.shared == 1
    assert caplog.text.count("cannot be read, skipped") == 5  # said once per item


def test_a_new_epoch_clears_them() -> None:
    items = DecodedItems()
    items.entries(b"1-0", _item("a"))
    items.clear()
    assert len(items) == 0
    items.entries(b"1-0", _item("a"))
    assert items.shared == 0
