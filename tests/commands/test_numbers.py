"""Numbers in arguments, through real sockets (the real server on loopback, from
tests/helpers.py): ids and counts are ASCII digits of a value storage holds (64
bits), and a bad one gets its error code, never ``internal-error``."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import ChatServer, Clients, error_of


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing was logged as a failure (an internal error logs its traceback)."""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(("line", "code"), [
    ("/webhook revoke 9223372036854775808 general", "bad-arguments"),
    ("/webhook revoke 99999999999999999999999999 general", "bad-arguments"),
    ("/webhook revoke 9223372036854775807 general", "no-such-webhook"),
    ("/audit 99999999999999999999 50", "no-such-room"),
    ("/audit 9223372036854775808 5", "no-such-room"),
    ("/audit 9223372036854775807 5", "no-such-room"),
])
async def test_an_id_beyond_storage_is_refused(clients: Clients, caplog: pytest.LogCaptureFixture,
                                               line: str, code: str) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    assert (await error_of(alice, line))["code"] == code
    _no_traceback(caplog)


async def test_an_ended_room_is_still_found_by_its_id(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create old")
    room = clients.server.services.rooms.find("old")
    assert room is not None
    room_id = room.id
    await alice.command("/part old")  # its last member: the room ends
    assert clients.server.services.rooms.find("old") is None
    reply = await alice.command(f"/audit {room_id} 5")
    assert reply["id"] == room_id and reply["terminated"] is True


@pytest.mark.parametrize("line", [
    "/ratelimit ٣", "/ratelimit 1_0", "/ratelimit ５", "/ratelimit 1e0", "/ratelimit +2",
    "/ratelimit 0x1", "/ratelimit nan", "/ratelimit 2 ٣ general", "/ratelimit 2 1_0 general",
    "/ratelimit 2 1e1 general", "/rooms ٢", "/rooms 1_0",
])
async def test_a_number_in_other_digits_or_notations_is_refused(
        clients: Clients, caplog: pytest.LogCaptureFixture, line: str) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    assert (await error_of(alice, line))["code"] == "bad-arguments"
    room = clients.server.services.rooms.find("general")
    assert room is not None and "message_rate" not in room.settings
    _no_traceback(caplog)


async def test_a_decimal_in_ascii_sets_the_rate(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    reply = await alice.command("/ratelimit 2.5 4")
    assert (reply["rate"], reply["burst"]) == (2.5, 4.0)
    reply = await alice.command("/ratelimit .5 3. general")
    assert (reply["rate"], reply["burst"]) == (0.5, 3.0)
    # A second word that is no number is the room, as "/ratelimit 2 general" is.
    assert (await error_of(alice, "/ratelimit 2 ٣"))["code"] == "no-such-room"


# Surplus words (PROTOCOL §2): each sub-command of /token, /bot and /webhook takes
# its own share of the command's parameters, and a word beyond it is refused, not
# ignored, whatever it would have filled.
@pytest.mark.parametrize("line", [
    "/token list extra", "/token list read", "/token list 1d", "/token list a read 1d",
    "/token revoke-resume extra", "/token revoke ci read", "/token revoke ci 1d",
    "/bot list 1 extra", "/bot list 1 read", "/bot tokens helper read", "/bot tokens helper 1d",
    "/bot delete helper read", "/bot delete helper 1d",
    "/webhook list general general", "/webhook list general dev",
])
async def test_a_sub_command_refuses_words_beyond_its_own(clients: Clients, line: str) -> None:
    alice = await clients.user("alice")
    await alice.command("/create dev")
    await alice.command("/create general")
    await alice.command("/token create ci")
    await alice.command("/bot create helper")
    error = await error_of(alice, line)
    assert error["code"] == "bad-arguments" and "too many arguments" in error["message"]
    # Nothing was done: the token and the bot are there still.
    assert [t["name"] for t in (await alice.command("/token list"))["tokens"]] == ["ci"]
    assert [b["user"] for b in (await alice.command("/bot list"))["bots"]] == ["helper"]


async def test_the_sub_commands_take_their_own_words(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/token create ci read 1d")
    await alice.command("/bot create helper read")
    assert (await alice.command("/bot token helper read 1d"))["name"] == "token2"
    assert len((await alice.command("/bot tokens helper"))["tokens"]) == 2
    assert (await alice.command("/webhook create deploy general"))["room"] == "general"
    assert len((await alice.command("/webhook list general"))["webhooks"]) == 1
    assert (await alice.command("/token revoke ci"))["name"] == "ci"
    assert (await alice.command("/token revoke-resume"))["revoked"] == 0
    assert (await alice.command("/bot delete helper"))["user"] == "helper"


async def test_webhook_list_of_a_named_room_needs_no_current_room(
        clients: Clients, server: ChatServer) -> None:
    bob = await clients.user("bob")
    await bob.command("/create general")
    alice = await clients.user("alice")  # a server admin in no room
    user = server.services.accounts.find("alice")
    assert user is not None
    await server.services.accounts.set_admin(user, True)
    assert (await alice.command("/webhook list general"))["room"] == "general"
    assert (await error_of(alice, "/webhook list"))["code"] == "no-room"
    assert (await error_of(alice, "/webhook create deploy"))["code"] == "no-room"
