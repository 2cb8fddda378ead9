"""Rooms: create, join, leave, topic and history, over in-memory connections."""

from __future__ import annotations

from tests.backends import both
from tests.commands.conftest import Chat

# Rooms persisted alike on both storage backends.
backend = both


async def test_create_join_and_leave(chat: Chat) -> None:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    assert await alice.say("/create dev") == [
        "* You created #dev (open). Plain lines now go to #dev."]
    bob_sees = await bob.say("/join dev")
    assert bob_sees[-1].startswith("* You joined #dev")
    assert alice.lines() == ["* bob joined #dev"]
    await bob.say("hello")
    assert alice.lines() == ["<bob> hello"]
    assert (await bob.say("/leave"))[-1].startswith("* You left #dev")
    assert alice.lines() == ["* bob left #dev"]


async def test_topic_needs_a_role_and_reaches_the_members(chat: Chat) -> None:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    await alice.say("/create dev")
    await bob.say("/join dev")
    alice.lines()
    assert await bob.say("/topic Hello all") == [
        "! not-permitted: only an admin or the owner of #dev can set the topic."]
    assert await alice.say("/topic Hello all") == ["* alice set the topic of #dev: Hello all"]
    assert bob.lines() == ["* alice set the topic of #dev: Hello all"]
    assert await bob.say("/topic") == ["* #dev: Hello all"]


async def test_history_shows_the_last_messages(chat: Chat) -> None:
    alice = await chat.user("alice")
    await alice.say("/create dev")
    for text in ("one", "two", "three"):
        await alice.say(text)
    assert await alice.say("/history dev 2") == [
        "-- last 2 messages of #dev --", "<alice> two", "<alice> three",
        "* 2 messages; /history dev 200 shows up to 200."]


async def test_history_in_json_carries_the_messages_and_the_label(chat: Chat) -> None:
    alice = await chat.user("alice", json_format=True)
    await alice.ask("/create dev")
    await alice.ask("hello")
    reply = await alice.final("@h1 /history")
    assert reply["label"] == "h1" and reply["command"] == "history"
    assert [(m["from"], m["text"]) for m in reply["messages"]] == [("alice", "hello")]
