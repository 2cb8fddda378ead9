"""Message and command rate limits, per-room rates, flood control and /typing.

The clock is a ManualClock shared with the server: with it frozen, a bucket
never refills, so the arithmetic of every refusal is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.client import ChatClient
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD
from tests.protection import (
    PRODUCTION_LIMITS,
    error_of,
    is_error,
    is_event,
    messages,
    room_with,
    serving,
    settle,
)


async def drain_burst(client: ChatClient, count: int, prefix: str = "m") -> list[dict[str, Any]]:
    """Send ``count`` plain lines that must all be delivered; return their echoes."""
    echoes = []
    for i in range(count):
        echo = await client.say(f"{prefix}{i}")
        assert echo["type"] == "message", echo
        echoes.append(echo)
    return echoes


async def refused(client: ChatClient, text: str) -> dict[str, Any]:
    """Send a plain line that must be refused; return the error."""
    reply = await client.say(text)
    assert reply["type"] == "error", reply
    return reply


def assert_retry(error: dict[str, Any], expected_ms: int) -> None:
    assert error["code"] == "rate-limited", error
    assert abs(error["retry_ms"] - expected_ms) <= 1, error


# ---------------------------------------------------------------------------
# The per-user message bucket
# ---------------------------------------------------------------------------


async def test_message_burst_then_exact_refill(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await drain_burst(alice, 10)
        error = await refused(alice, "eleventh")
        assert_retry(error, 200)
        # The refused line reached nobody, not even the history.
        got = messages(await settle(bob))
        assert [m["text"] for m in got] == [f"m{i}" for i in range(10)]
        # 0.2 s at 5/s buys exactly one more message, and no more.
        clock.advance(0.2)
        assert (await alice.say("one more"))["type"] == "message"
        assert_retry(await refused(alice, "too soon"), 200)
        clock.advance(0.1)
        assert_retry(await refused(alice, "still too soon"), 100)
        got = messages(await settle(bob))
        assert [m["text"] for m in got] == ["one more"]
        history = await bob.command("/history general 50")
        texts = [m["text"] for m in history["messages"]]
        assert texts == [*(f"m{i}" for i in range(10)), "one more"]


async def test_a_change_of_away_takes_a_message_token(db_path: Path,
                                                     clock: ManualClock) -> None:
    """Every IRC client with away-notify sharing a room with bob is shown each change:
    they come at the pace of messages, and one without a token is refused with its
    wait. Asking for what already holds shows nobody anything, and costs nothing."""
    async with serving(db_path, clock, limits__message_rate=5.0,
                       limits__message_burst=2.0) as (_, clients):
        bob = await clients.user("bob")
        assert (await bob.command("/away"))["message"] == "You were not away."
        assert (await bob.command("/away lunch"))["away"] == "lunch"
        assert (await bob.command("/away lunch"))["away"] == "lunch"
        assert (await bob.command("/away"))["away"] is None
        assert_retry(await error_of(bob, "/away tea"), 200)
        assert (await bob.command("/whois bob"))["away"] is None
        clock.advance(0.2)
        assert (await bob.command("/away tea"))["away"] == "tea"


async def test_say_me_and_msg_share_the_bucket_with_plain_lines(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await drain_burst(alice, 4)
        for i in range(3):
            await alice.command(f"/say general s{i}")
        for i in range(2):
            await alice.command(f"/me waves {i}")
        await alice.command("/msg bob direct")
        # The bucket (10) is empty, whatever the kind of message.
        for line in ("/say general no", "/me no", "/msg bob no"):
            error = await error_of(alice, line)
            assert_retry(error, 200)
        assert_retry(await refused(alice, "no"), 200)
        got = messages(await settle(bob))
        assert len(got) == 10
        assert all(m["text"] != "no" for m in got)
        # Another user's bucket is untouched.
        assert (await bob.say("bob is fine"))["type"] == "message"


async def test_two_connections_of_one_user_share_the_bucket(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        alice2 = await clients.user("alice")
        assert (await alice2.command("/whoami"))["connections"] == 2
        await drain_burst(alice, 6, "a")
        await drain_burst(alice2, 4, "b")
        assert_retry(await refused(alice2, "over"), 200)
        assert_retry(await refused(alice, "over"), 200)
        got = messages(await settle(bob))
        assert len(got) == 10 and all(m["text"] != "over" for m in got)


async def test_reconnecting_does_not_refill_the_bucket(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        await drain_burst(alice, 10)
        await alice.close()
        await clients.close()
        again = await clients.user("alice")
        await again.command("/switch general")
        assert_retry(await refused(again, "fresh start?"), 200)
        await again.command("/logout")
        await again.command(f"/login alice {PASSWORD}")
        assert (await error_of(again, "/say general and now?"))["code"] == "rate-limited"
        assert server.services.rooms.find("general") is not None


async def test_command_bucket_is_per_connection(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        first = await clients.anonymous()  # its /format json took one command token
        for _ in range(39):
            await first.command("/ping")
        error = await error_of(first, "/ping")
        assert error["command"] == "ping"
        assert_retry(error, 50)  # 20/s
        # Refused commands cost nothing: it stays exactly empty.
        assert_retry(await error_of(first, "/help"), 50)
        # Any command counts, even one that fails, and even before login.
        second = await clients.anonymous()
        for _ in range(39):
            assert (await error_of(second, "/whoami"))["code"] == "not-logged-in"
        assert (await error_of(second, "/ping"))["code"] == "rate-limited"
        # A third connection has its own full bucket.
        third = await clients.anonymous()
        await third.command("/ping")
        clock.advance(0.05)
        await first.command("/ping")
        assert (await error_of(first, "/ping"))["code"] == "rate-limited"


async def test_unknown_commands_use_the_command_bucket(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        client = await clients.anonymous()
        for _ in range(39):
            assert (await error_of(client, "/nosuchcommand"))["code"] == "unknown-command"
        assert (await error_of(client, "/nosuchcommand"))["code"] == "rate-limited"


# ---------------------------------------------------------------------------
# A room's own rate (/ratelimit)
# ---------------------------------------------------------------------------


async def test_room_rate_applies_per_member(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        reply = await alice.command("/ratelimit 1 2")
        assert (reply["room"], reply["rate"], reply["burst"]) == ("general", 1.0, 2.0)
        assert reply["message"] == "#general: 1 message a second, bursts of 2."
        assert (await alice.command("/ratelimit 1.5 2"))["message"] == \
            "#general: 1.5 messages a second, bursts of 2."
        await alice.command("/ratelimit 1 2")
        await drain_burst(alice, 2, "a")
        assert_retry(await refused(alice, "a-over"), 1000)
        assert [m["text"] for m in messages(await settle(bob))] == ["a0", "a1"]
        # Each member has a bucket of their own in the room.
        await drain_burst(bob, 2, "b")
        assert_retry(await refused(bob, "b-over"), 1000)
        # The server-wide bucket is not what counts here: alice still has
        # her whole burst of 10 in another room.
        await alice.command("/create other")
        for i in range(10):
            await alice.command(f"/say other o{i}")
        assert_retry(await error_of(alice, "/say other o-over"), 200)
        clock.advance(1.0)
        assert (await alice.command("/say general after-a-second"))["room"] == "general"
        assert_retry(await error_of(alice, "/say general again"), 1000)
        got = [m["text"] for m in messages(await settle(bob))]
        assert got == ["after-a-second"]


async def test_room_rate_off_restores_the_server_rate(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await alice.command("/ratelimit 20 40")
        await drain_burst(alice, 12)  # more than the server's burst of 10
        reply = await alice.command("/ratelimit off")
        assert reply["rate"] is None and reply["burst"] is None
        # Back on her own bucket: it is full (room messages did not use it).
        await drain_burst(alice, 10, "s")
        assert_retry(await refused(alice, "over"), 200)
        # Changing the rate again starts the room's buckets afresh.
        await alice.command("/ratelimit 1 3 general")
        await drain_burst(alice, 3, "r")
        assert_retry(await refused(alice, "over"), 1000)
        assert len(messages(await settle(bob))) == 25


async def test_room_rate_bounds_and_permissions(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        for line in ("/ratelimit 21", "/ratelimit 20 41", "/ratelimit 0", "/ratelimit 0.05",
                     "/ratelimit -1", "/ratelimit fast", "/ratelimit nan", "/ratelimit inf"):
            assert (await error_of(alice, line))["code"] == "bad-arguments", line
        # Each bound says what it takes: only the rate may be 'off'.
        assert (await error_of(alice, "/ratelimit 21"))["message"].split(" Usage: ")[0].endswith(
            "from 0.1 to 20, or 'off'.")
        assert (await error_of(alice, "/ratelimit 20 41"))["message"].split(" Usage: ")[0] \
            .endswith("burst is a number from 1 to 40.")
        # A word that is neither a number nor a room names no room.
        assert (await error_of(alice, "/ratelimit 5 lots"))["code"] == "no-such-room"
        assert (await error_of(alice, "/ratelimit 5 10 nosuchroom"))["code"] == "no-such-room"
        assert (await alice.command("/ratelimit 20 40"))["rate"] == 20.0
        assert (await alice.command("/ratelimit 0.1"))["burst"] == 1.0  # burst at least 1
        # Only the owner: neither a member nor an admin of the room may.
        assert (await error_of(bob, "/ratelimit 5"))["code"] == "not-permitted"
        assert (await error_of(bob, "/ratelimit off"))["code"] == "not-permitted"
        await alice.command("/promote bob")
        assert (await error_of(bob, "/ratelimit 5 10 general"))["code"] == "not-permitted"
        # A refused change changed nothing: the room still has 0.1/s, burst 1.
        room = clients.server.services.rooms.find("general")
        assert room is not None and room.settings["message_rate"] == 0.1


async def test_room_rate_names_another_room(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        await alice.command("/create other")  # now the current room
        reply = await alice.command("/ratelimit 2 4 general")
        assert reply["room"] == "general"
        general, other = server.services.rooms.find("general"), server.services.rooms.find("other")
        assert general is not None and other is not None
        assert general.settings["message_rate"] == 2.0 and "message_rate" not in other.settings


async def test_room_rate_off_names_another_room(db_path: Path, clock: ManualClock) -> None:
    # Usage: "/ratelimit off [room]": the room by its name.
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        await alice.command("/ratelimit 2 4")
        await alice.command("/create other")
        await alice.command("/ratelimit 3 6")  # in other, the current room
        reply = await alice.command("/ratelimit off general", check=False)
        general, other = server.services.rooms.find("general"), server.services.rooms.find("other")
        assert general is not None and other is not None
        assert reply.ok and reply["room"] == "general", reply.final
        assert "message_rate" not in general.settings
        assert other.settings["message_rate"] == 3.0


async def test_room_rate_off_names_another_room_by_its_id(db_path: Path,
                                                          clock: ManualClock) -> None:
    # "/ratelimit off 1" read the id as a burst for the rate it turns off, and
    # refused it: a room's own rate could be turned off by its name only.
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (server, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        await alice.command("/ratelimit 2 4")
        await alice.command("/create other")
        await alice.command("/ratelimit 3 6")  # in other, the current room
        general, other = server.services.rooms.find("general"), server.services.rooms.find("other")
        assert general is not None and other is not None
        reply = await alice.command(f"/ratelimit OFF {general.id}", check=False)
        assert reply.ok and reply["room"] == "general", reply.final
        assert (reply["rate"], reply["burst"]) == (None, None)
        assert "message_rate" not in general.settings
        assert other.settings["message_rate"] == 3.0
        # The rate's own forms still read a number after the rate as the burst,
        # and a room's id after both.
        assert (await alice.command(f"/ratelimit 2 5 {general.id}"))["room"] == "general"
        assert (general.settings["message_rate"], general.settings["message_burst"]) == (2.0, 5.0)
        assert (await alice.command("/ratelimit 1 3"))["room"] == "other"
        # A number that is no room's id after off is no room, not a burst.
        missing = await error_of(alice, "/ratelimit off 999")
        assert missing["code"] == "no-such-room"
        assert other.settings["message_rate"] == 1.0

# ---------------------------------------------------------------------------
# Flood control
# ---------------------------------------------------------------------------


async def flood(client: ChatClient, refusals: int) -> list[dict[str, Any]]:
    """Drain the burst (10), then send until ``refusals`` lines were refused."""
    await drain_burst(client, 10, "f")
    return [await refused(client, f"flood{i}") for i in range(refusals)]


async def test_flooding_mutes_the_sender_in_that_room(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (server, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await alice.command("/create other")
        await alice.command("/switch general")
        errors = await flood(alice, 20)
        assert all(e["code"] == "rate-limited" for e in errors), errors
        event = await bob.next_event(is_event("mute", room="general", user="alice"))
        assert event.get("type") == "event", event
        # Muted now: even with tokens back, the room refuses her with `muted`.
        clock.advance(2.0)
        muted = await refused(alice, "let me talk")
        assert muted["code"] == "muted"
        assert (await error_of(alice, "/say general still me"))["code"] == "muted"
        # Only in that room.
        assert (await alice.command("/say other elsewhere"))["room"] == "other"
        entries = await server.services.audit.entries(100)
        assert any("mute" in e.action and e.target == "alice" and e.room == "general"
                   for e in entries), entries
        # For flood_mute (60 s) from the flood.
        clock.advance(56.0)
        assert (await refused(alice, "at 58 s"))["code"] == "muted"
        clock.advance(3.0)
        assert (await alice.say("at 61 s"))["type"] == "message"
        got = [m["text"] for m in messages(await settle(bob))]
        assert got == ["at 61 s"]


async def test_refusals_spread_over_the_window_are_no_flood(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await flood(alice, 19)
        clock.advance(10.5)  # the 19 refusals leave the 10 s window; the bucket refills
        await flood(alice, 1)
        clock.advance(1.0)
        assert (await alice.say("not muted"))["type"] == "message"
        events = await settle(bob)
        assert not [e for e in events if e.get("event") == "mute"], events
        assert messages(events)[-1]["text"] == "not muted"


async def test_flooding_disconnects_when_configured(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS,
                       limits__flood_action="disconnect") as (server, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        assert server.connection_count == 2
        await drain_burst(alice, 10)
        for i in range(19):
            assert (await refused(alice, f"flood{i}"))["code"] == "rate-limited"
        alice.send_line("the last straw")
        last = await alice.next_event(lambda e: e.get("type") == "error")
        assert last["code"] == "rate-limited"
        assert (await alice.next_event())["type"] == "closed"
        await settle(bob)
        assert server.connection_count == 1
        alice_user = server.services.accounts.find("alice")
        assert alice_user is not None and not alice_user.online
        entries = await server.services.audit.entries(100)
        assert any(e.action == "flood-disconnect" and e.target == "alice" for e in entries)
        # The account is not locked out: a new connection may talk (once the bucket refills).
        clock.advance(2.0)
        again = await clients.user("alice")
        await again.command("/switch general")
        assert (await again.say("back"))["type"] == "message"
        got = [m["text"] for m in messages(await settle(bob))]
        assert got[-1] == "back"


# ---------------------------------------------------------------------------
# Typing indicators
# ---------------------------------------------------------------------------


async def test_typing_reaches_the_others_and_is_never_stored(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob, carol = await room_with(clients, "alice", "bob", "carol")
        alice2 = await clients.user("alice")
        reply = await alice.command("/typing")
        assert reply["room"] == "general"
        for other in (bob, carol):
            event = await other.next_event(is_event("typing", room="general", user="alice"))
            assert event["type"] == "event", event
        # Not echoed to the connection that typed; her other connection sees it.
        assert not [e for e in await settle(alice) if e.get("event") == "typing"]
        assert await alice2.next_event(is_event("typing", user="alice"))
        await alice.command("/typing general")
        history = await bob.command("/history general")
        assert history["messages"] == []
        # Typing is not a message: it does not use the message bucket.
        await drain_burst(alice, 10)


async def test_typing_is_rate_limited_per_connection(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await alice.command("/typing")
        await alice.command("/typing")
        error = await error_of(alice, "/typing")
        assert_retry(error, 1000)  # typing_rate 1/s, burst 2
        # Another connection of the same user has its own allowance.
        alice2 = await clients.user("alice")
        await alice2.command("/typing general")
        clock.advance(1.0)
        await alice.command("/typing")
        assert (await error_of(alice, "/typing"))["code"] == "rate-limited"
        typing = [e for e in await settle(bob) if e.get("event") == "typing"]
        assert len(typing) == 4


async def test_a_muted_or_unvoiced_member_is_not_seen_typing(
        db_path: Path, clock: ManualClock) -> None:
    """What holds a member's messages back holds their typing indicator too."""
    async with serving(db_path, clock, **PRODUCTION_LIMITS,
                       limits__typing_rate=100.0) as (_, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        await alice.command("/mute bob general 10m")
        muted = await error_of(bob, "/typing")
        assert muted["code"] == "muted" and muted["until"] is not None
        await alice.command("/unmute bob")
        await alice.command("/mode +m")
        assert (await error_of(bob, "/typing"))["code"] == "moderated"
        await alice.command("/voice bob")
        await bob.command("/typing")
        typing = [e for e in await settle(alice) if e.get("event") == "typing"]
        assert [e["user"] for e in typing] == ["bob"]  # once: after the voice only


async def test_typing_rate_is_configurable_and_needs_membership(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, **PRODUCTION_LIMITS,
                       limits__typing_rate=4.0) as (_, clients):
        alice, _ = await room_with(clients, "alice", "bob")
        await alice.command("/typing")
        await alice.command("/typing")
        assert_retry(await error_of(alice, "/typing"), 250)
        carol = await clients.user("carol")
        assert (await error_of(carol, "/typing general"))["code"] == "not-in-room"
        assert (await error_of(carol, "/typing"))["code"] == "no-room"
        assert (await error_of(carol, "/typing nosuch"))["code"] == "no-such-room"
        anon = await clients.anonymous()
        assert (await error_of(anon, "/typing general"))["code"] == "not-logged-in"
        assert is_error("not-logged-in")((await anon.command("/typing", check=False)).final)


async def test_a_flood_mute_after_labelled_commands_carries_no_label(
        db_path: Path, clock: ManualClock) -> None:
    """The mute runs in a task started during a labelled /say; it is no part
    of that command's reply, which has ended."""
    async with serving(db_path, clock, **PRODUCTION_LIMITS) as (_server, clients):
        alice, bob = await room_with(clients, "alice", "bob")
        for i in range(10):
            await alice.command(f"/say general burst {i}")
        for i in range(20):
            assert (await error_of(alice, f"/say general flood {i}"))["code"] == "rate-limited"
        own = await alice.next_event(is_event("mute", room="general", user="alice"))
        assert "label" not in own, own
        notice = await alice.next_event(lambda e: e.get("type") == "notice"
                                        and "muted" in e.get("text", ""))
        assert "label" not in notice, notice
        assert "label" not in await bob.next_event(is_event("mute", room="general"))
