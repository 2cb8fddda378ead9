"""Numbers in arguments, through real sockets (the real server on loopback, from
tests/helpers.py): ids and counts are ASCII digits of a value storage holds (64
bits), and a bad one gets its error code, never ``internal-error``."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import Clients, error_of


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
