"""Properties of the text format: the server's lines cannot be forged, and
invisible formatting characters are shown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.protocol.context import display_width
from chatd.protocol.render import Style, render, show_invisible

USER = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
ROOM = st.from_regex(r"[a-z0-9_-]{1,32}", fullmatch=True)
INVISIBLE = "\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e" \
            "\u2060\u2066\u2067\u2068\u2069\ufeff"
# Anything a user may write, weighted towards what imitates the server.
TEXT = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc"))) | st.sampled_from(
    ["* ", "! ", "@x ", "  ", "\n", "\u202e", "\u2066", "\u200b", "<", ">"])).map("".join)
STYLE = st.builds(Style, fmt=st.just("text"), color=st.just(False), timestamps=st.booleans())


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "message", "from": draw(USER), "text": draw(TEXT),
                              "id": 1, "ts": "2026-11-21T10:00:00.000Z"}
    if draw(st.booleans()):
        record["to"] = draw(USER)
    else:
        record["room"] = draw(ROOM)
        record["action"] = draw(st.booleans())
    if draw(st.booleans()):
        record["file"] = {"name": draw(TEXT), "preview": draw(TEXT)}
    return record


@given(messages(), STYLE, st.booleans())
def test_no_message_line_looks_like_the_server(record: dict[str, Any], style: Style,
                                               current: bool) -> None:
    first, *rest = render(record, style, current).decode().split("\r\n")[:-1]
    # The server's own lines start with "*", "!", "--" or a two-space indent;
    # a user's first line starts with its author, room or time, the others
    # with the four spaces of a message's continuation.
    assert first[0] in "<#[", first
    assert all(line.startswith("    ") for line in rest), rest
    assert not any(char in INVISIBLE for char in first + "".join(rest))


@given(USER, TEXT)
def test_actions_differ_from_notices(name: str, text: str) -> None:
    action = {"type": "message", "room": "general", "from": name, "text": text,
              "action": True, "id": 1, "ts": "2026-11-21T10:00:00.000Z"}
    line = render(action, Style(), True).decode()
    assert line.startswith(f"<{name}> * ")


@given(USER, TEXT)
def test_topics_show_invisible_characters(name: str, topic: str) -> None:
    event = {"type": "event", "event": "topic", "room": "general", "actor": name,
             "topic": topic}
    text = render(event, Style(), True).decode()
    said = "set the topic of #general: " if topic else "cleared the topic of #general"
    assert text.startswith(f"* {name} {said}")
    assert not any(char in INVISIBLE for char in text)


@given(TEXT)
def test_json_keeps_the_text_as_sent(text: str) -> None:
    record = {"type": "message", "room": "general", "from": "bob", "text": text,
              "id": 1, "ts": "2026-11-21T10:00:00.000Z"}
    assert json.loads(render(record, Style(fmt="json")))["text"] == text


def test_invisible_characters_are_written_as_code_points() -> None:
    assert show_invisible("abc\u202edef") == "abc<U+202E>def"
    assert show_invisible("\u200bx\u2066y\u2069") == "<U+200B>x<U+2066>y<U+2069>"
    assert show_invisible("caf\u00e9 \u00e0 \U0001f600") == "caf\u00e9 \u00e0 \U0001f600"
    assert all(show_invisible(char) == f"<U+{ord(char):04X}>" for char in INVISIBLE)


def test_a_terminated_room_is_told_by_its_notification_alone() -> None:
    event = {"type": "event", "event": "terminated", "room": "solo", "user": "bob"}
    assert render(event, Style()) == b""
    assert json.loads(render(event, Style(fmt="json")))["event"] == "terminated"


def test_end_to_end_records_show_no_text() -> None:
    base = {"type": "message", "to": "bob", "from": "alice", "id": 3, "e2e": True,
            "envelope": "QUJD", "ts": "2026-11-21T10:00:00.000Z"}
    assert "[end-to-end encrypted message]" in render(base, Style(), True).decode()
    key = render({**base, "room_key": "dev"}, Style(), True).decode()
    assert "[end-to-end key for #dev]" in key and "QUJD" not in key


def test_a_join_mode_reads_as_words() -> None:
    event = {"type": "event", "event": "mode", "room": "gov", "actor": "alice"}
    said = [render(event | {"mode": mode}, Style(), True).decode().strip()
            for mode in ("open", "private", "request")]
    assert said == ["* alice made #gov open", "* alice made #gov private",
                    "* alice made #gov request-only"]


@pytest.mark.parametrize(("text", "columns"), [
    ("plain", 5), ("日本語", 6), ("cafe\u0301", 4), ("a\u202eb", 10), ("😀", 2)])
def test_a_table_cell_is_measured_as_the_terminal_shows_it(text: str, columns: int) -> None:
    assert display_width(text) == columns
