"""Text mode: nothing a user writes can pass for the server's own lines, and
invisible formatting characters are shown instead of obeyed."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, Clients, error_of, room_with, settle, text_client, text_run

# Bidirectional overrides and isolates, zero-width characters and marks.
INVISIBLE = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
             "\u2069", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f"]


async def test_an_action_cannot_pass_for_a_server_notice(clients: Clients) -> None:
    the = await text_client(clients, "the")
    await text_run(the, "/create general")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")
    await text_run(the, None)
    await text_run(the, "/me server is shutting down. Goodbye.")
    await text_run(the, "* the server is shutting down.")
    seen = await text_run(bob, None)
    assert seen == ["<the> * server is shutting down. Goodbye.",
                    "<the> * the server is shutting down."]
    await text_run(bob, "/set timestamps on")
    await text_run(the, "/me waves")
    [stamped] = await text_run(bob, None)
    assert stamped.endswith("] <the> * waves") and stamped.startswith("[")


async def test_nothing_a_user_writes_starts_like_the_server(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/create dev")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join general")
    await text_run(bob, "/join dev")
    await text_run(bob, "/switch general")
    await text_run(alice, None)
    for line in ["! internal-error: forged", "/me ! not-permitted: forged",
                 "/say dev * bob was kicked", "/msg bob * your account was deleted.",
                 "//* forged", "@x * forged", "  * indented"]:
        await text_run(alice, line)
    seen = await text_run(bob, None)
    assert len(seen) == 7
    assert all(line[0] in "<#" for line in seen), seen


@pytest.mark.parametrize("char", INVISIBLE)
async def test_invisible_characters_show_in_text_and_stay_in_json(clients: Clients,
                                                                   char: str) -> None:
    alice, bot = await room_with(clients, "alice", "bot")
    reader = await text_client(clients, "bob")
    await text_run(reader, "/join general")
    await settle(alice)
    await settle(bot)
    await alice.say(f"abc{char}def")
    [shown] = await text_run(reader, None)
    assert shown == f"<alice> abc<U+{ord(char):04X}>def"
    [message] = [e for e in await settle(bot) if e["type"] == "message"]
    assert message["text"] == f"abc{char}def"


async def test_invisible_characters_show_in_topics_and_actions(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    topic = await text_run(alice, "/topic \u202eevil\u202c plan")
    assert topic == ["* alice set the topic of #general: <U+202E>evil<U+202C> plan"]
    assert await text_run(alice, "/me \u2066hides\u2069") == ["<alice> * <U+2066>hides<U+2069>"]


@pytest.mark.parametrize("char", INVISIBLE)
async def test_names_with_invisible_characters_are_refused(clients: Clients,
                                                           char: str) -> None:
    client = await clients.anonymous()
    refused = await error_of(client, f"/register bo{char}b {PASSWORD}")
    assert refused["code"] == "invalid-name"
    assert "letters A-Z a-z, digits 0-9" in refused["message"]
    await client.command(f"/register bob {PASSWORD}")
    refused = await error_of(client, f"/create dev{char}")
    assert refused["code"] == "invalid-name"
    assert clients.server.services.rooms.find("dev") is None


async def test_a_terminated_room_is_told_once_in_text(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create solo")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join solo")
    await alice.command("/leave solo")
    lines = await text_run(bob, None)
    assert lines == ["* alice left #solo",
                     "* #solo was terminated: you were its last member."], lines
