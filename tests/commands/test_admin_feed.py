"""The server admins' live feed, figures and broadcasts: /adminfeed, /stats, /broadcast."""

from __future__ import annotations

from typing import Any

from chatd.protocol.adminfeed import audit_sentence
from tests.commands.conftest import Chat, Peer


async def admin(chat: Chat, name: str = "root") -> Peer:
    """A JSON connection of a server admin."""
    peer = await chat.user(name, json_format=True)
    services = chat.server.services
    await services.accounts.set_admin(services.accounts.require(name), True)
    return peer


def feed(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r[kind] for r in records if r["type"] == "notice" and kind in r]


async def test_a_follower_sees_governance_and_presence_as_it_happens(chat: Chat) -> None:
    root = await admin(chat)
    on = await root.final("/adminfeed on")
    assert on["following"] is True and on["changed"] is True
    assert (await root.final("/adminfeed on"))["changed"] is False
    alice = await chat.user("alice")
    bob = await chat.user("bob")
    await alice.say("/create den")
    await bob.say("/join den")
    await alice.say("/mute bob den 10m")
    await alice.say("/kick bob den too loud")
    records = root.records()
    presence = feed(records, "presence")
    assert {"user": "alice", "online": True} in presence
    assert {"user": "bob", "online": True} in presence
    actions = [(e["action"], e.get("target"), e.get("room")) for e in feed(records, "audit")]
    assert ("create", None, "den") in actions
    assert ("join", None, "den") in actions
    assert ("mute", "bob", "den") in actions
    assert ("kick", "bob", "den") in actions
    kick = next(r for r in records if r.get("audit", {}).get("action") == "kick")
    assert kick["text"] == "[audit] alice: kick bob in #den (too loud)"
    bob.close()
    assert {"user": "bob", "online": False} in feed(await root.ask("/ping"), "presence")


async def test_off_and_logout_stop_the_feed(chat: Chat) -> None:
    root = await admin(chat)
    await root.final("/adminfeed on")
    off = await root.final("/adminfeed off")
    assert off["following"] is False and off["changed"] is True
    # Off stops both halves of the feed, and says so, as on named both.
    assert off["message"] == "You no longer follow the audit log and presence."
    assert not chat.server.services.audit.listeners
    assert (await root.final("/adminfeed off"))["changed"] is False
    await chat.user("carol")
    assert feed(root.records(), "audit") == feed(root.records(), "presence") == []
    await root.final("/adminfeed on")
    await root.final("/logout")
    await chat.user("dave")
    assert chat.server.services.admin_feed.followers == 0
    assert not chat.server.services.audit.listeners  # nobody follows: nothing listens
    assert feed(root.records(), "audit") == []


async def test_a_demoted_admin_stops_receiving(chat: Chat) -> None:
    root = await admin(chat)
    await root.final("/adminfeed on")
    services = chat.server.services
    await services.accounts.set_admin(services.accounts.require("root"), False)
    await chat.user("erin")
    assert feed(root.records(), "audit") == []
    assert services.admin_feed.followers == 0


async def test_only_server_admins_use_the_admin_commands(chat: Chat) -> None:
    alice = await chat.user("alice", json_format=True)
    for line in ("/adminfeed on", "/stats", "/broadcast hello"):
        reply = await alice.final(line)
        assert reply["type"] == "error" and reply["code"] == "not-permitted", line


async def test_stats_gives_the_key_figures(chat: Chat) -> None:
    root = await admin(chat)
    alice = await chat.user("alice")
    await alice.say("/create den")
    await alice.say("hello")
    figures = await root.final("/stats")
    assert figures["type"] == "ok"
    assert figures["connections"] == 2 and figures["users_online"] == 2
    assert figures["rooms"] == 1 and figures["messages"] == 1
    assert [u["user"] for u in figures["online"]] == ["alice", "root"]
    for key in ("messages_per_second", "loop_lag", "storage_pending", "storage_flush_seconds",
                "uptime", "deliveries", "followers"):
        assert key in figures, key
    text = await chat.user("root")
    lines = await text.say("/stats")
    assert any(line.split()[:2] == ["connections", "3"] for line in lines), lines
    assert lines[-1] == "* 2 online: alice, root."


async def test_broadcast_reaches_every_connection_and_is_audited(chat: Chat) -> None:
    root = await admin(chat)
    alice = await chat.user("alice", json_format=True)
    stranger = await chat.anonymous()
    done = await root.final("/broadcast maintenance at noon")
    assert done["sessions"] == 3
    notice = next(r for r in alice.records() if r["type"] == "notice")
    assert notice == {"type": "notice", "text": "[server] maintenance at noon",
                      "broadcast": True}
    assert stranger.lines() == ["* [server] maintenance at noon"]
    entries = await chat.server.services.audit.entries(5)
    assert (entries[-1].action, entries[-1].actor, entries[-1].reason) == \
        ("broadcast", "root", "maintenance at noon")


def test_an_entry_without_actor_or_room_reads_as_the_servers() -> None:
    assert audit_sentence({"action": "terminate", "room": "den"}) == \
        "[audit] the server: terminate in #den"
    assert audit_sentence({"action": "login", "actor": "bob"}) == "[audit] bob: login"
