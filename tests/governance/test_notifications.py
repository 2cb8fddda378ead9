"""Governance notifications: pushed live to every connection, listed, counted at login."""

from __future__ import annotations

from chatd.client import ChatClient
from chatd.domain.notifications import SHOWN
from tests.governance import notes, room_with, settle, users
from tests.helpers import PASSWORD, ChatServer, Clients

LIVE_KINDS = ["request-declined", "request-accepted", "promoted", "demoted", "muted",
              "unmuted", "kicked", "banned", "unbanned", "invitation", "terminated"]


def kinds(received: list[dict[str, object]]) -> list[str]:
    return [str(n["kind"]) for n in (e["notification"] for e in received  # type: ignore[index]
                                     if e.get("type") == "notice" and "notification" in e)]


async def provoke_every_kind(alice: ChatClient, bob: ChatClient, carol: ChatClient) -> None:
    """alice's actions that notify bob once of each of LIVE_KINDS, in that order."""
    await room_with(alice, "club", carol, mode="request")
    await bob.command("/join club")
    await alice.command("/decline bob club")
    await bob.command("/join club")
    await alice.command("/accept bob club")
    await alice.command("/promote bob club")
    await alice.command("/demote bob club")
    await alice.command("/mute bob club 1m")
    await alice.command("/unmute bob club")
    await alice.command("/kick bob club")
    await alice.command("/ban bob club")
    await alice.command("/unban bob club")
    await room_with(alice, "den", mode="private")
    await alice.command("/invite bob den")
    await room_with(alice, "tiny", bob)
    await alice.command("/leave tiny")


async def test_every_kind_is_pushed_to_every_connection_listed_and_counted(
        clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    bob_again = await clients.user("bob")
    await provoke_every_kind(alice, bob, carol)
    for connection in (bob, bob_again):
        assert kinds(await settle(connection)) == LIVE_KINDS
    listed = (await bob.command("/notifications"))["notifications"]
    assert [n["kind"] for n in listed] == LIVE_KINDS
    assert all(n["text"] and n["id"] for n in listed)
    assert {n["kind"]: n["room"] for n in listed} == {
        **dict.fromkeys(LIVE_KINDS, "club"), "invitation": "den", "terminated": "tiny"}
    later = await clients.anonymous()
    login = await later.command(f"/login bob {PASSWORD}")
    assert login["notifications"] == len(LIVE_KINDS)
    cleared = await later.command("/notifications clear")
    assert cleared["cleared"] == len(LIVE_KINDS)
    assert (await bob.command("/notifications"))["notifications"] == []
    again = await clients.anonymous()
    assert (await again.command(f"/login bob {PASSWORD}"))["notifications"] == 0


async def test_notifications_wait_for_an_offline_user(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await bob.command("/logout")
    await room_with(alice, "den", mode="private")
    await alice.command("/invite bob den")
    await alice.command("/msg bob are you there?")
    login = await bob.command(f"/login bob {PASSWORD}")
    assert login["notifications"] == 2 and login["direct_messages"] == 1
    listed = (await bob.command("/notifications"))["notifications"]
    assert [n["kind"] for n in listed] == ["invitation", "direct-message"]
    assert listed[1]["sender"] == "alice"
    assert notes(await settle(bob), "invitation") == []  # not pushed again at login


async def test_a_flood_of_notifications_is_read_a_page_at_a_time(
        server: ChatServer, clients: Clients) -> None:
    """One reply never holds thousands: the newest page of them, and how many in all."""
    bob = await clients.user("bob")
    services = server.services
    size = services.config.rooms.page_size
    for n in range(SHOWN + 5):
        await services.notifier.notify(services.accounts.require("bob"), "test", f"note {n}")
    await settle(bob)
    listed = await bob.command("/notifications")
    pages = -(-(SHOWN + 5) // size)
    assert (listed["total"], listed["pages"]) == (SHOWN + 5, pages)
    assert [n["text"] for n in listed["notifications"]] == [
        f"note {n}" for n in range(SHOWN + 5 - size, SHOWN + 5)]
    assert listed["message"] == (f"{SHOWN + 5} notifications; /notifications clear clears "
                                 f"them; page 1 of {pages}; /notifications 2 for more.")
    oldest = await bob.command(f"/notifications {pages}")
    assert [n["text"] for n in oldest["notifications"]] == [
        f"note {n}" for n in range((SHOWN + 5) % size or size)]
    assert (await bob.command("/notifications clear"))["cleared"] == SHOWN + 5
    assert (await bob.command("/notifications"))["total"] == 0


async def test_a_direct_message_to_an_online_user_is_no_notification(
        clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await alice.command("/msg bob hi")
    assert kinds(await settle(bob)) == []
    assert (await bob.command("/notifications"))["notifications"] == []
