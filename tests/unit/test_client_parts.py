"""The full-screen client's and the SDK's pure parts: state, completion, painting,
back-off, clocks and typed events."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from chatd.client.sdk import Backoff, ManualClock, SystemClock, events
from chatd.client.sdk.events import Invite, Join, Leave, Message, Notice, RoomEvent, ServerError
from chatd.client.tui.complete import ChatCompleter, Vocabulary, params_of
from chatd.client.tui.lines import Line, error, notice
from chatd.client.tui.paint import fragments, name_style, sgr_style, style_sheet, theme_of, wrap
from chatd.client.tui.state import SCROLLBACK, SERVER, ChatState, Conversation, dm_key


def message(room: str | None, sender: str, text: str, id: int | None = None,
            to: str | None = None) -> Line:
    return Line("message", text, room=room, sender=sender, to=to, message_id=id)


# -- state ---------------------------------------------------------------------------------


def test_lines_go_to_their_conversation_and_count_as_unread() -> None:
    state = ChatState("alice")
    state.switch("general")
    state.add(message("general", "bob", "hi"))
    state.add(message("dev", "bob", "build broke"))
    state.add(message("dev", "bob", "@Alice: look"))
    state.add(message("dev", "alice", "on it"))  # one's own line is never unread
    state.add(message(None, "bob", "psst", to="alice"))
    state.add(message(None, "alice", "yes?", to="bob"))
    state.add(notice("no room: where the person looks"))
    assert state.keys() == [SERVER, "dev", "general", "@bob"]
    dev, general, bob = (state.conversations[k] for k in ("dev", "general", "@bob"))
    assert (dev.unread, dev.mentions, general.unread) == (2, 1, 0)
    assert (bob.unread, bob.mentions, len(bob.lines)) == (1, 1, 2)
    assert [line.text for line in general.lines] == ["hi", "no room: where the person looks"]
    assert state.step(1).key == "@bob" and bob.unread == 0
    assert state.step(1).key == SERVER and state.step(-1).key == "@bob"
    state.close("@bob")
    assert state.current == "general"
    state.close(SERVER)  # the server conversation stays
    state.close("nowhere")
    assert state.conversations[SERVER].title == "server" and dev.title == "#dev"
    assert dm_key("bob") == "@bob" and not state.conversations[SERVER].is_room


def test_mentions_are_whole_words() -> None:
    state = ChatState("al")
    assert state.mentions_me("hey al, look") and state.mentions_me("@AL")
    assert not state.mentions_me("alice") and not state.mentions_me("cal") \
        and not state.mentions_me("al-bot")
    assert not ChatState().mentions_me("anything")


def test_typing_expires_and_a_message_ends_it() -> None:
    state = ChatState("alice")
    state.typing("general", "bob", now=100.0)
    state.typing("general", "carol", now=103.0)
    assert state.typers("general", 104.0) == ["bob", "carol"]
    assert state.typers("general", 107.0) == ["carol"]
    state.add(message("general", "carol", "done"))
    assert state.typers("general", 107.0) == []


def test_older_lines_are_prepended_once() -> None:
    conversation = Conversation("general")
    conversation.lines.extend([message("general", "b", "5", 5), message("general", "b", "6", 6)])
    older = [message("general", "b", str(n), n) for n in range(1, 7)]
    assert conversation.prepend([notice("start"), *older]) == 5
    assert [line.text for line in conversation.lines] == ["start", "1", "2", "3", "4", "5", "6"]
    assert conversation.oldest_id == 1
    full = Conversation("big")
    full.lines.extend(message("big", "b", "x", n) for n in range(1000, 1000 + SCROLLBACK))
    assert full.prepend([message("big", "b", "old", 1)]) == 1 and len(full.lines) == SCROLLBACK


# -- completion ------------------------------------------------------------------------------


def completions(vocabulary: Vocabulary, text: str) -> list[str]:
    found = ChatCompleter(vocabulary).get_completions(Document(text), CompleteEvent(True))
    return [c.text for c in found]


def test_completion_of_commands_arguments_nicks_and_rooms() -> None:
    words = Vocabulary()
    words.learn_commands([
        {"name": "kick", "usage": "/kick <user> [room] [reason]", "aliases": []},
        {"name": "leave", "usage": "/leave [room]", "aliases": ["part"]},
        {"name": "login", "usage": "/login <name> <password>  or  /login <name> --token <t>"},
        {"name": "", "usage": ""}])
    words.learn_nicks(["bob", "Bea", ""])
    words.learn_rooms(["general", "dev"])
    assert completions(words, "/k") == ["/kick "]
    assert completions(words, "/pa") == ["/part "]
    assert completions(words, "/kick b") == ["Bea ", "bob "]
    assert completions(words, "/kick bob ") == ["dev ", "general "]
    assert completions(words, "/leave g") == ["general "]
    assert completions(words, "/login b") == []  # a free word: nothing to offer
    assert completions(words, "b") == ["Bea: ", "bob: "]
    assert completions(words, "hi b") == ["Bea ", "bob "]
    assert completions(words, "see #d") == ["#dev "]
    assert completions(words, "ask @B") == ["@Bea ", "@bob "]
    assert completions(words, "/tru") == ["/trust "]  # the client's own commands too
    assert params_of("/emsg <room|@user> <text>") == ["room|@user", "text"]


# -- painting --------------------------------------------------------------------------------


def test_sgr_codes_become_styles() -> None:
    assert sgr_style("1;36") == "bold fg:ansicyan"
    assert sgr_style("2") == "fg:ansibrightblack"
    assert sgr_style("1;91") == "bold fg:ansibrightred"
    assert sgr_style("4") == ""
    # Odd parameters from the server are skipped, never a crash.
    assert sgr_style("1;²;36") == "bold fg:ansicyan" and sgr_style("9" * 5000) == ""
    assert theme_of("nosuch") is theme_of("default") and theme_of("dark", color=False) is None
    assert name_style("bob", theme_of("dark")) == name_style("BOB", theme_of("dark")) != ""
    assert name_style("bob", None) == ""
    dark = style_sheet(theme_of("dark"))
    assert ("error", "fg:ansibrightred bold") in [(r[0], " ".join(sorted(r[1].split())))
                                                   for r in dark.style_rules] or any(
        rule == ("error", "bold fg:ansibrightred") for rule in dark.style_rules)
    assert not any(rule[0] == "error" for rule in style_sheet(None).style_rules)


@given(st.text())
def test_any_sgr_parameters_give_a_style(code: str) -> None:
    assert isinstance(sgr_style(code), str)


def text_of(line: Line, current: str | None = None) -> str:
    return "".join(f[1] for f in fragments(line, theme_of("default"), current))


def test_lines_as_text() -> None:
    line = Line("message", "hi\nthere", room="dev", sender="bob", ts="2026-01-01T10:02:00Z")
    assert text_of(line, "general") == "[10:02] #dev <bob> hi\n    there"
    assert text_of(line, "dev") == "[10:02] <bob> hi\n    there"
    assert text_of(Line("message", "waves", room="dev", sender="bob", action=True), "dev") \
        == "* bob waves"
    assert text_of(Line("message", "x", sender="bob", to="alice")) == "<bob -> alice> x"
    sealed = Line("message", "s", room="v", sender="b", encrypted=True, verified=False)
    assert text_of(sealed, "v") == "\N{LOCK} ? <b> s"
    assert text_of(error("bad")) == "! bad" and text_of(notice("ok")) == "* ok"
    table = Line("table", "", rows=(("user", "role"), ("bob", "owner"), ("alexandra", "")))
    assert text_of(table) == "  user       role\n  bob        owner\n  alexandra"


@given(st.text(alphabet=st.sampled_from("abc\n漢"), max_size=60), st.integers(4, 20))
def test_wrapped_rows_fit_and_keep_every_character(text: str, width: int) -> None:
    rows = wrap([("", text)], width)
    for row in rows:
        assert sum(2 if c == "漢" else 1 for _, part in row for c in part) <= width
    joined = "\n".join("".join(part for _, part in row) for row in rows)
    assert joined.replace("\n  ", "").replace("\n", "") == text.replace("\n", "")


# -- back-off, clocks, events -------------------------------------------------------------------


def test_backoff_doubles_to_a_ceiling_and_resets() -> None:
    backoff = Backoff(first=1, ceiling=8, floor=0, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1
    assert Backoff(rng=lambda: 0.0).next_delay() == Backoff().floor


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    clock = ManualClock(start=0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("b", 20), ("a", 10))]
    await clock.sleep(0)
    assert clock.sleepers == 2
    clock.advance(15)
    await asyncio.sleep(0)
    assert woke == ["a"] and clock.time() == 15
    clock.advance(5)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b"]
    await SystemClock().sleep(0)
    assert SystemClock().time() > 1e9


def test_records_become_typed_events() -> None:
    parsed = events.parse({"type": "message", "room": "dev", "from": "bob", "text": "hi",
                           "id": 7, "history": True})
    assert isinstance(parsed, Message) and parsed.replayed and parsed.id == 7
    assert parsed.mentions("BOB") is False and Message(1, "a", "hey @bob").mentions("bob")
    assert events.parse({"type": "event", "event": "join", "room": "r", "user": "u"}) \
        == Join("r", "u")
    assert events.parse({"type": "event", "event": "leave", "room": "r", "user": "u",
                         "reason": "account deleted"}) == Leave("r", "u", None, "account deleted")
    assert events.parse({"type": "event", "event": "kick", "room": "r", "user": "u",
                         "actor": "a"}) == RoomEvent("kick", "r", "u", "a")
    invite = {"type": "notice", "text": "...", "notification": {
        "kind": "invitation", "room": "den", "actor": "a", "expires": 5}}
    assert events.parse(invite) == Invite("den", "a", 5)
    kicked = {"type": "notice", "text": "t", "notification": {"kind": "kicked"}}
    assert events.parse(kicked) == Notice("t", "kicked")
    assert events.parse({"type": "notice", "text": "bye"}) == Notice("bye")
    assert events.parse({"type": "error", "code": "rate-limited", "message": "m"}) \
        == ServerError("rate-limited", "m")
    assert events.parse({"type": "data"}) is None


@pytest.mark.parametrize("text", ["plain", "two\nlines"])
def test_message_lines_wrap_to_width(text: str) -> None:
    rows = wrap(fragments(Line("message", text, room="r", sender="s"), None, "r"), 8)
    assert all(sum(len(part) for _, part in row) <= 8 for row in rows)
