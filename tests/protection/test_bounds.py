"""What one user can make the daemon keep is bounded: rooms owned, webhooks of a
room, notifications piled on another user. Each bound is configured small here."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from chatd.client.api import ChatClient, LineClient, Reply
from chatd.domain.clock import ManualClock
from chatd.irc.guests import MAX_GUEST_BANS
from tests.backends import on_both
from tests.content import upload
from tests.helpers import PASSWORD
from tests.irc.helpers import IrcClient, login
from tests.protection import ProtectionClients, error_of, serving


async def test_a_user_owns_at_most_max_owned_rooms(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, rooms__max_owned=2) as (server, clients):
        alice = await clients.user("alice")
        await alice.command("/create one")
        await alice.command("/create two")
        refused = await error_of(alice, "/create three")
        assert (refused["code"], refused["quota"]) == ("quota-exceeded", 2)
        assert server.services.rooms.find("three") is None
        # Rooms of others she joins are not hers: only owning counts.
        bob = await clients.user("bob")
        await bob.command("/create elsewhere")
        await alice.command("/join elsewhere")
        await alice.command("/leave one")  # "one" ends with its last member
        assert (await alice.command("/create three")).ok
        # A server admin has no limit.
        await server.services.accounts.set_admin(server.services.accounts.require("bob"), True)
        for name in ("b1", "b2", "b3"):
            assert (await bob.command(f"/create {name}")).ok


async def test_an_irc_join_that_would_create_one_room_too_many_is_405(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, rooms__max_owned=1, irc__enabled=True,
                       irc__port=0) as (server, _):
        assert server.irc is not None
        await server.services.accounts.create("alice", PASSWORD)
        client = await login(server.irc.port, "alice")
        try:
            client.send("JOIN #one")
            await client.until("366")
            client.send("JOIN #two")
            refused = await client.expect("405")
            assert refused.params[1] == "#two"
            assert server.services.rooms.find("two") is None
        finally:
            await client.close()


async def test_a_room_has_at_most_max_webhooks_webhooks(db_path: Path,
                                                        clock: ManualClock) -> None:
    async with serving(db_path, clock, web__max_webhooks=2) as (_, clients):
        alice = await clients.user("alice")
        await alice.command("/create den")
        first = await alice.command("/webhook create one")
        await alice.command("/webhook create two")
        refused = await error_of(alice, "/webhook create three")
        assert (refused["code"], refused["quota"]) == ("quota-exceeded", 2)
        # Asked for at once on several connections, none passes the last place.
        await alice.command(f"/webhook revoke {first['id']}")
        others = [await clients.user("alice") for _ in range(3)]
        replies = await asyncio.gather(*(c.command(f"/webhook create r{n} den", check=False)
                                         for n, c in enumerate(others)))
        assert sorted(r.ok for r in replies) == [False, False, True]
        assert len((await alice.command("/webhook list"))["webhooks"]) == 2


@on_both
async def test_a_user_keeps_at_most_max_notifications(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    async with serving(db_path, clock, limits__max_notifications=3,
                       **storage_overrides) as (server, clients):
        bob = await clients.user("bob")
        await bob.command("/logout")
        alice = await clients.user("alice")
        for n in range(6):  # bob is offline: each is a notification
            await alice.command(f"/msg bob hello {n}")
        carol = await clients.user("carol")
        await carol.command("/create den private")
        await carol.command("/invite bob den")
        again = await clients.anonymous()
        login = await again.command(f"/login bob {PASSWORD}")
        assert login["notifications"] == 3
        kept = await again.notifications()
        assert [n["kind"] for n in kept] == ["direct-message", "direct-message", "invitation"]
        bob_id = server.services.accounts.require("bob").id
        assert await server.services.storage.count_notifications(bob_id) == 3


@on_both
async def test_the_listing_tells_how_many_notifications_were_dropped(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    async with serving(db_path, clock, limits__max_notifications=7,
                       **storage_overrides) as (_server, clients):
        bob = await clients.user("bob")
        await bob.command("/logout")
        alice = await clients.user("alice")
        for n in range(10):  # bob is offline: each is a notification
            await alice.command(f"/msg bob hello {n}")
        again = await clients.anonymous()
        await again.command(f"/login bob {PASSWORD}")
        listing = await again.command("/notifications")
        assert (listing["total"], listing["dropped"]) == (7, 3)
        assert "3 older notifications were dropped (the newest 7 are kept)." in listing["message"]
        # Told once: read, the count starts again from nothing.
        assert (await again.command("/notifications"))["dropped"] == 0
        await again.command("/logout")
        await alice.command("/msg bob one more")
        await again.command(f"/login bob {PASSWORD}")
        assert (await again.command("/notifications"))["dropped"] == 1
        # Cleared, nothing dropped before is told again.
        await again.command("/logout")
        await alice.command("/msg bob and another")
        await again.command(f"/login bob {PASSWORD}")
        await again.command("/notifications clear")
        assert (await again.command("/notifications"))["dropped"] == 0


@on_both
async def test_the_login_tells_how_many_notifications_were_dropped_without_taking_it(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    async with serving(db_path, clock, limits__max_notifications=7,
                       **storage_overrides) as (_server, clients):
        bob = await clients.user("bob")
        await bob.command("/logout")
        alice = await clients.user("alice")
        for n in range(10):  # bob is offline: each is a notification
            await alice.command(f"/msg bob hello {n}")
        again = await clients.anonymous()
        login = await again.command(f"/login bob {PASSWORD}")
        assert (login["notifications"], login["dropped"]) == (7, 3)
        assert ("7 unread notifications (3 older notifications were dropped): "
                "/notifications.") in login["message"]
        # Told at every log-in until the listing of the newest page tells it, once.
        await again.command("/logout")
        assert (await again.command(f"/login bob {PASSWORD}"))["dropped"] == 3
        assert (await again.command("/notifications"))["dropped"] == 3
        await again.command("/logout")
        told = await again.command(f"/login bob {PASSWORD}")
        assert told.get("dropped") is None and "dropped" not in told["message"]


async def test_logins_refused_by_the_limit_write_no_audit_entry(
        db_path: Path, clock: ManualClock) -> None:
    # Each refusal was a row written for ever, at the pace of an anonymous
    # connection's commands: the failures that emptied the bucket are enough.
    async with serving(db_path, clock, limits__auth_failures=2) as (server, clients):
        guesser = await clients.from_ip("127.0.0.2")
        for _ in range(2):
            assert (await error_of(guesser, "/login alice wrong"))["code"] == "auth-failed"
        for n in range(10):
            assert (await error_of(guesser, f"/login user{n} wrong"))["code"] == "rate-limited"
        entries = await server.services.audit.entries(100)
        assert [e.reason.split()[0] for e in entries if e.action == "failed-login"] == [
            "auth-failed", "auth-failed"]


async def test_one_address_registers_at_most_registrations_accounts_a_window(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__registrations=2,
                       limits__registration_window="1h") as (server, clients):
        for name in ("a1", "a2"):
            client = await clients.from_ip("127.0.0.2")
            assert (await client.command(f"/register {name} {PASSWORD}")).ok
        client = await clients.from_ip("127.0.0.2")
        # The address is refused before anything else is checked.
        assert (await error_of(client, f"/register a1 {PASSWORD}"))["code"] == "rate-limited"
        refused = await error_of(client, f"/register a3 {PASSWORD}")
        assert refused["code"] == "rate-limited" and refused["retry_ms"] > 0
        assert server.services.accounts.find("a3") is None
        # Another address is not concerned; this one gets a token back with time.
        other = await clients.from_ip("127.0.0.3")
        assert (await other.command(f"/register b1 {PASSWORD}")).ok
        clock.advance(1800)
        assert (await client.command(f"/register a3 {PASSWORD}")).ok


async def test_a_registration_that_makes_no_account_gives_its_token_back(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__registrations=1) as (_, clients):
        client = await clients.from_ip("127.0.0.2")
        await client.command(f"/register taken {PASSWORD}")
        clock.advance(3600)
        fresh = await clients.from_ip("127.0.0.2")
        for _ in range(3):
            assert (await error_of(fresh, f"/register taken {PASSWORD}"))["code"] == "name-taken"
        assert (await fresh.command(f"/register free {PASSWORD}")).ok


async def test_a_user_creates_at_most_room_creations_rooms_a_window(
        db_path: Path, clock: ManualClock) -> None:
    # Creating and leaving in a loop kept every ended room's row, at the pace of
    # commands, though the user never owned more than one room at a time.
    async with serving(db_path, clock, limits__room_creations=2,
                       limits__room_creation_window="1h") as (server, clients):
        alice, bob = await clients.user("alice"), await clients.user("bob")
        # A creation that makes no room costs nothing.
        await bob.command("/create taken")
        for _ in range(3):
            assert (await error_of(alice, "/create taken"))["code"] == "name-taken"
        for name in ("one", "two"):
            await alice.command(f"/create {name}")
            await alice.command(f"/leave {name}")
        refused = await error_of(alice, "/create three")
        assert refused["code"] == "rate-limited" and refused["retry_ms"] > 0
        assert server.services.rooms.find("three") is None
        clock.advance(1800)
        assert (await alice.command("/create three")).ok
        # A server admin has no limit.
        await server.services.accounts.set_admin(server.services.accounts.require("bob"), True)
        for name in ("b1", "b2", "b3"):
            assert (await bob.command(f"/create {name}")).ok


async def test_an_irc_join_creating_rooms_too_fast_is_405(db_path: Path,
                                                          clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__room_creations=1, irc__enabled=True,
                       irc__port=0) as (server, _):
        assert server.irc is not None
        await server.services.accounts.create("alice", PASSWORD)
        client = await login(server.irc.port, "alice")
        try:
            client.send("JOIN #one")
            await client.until("366")
            client.send("PART #one", "JOIN #two")
            refused = await client.expect("405")
            assert refused.params[1] == "#two"
            assert server.services.rooms.find("two") is None
        finally:
            await client.close()


@on_both
async def test_a_user_keeps_at_most_max_files_files_even_empty_ones(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    # A quota of bytes counts nothing for an empty file: each was a row kept,
    # and read whole by /files and /myfiles, at the pace of messages.
    async with serving(db_path, clock, files__max_files=2,
                       **storage_overrides) as (_, clients):
        alice = await clients.user("alice")
        await alice.command("/create den")
        for n in range(2):
            assert (await upload(alice, f"e{n}.txt", b"")).ok
        refused = (await upload(alice, "e2.txt", b"")).final
        assert (refused["code"], refused["quota"]) == ("quota-exceeded", 2)
        assert "used" not in refused
        mine = await alice.command("/myfiles")
        assert mine["total"] == 2
        await alice.command(f"/rmfile {mine['files'][0]['id']}")
        assert (await upload(alice, "e2.txt", b"")).ok


async def test_a_room_holds_at_most_max_guest_bans_bans_of_guests(
        db_path: Path, clock: ManualClock) -> None:
    # Each ban of a guest lives in memory until the room ends: a room's admin with
    # guests to ban, one after another under new nicks, grew the list without end.
    async with serving(db_path, clock, irc__enabled=True, irc__port=0,
                       accounts__guests=True) as (server, clients):
        assert server.irc is not None
        port = server.irc.port
        owner = await clients.user("owner")
        await owner.command("/create hall")

        async def ban_a_guest(nick: str) -> dict[str, Any]:
            guest = await IrcClient.connect(port)
            try:
                await guest.register(nick)
                reply = await owner.command(f"/ban {nick} hall", check=False)
                return reply.final
            finally:
                await guest.close()

        for n in range(MAX_GUEST_BANS):
            assert (await ban_a_guest(f"g{n}"))["type"] == "ok"
        refused = await ban_a_guest("one_more")
        assert (refused["code"], refused["quota"]) == ("quota-exceeded", MAX_GUEST_BANS)
        await owner.command("/unban g0 hall")
        assert (await ban_a_guest("one_more"))["type"] == "ok"


async def _back_after_five_direct_messages(
        clients: ProtectionClients) -> tuple[ChatClient, Reply, list[int]]:
    """bob, away, is sent five direct messages by alice, then logs in again: his
    connection, his login's reply, and the messages' ids."""
    bob = await clients.user("bob")
    await bob.command("/logout")
    alice = await clients.user("alice")
    ids = [(await alice.command(f"/msg bob hello {n}"))["id"] for n in range(5)]
    again = await clients.anonymous()
    return again, await again.command(f"/login bob {PASSWORD}"), ids


@on_both
async def test_a_login_replays_at_most_offline_replay_max_direct_messages(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    # Others may send an absent user any number of direct messages: a log-in read
    # them all into memory and sent them all in one reply.
    async with serving(db_path, clock, rooms__offline_replay_max=2,
                       **storage_overrides) as (_, clients):
        again, login, _ = await _back_after_five_direct_messages(clients)
        shown = [r["text"] for r in login.lines if r.get("type") == "message"]
        assert shown == ["hello 3", "hello 4"]
        assert (login["direct_messages"], login["direct_messages_skipped"]) == (2, 3)
        assert "3 older direct messages" in login["message"]
        # All were marked delivered: the next log-in replays none.
        await again.command("/logout")
        later = await again.command(f"/login bob {PASSWORD}")
        assert later["direct_messages"] == 0 and "direct_messages_skipped" not in later.final


@on_both
async def test_connections_logging_in_together_are_each_told_of_the_messages_left_out(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Both log-ins read the same newest ones, but the older ones were counted by the
    # marking that followed, which only the first to mark found undelivered: the
    # other connection was shown the newest two and told nothing of the rest.
    async with serving(db_path, clock, rooms__offline_replay_max=2,
                       **storage_overrides) as (server, clients):
        bob = await clients.user("bob")
        await bob.command("/logout")
        alice = await clients.user("alice")
        ids = [(await alice.command(f"/msg bob hello {n}"))["id"] for n in range(5)]
        storage = server.services.storage
        reading = storage.direct_backlog
        read, both_read = 0, asyncio.Event()

        async def read_together(user_id: int, limit: int | None = None) -> Any:
            # Each log-in's read returns once both have read: neither has marked yet.
            nonlocal read
            backlog = await reading(user_id, limit)
            read += 1
            if read == 2:
                both_read.set()
            await both_read.wait()
            return backlog

        monkeypatch.setattr(storage, "direct_backlog", read_together)
        first, second = await clients.anonymous(), await clients.anonymous()
        logins = await asyncio.gather(first.command(f"/login bob {PASSWORD}"),
                                      second.command(f"/login bob {PASSWORD}"))
        for login in logins:
            shown = [r["text"] for r in login.lines if r.get("type") == "message"]
            assert shown == ["hello 3", "hello 4"]
            assert (login["direct_messages_skipped"],
                    login["direct_messages_skipped_after"]) == (3, ids[0] - 1), login.final
            assert login["message"].count("3 older direct messages") == 1
        # Told in the log-in's reply alone, once: nothing more comes of it.
        for connection in (first, second):
            await connection.command("/ping", check=False)
            assert not [e for e in connection.pending_events()
                        if "older direct message" in str(e.get("text", ""))]


@on_both
async def test_audit_entries_older_than_audit_retention_are_deleted(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    # Every log-in and join writes an entry, at the pace of commands: kept for good
    # unless the operator sets a retention.
    async with serving(db_path, clock, housekeeping__audit_retention="1d",
                       **storage_overrides) as (server, clients):
        root = await clients.user("root")
        await server.services.accounts.set_admin(server.services.accounts.require("root"), True)
        await root.command("/create old")
        clock.advance(2 * 86400)
        await root.command("/create new")
        done = await server.housekeeping.run_once()
        assert done["audit_deleted"] >= 2  # the account, its log-in, the room "old"
        entries = (await root.command("/audit 1000"))["entries"]
        assert [e["room"] for e in entries if e["action"] == "create"] == ["new"]
        # The newest entry always stays: ids are never given again.
        clock.advance(10 * 86400)
        await server.housekeeping.run_once()
        assert len((await root.command("/audit 1000"))["entries"]) >= 1


async def test_a_user_blocks_at_most_max_blocks_users(db_path: Path,
                                                      clock: ManualClock) -> None:
    async with serving(db_path, clock, accounts__max_blocks=2) as (server, clients):
        for name in ("b1", "b2", "b3"):
            await server.services.accounts.create(name, PASSWORD)
        alice = await clients.user("alice")
        await alice.command("/block b1")
        await alice.command("/block b2")
        assert (await alice.command("/block b2"))["already"] is True
        refused = await error_of(alice, "/block b3")
        assert (refused["code"], refused["quota"]) == ("quota-exceeded", 2)
        assert len((await alice.command("/blocks"))["blocks"]) == 2
        await alice.command("/unblock b1")
        assert (await alice.command("/block b3"))["already"] is False


async def test_irc_guests_creating_rooms_count_against_their_address(
        db_path: Path, clock: ManualClock) -> None:
    # A guest is new at each connection: counted by its own id, each reconnection
    # had a fresh allowance.
    async with serving(db_path, clock, irc__enabled=True, irc__port=0, accounts__guests=True,
                       rooms__creation="everyone", limits__room_creations=1) as (server, _):
        assert server.irc is not None
        first = await IrcClient.connect(server.irc.port)
        await first.register("first")
        first.send("JOIN #one")
        await first.until("366")
        await first.close()
        second = await IrcClient.connect(server.irc.port)
        try:
            await second.register("second")
            second.send("JOIN #two")
            assert (await second.expect("405")).params[1] == "#two"
        finally:
            await second.close()


@on_both
async def test_what_an_ended_room_held_goes_at_the_next_housekeeping(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    # Its join requests, bans, mutes, invitations and webhooks were kept for good,
    # read at each start (sanctions) or each /requests of any room (requests).
    async with serving(db_path, clock, **storage_overrides) as (server, clients):
        alice, bob = await clients.user("alice"), await clients.user("bob")
        for name in ("carol", "dave"):
            await server.services.accounts.create(name, PASSWORD)
        await alice.command("/create den request")
        assert (await bob.command("/join den"))["requested"] is True
        await alice.command("/ban carol den")
        await alice.command("/invite dave den")
        await alice.command("/webhook create hook den")
        await alice.command("/create other request")
        await bob.command("/join other")
        await alice.command("/leave den")  # its last member: it ends
        done = await server.housekeeping.run_once()
        assert done["ended_rooms_cleared"] == 4
        storage = server.services.storage
        assert [r.room_id for r in await storage.load_join_requests()] == [
            server.services.rooms.require("other").id]
        assert await storage.load_sanctions("ban") == []
        assert len((await alice.command("/requests other"))["requests"]) == 1


async def test_an_irc_log_in_says_how_many_direct_messages_it_did_not_replay(
        db_path: Path, clock: ManualClock) -> None:
    # The older ones are marked delivered like the replayed ones: a log-in over
    # IRC that said nothing of them lost them for the user, who never knew.
    async with serving(db_path, clock, rooms__offline_replay_max=2, irc__enabled=True,
                       irc__port=0) as (server, clients):
        assert server.irc is not None
        await server.services.accounts.create("bob", PASSWORD)
        alice = await clients.user("alice")
        for n in range(5):
            await alice.command(f"/msg bob hello {n}")
        bob = await login(server.irc.port, "bob")
        try:
            bob.send("PING :done")
            lines = await bob.until("PONG")
            shown = [m.params[-1] for m in lines if m.command == "PRIVMSG"]
            assert shown == ["hello 3", "hello 4"]
            notices = [m.params[-1] for m in lines if m.command == "NOTICE"]
            assert any("3 older direct messages" in text and "CHATHISTORY" in text
                       for text in notices), notices
        finally:
            await bob.close()


@on_both
async def test_a_log_in_that_left_direct_messages_out_names_where_resume_starts(
        db_path: Path, clock: ManualClock, storage_overrides: dict[str, Any]) -> None:
    # "/resume <last-id> replays them" named no id: the user had none to give it
    # (the replayed ones are newer than those left out).
    async with serving(db_path, clock, rooms__offline_replay_max=2,
                       **storage_overrides) as (_, clients):
        again, login, ids = await _back_after_five_direct_messages(clients)
        start = login["direct_messages_skipped_after"]
        assert start == ids[0] - 1
        assert f"/resume {start} replays them" in login["message"]
        resumed = await again.command(f"/resume {start}")
        replayed = [r["text"] for r in resumed.lines if r.get("type") == "message"]
        assert replayed[:3] == ["hello 0", "hello 1", "hello 2"]


def _ipv6_loopback() -> bool:
    """Whether this machine can listen on IPv6's loopback (some containers cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_connections_count_with_their_network_and_leave_it_on_close(
        db_path: Path, clock: ManualClock) -> None:
    # ::1 counts as ::/64 (limits.ipv6_prefix); its connections are told apart from
    # that key by their own address, and each gives its place back when it closes.
    async with serving(db_path, clock, listen__host="::1",
                       limits__max_connections_per_ip=2) as (server, _):
        held = [await LineClient.connect("::1", server.port) for _ in range(2)]
        for client in held:
            assert (await client.line()).startswith("* chatd")
        third = await LineClient.connect("::1", server.port)
        assert "too-many-connections" in await third.line()
        await third.close()
        for client in held:
            await client.close()
        for _ in range(200):  # until the server has seen the closes
            again = await LineClient.connect("::1", server.port)
            first = await again.line()
            await again.close()
            if first.startswith("* chatd"):
                break
            await asyncio.sleep(0.01)
        assert first.startswith("* chatd")
