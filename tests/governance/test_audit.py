"""The audit log: what is written, and who may read it with /audit."""

from __future__ import annotations

from tests.governance import error_of, room_with, server_admin, users
from tests.helpers import PASSWORD, ChatServer, Clients

ROOM_ACTIONS = {"create", "join", "leave", "invite", "request", "accept", "decline", "kick",
                "ban", "unban", "mute", "unmute", "promote", "demote", "mode"}
ACCOUNT_ACTIONS = {"account-created", "account-deleted", "login", "failed-login"}


def triples(entries: list[dict[str, object]]) -> set[tuple[object, object, object]]:
    return {(e["action"], e["actor"], e["target"]) for e in entries}


async def test_the_audit_log_records_every_governance_action(server: ChatServer,
                                                             clients: Clients) -> None:
    root = await server_admin(server, clients)
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, carol)
    await alice.command("/promote bob club")
    await alice.command("/demote bob club")
    await alice.command("/mute carol club")
    await alice.command("/unmute carol club")
    await alice.command("/kick carol club rude")
    await alice.command("/ban carol club")
    await alice.command("/unban carol club")
    await alice.command("/mode request club")
    await carol.command("/join club")
    await alice.command("/decline carol club")
    await carol.command("/join club")
    await alice.command("/accept carol club")
    await alice.command("/mode private club")
    await carol.command("/leave club")
    await alice.command("/invite carol club")
    await room_with(bob, "tiny")
    await bob.command("/leave tiny")
    await root.command(f"/useradd dave {PASSWORD}")
    await root.command("/userdel dave")
    stranger = await clients.anonymous()
    await stranger.command("/login alice wrong-password", check=False)

    club = (await alice.command("/audit club 1000"))["entries"]
    assert {e["room"] for e in club} == {"club"}
    assert {e["action"] for e in club} == ROOM_ACTIONS
    assert {("create", "alice", None), ("join", "bob", None), ("promote", "alice", "bob"),
            ("demote", "alice", "bob"), ("mute", "alice", "carol"),
            ("unmute", "alice", "carol"), ("kick", "alice", "carol"),
            ("ban", "alice", "carol"), ("unban", "alice", "carol"), ("mode", "alice", None),
            ("request", "carol", None), ("decline", "alice", "carol"),
            ("accept", "alice", "carol"), ("invite", "alice", "carol")} <= triples(club)
    assert [e["reason"] for e in club if e["action"] == "kick"] == ["rude"]
    assert [e["reason"] for e in club if e["action"] == "mode"] == ["request", "private"]

    everything = (await root.command("/audit 1000"))["entries"]
    actions = {e["action"] for e in everything}
    assert ROOM_ACTIONS | ACCOUNT_ACTIONS | {"terminate"} <= actions
    assert {("account-created", "root", "dave"), ("account-deleted", "root", "dave"),
            ("failed-login", None, "alice"), ("login", "alice", None)} <= triples(everything)
    assert [e["room"] for e in everything if e["action"] == "terminate"] == ["tiny"]
    assert {"club", "tiny", None} <= {e["room"] for e in everything}
    # n limits the answer to the latest entries.
    latest = (await root.command("/audit 3"))["entries"]
    assert latest == everything[-3:]


async def test_a_timed_ban_says_for_how_long_as_a_timed_mute_does(clients: Clients) -> None:
    alice, bob, _ = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob)
    await alice.command("/ban bob club 2h")  # a member
    await alice.command("/ban carol club 30m")  # not one
    await alice.command("/mute alice club 10m", check=False)  # (refused: not audited)
    await alice.command("/ban dave club 1d spam", check=False)  # no such user
    entries = (await alice.command("/audit club 50"))["entries"]
    assert [(e["target"], e["reason"]) for e in entries if e["action"] == "ban"] == [
        ("bob", "for 2h"), ("carol", "for 30m")]


async def test_who_may_read_a_room_audit(server: ChatServer, clients: Clients) -> None:
    root = await server_admin(server, clients)
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "club", bob, carol, admins=(bob,))
    await room_with(dave, "other")
    # The owner and an admin read their room's entries (also as their current room).
    for reader in (alice, bob):
        entries = (await reader.command("/audit club"))["entries"]
        assert entries and {e["room"] for e in entries} == {"club"}
    await bob.command("/switch club")
    assert (await bob.command("/audit"))["room"] == "club"
    # A plain member, a stranger and another room's owner may not.
    assert (await error_of(carol, "/audit club"))["code"] == "not-permitted"
    assert (await error_of(carol, "/audit"))["code"] == "not-permitted"
    assert (await error_of(dave, "/audit club"))["code"] == "not-permitted"
    assert {e["room"] for e in (await dave.command("/audit other"))["entries"]} == {"other"}
    # Everything is for server admins only.
    assert {e["room"] for e in (await root.command("/audit club"))["entries"]} == {"club"}
    everything = (await root.command("/audit"))["entries"]
    assert {"club", "other", None} <= {e["room"] for e in everything}
    # A room admin who is demoted loses access at once.
    await alice.command("/demote bob club")
    assert (await error_of(bob, "/audit club"))["code"] == "not-permitted"


async def test_a_reused_room_name_does_not_inherit_the_old_audit(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "club", bob, carol)
    await alice.command("/ban carol club secret reasons")
    await alice.command("/leave club")  # bob is left alone: the room ends
    await carol.command("/create club")
    entries = (await carol.command("/audit club 1000"))["entries"]
    assert {e["actor"] for e in entries} == {"carol"}


async def test_the_audit_log_of_an_ended_room_is_read_by_its_former_admins(
        server: ChatServer, clients: Clients) -> None:
    root = await server_admin(server, clients)
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    room_id = await room_with(alice, "club", bob, carol, admins=(bob,))
    await alice.command("/kick carol club rude")
    await alice.command("/leave club")  # succession: bob owns it
    await bob.command("/leave club")  # nobody is left: the room ends
    for reader, ref in [(alice, "#club"), (bob, "club 1000"), (bob, f"{room_id} 50"),
                        (root, "club")]:
        reply = await reader.command(f"/audit {ref}")
        assert (reply["room"], reply["id"], reply["terminated"]) == ("club", room_id, True)
        actions = [e["action"] for e in reply["entries"]]
        assert actions[0] == "create" and actions[-1] == "terminate", actions
        assert ("owner", None, "bob") in triples(reply["entries"])
    # A plain member of the ended room, or a stranger, may not read it.
    for reader in (carol, dave):
        refused = await error_of(reader, "/audit club")
        assert refused["code"] == "not-permitted"
        assert "has ended" in refused["message"]
    # Once the name is taken again, the name means the live room; the id still
    # reaches the ended one.
    await dave.command("/create club")
    assert {e["actor"] for e in (await dave.command("/audit club"))["entries"]} == {"dave"}
    assert (await error_of(alice, "/audit club"))["code"] == "not-permitted"
    assert (await alice.command(f"/audit {room_id} 5"))["id"] == room_id
    assert (await error_of(alice, "/audit 999 5"))["code"] == "no-such-room"
    assert (await error_of(alice, "/audit nosuch"))["code"] == "no-such-room"
    assert (await error_of(alice, "/audit club 5 6"))["code"] == "bad-arguments"
    assert (await error_of(alice, "/audit club 0"))["code"] == "bad-arguments"
