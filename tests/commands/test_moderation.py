"""Kick, ban and mute, over in-memory connections."""

from __future__ import annotations

from tests.backends import both
from tests.commands.conftest import Chat, Peer

# Sanctions persisted alike on both storage backends.
backend = both


async def _room_with_bob(chat: Chat) -> tuple[Peer, Peer]:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    await alice.say("/create dev")
    await bob.say("/join dev")
    alice.lines()
    return alice, bob


async def test_kick_removes_a_member(chat: Chat) -> None:
    alice, bob = await _room_with_bob(chat)
    said = await alice.say("/kick bob dev behave")
    assert said[0].startswith("* bob was kicked from #dev by alice")
    assert bob.lines()[0].startswith("* bob was kicked from #dev by alice")
    assert await bob.say("hello") == ["! no-room: you have no current room, and you are in "
                                      "no room: /join <room> or /create <room> first."]


async def test_ban_keeps_the_user_out_for_its_time(chat: Chat) -> None:
    alice, bob = await _room_with_bob(chat)
    assert await alice.say("/ban bob 1h") == [
        "* bob was banned from #dev by alice", "* bob is banned from #dev for 1h."]
    assert bob.lines() == ["* bob was banned from #dev by alice",
                           "* you are banned from #dev for 1h."]
    assert await bob.say("/join dev") == ["! banned: you are banned from #dev for 1h more."]
    chat.clock.advance(3601)
    assert (await bob.say("/join dev"))[-1].startswith("* You joined #dev")


async def test_mute_refuses_messages_with_until_and_retry_in_json(chat: Chat) -> None:
    alice, bob = await _room_with_bob(chat)
    await bob.say("/format json")
    said = await alice.say("/mute bob dev 10m")
    assert said == ["* bob was muted in #dev by alice", "* bob is muted in #dev for 10m."]
    bob.records()
    error = await bob.final("@m1 /say dev hello")
    assert error["code"] == "muted" and error["label"] == "m1"
    assert error["retry_ms"] == 600_000 and error["until"] == chat.clock.time() + 600


async def test_only_admins_moderate(chat: Chat) -> None:
    _, bob = await _room_with_bob(chat)
    assert await bob.say("/kick alice dev") == [
        "! not-permitted: only an admin or the owner of #dev can use /kick."]
