"""/keys, /emsg and /e2e through a real server, with hand-made envelopes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.crypto import envelope, group
from chatd.crypto.envelope import Identity, seal
from chatd.crypto.group import Handout
from chatd.crypto.ratchet import OutboundChain
from chatd.domain.clock import ManualClock
from tests.crypto import PQ
from tests.helpers import PASSWORD, ChatServer, Clients, settle, start_server

IDS = {name: Identity.generate() for name in ("alice", "bob", "carol", "mallory")}


def pub(name: str) -> str:
    return envelope.b64(IDS[name].x25519_public)


def sealed(sender: str, context: str, *to: str, text: bytes = b"hi") -> str:
    return envelope.b64(seal(text, sender, context, IDS[sender],
                             [IDS[n].public(n) for n in (to or (sender,))]))


async def error(client: ChatClient, line: str) -> dict[str, Any]:
    reply = await client.command(line, check=False)
    assert reply.final["type"] == "error", reply.final
    return reply.final


async def room(clients: Clients, *names: str, name: str = "dev") -> list[ChatClient]:
    joined = []
    for i, who in enumerate(names):
        client = await clients.user(who)
        await client.command(f"/create {name}" if i == 0 else f"/join {name}")
        joined.append(client)
    for client in joined:
        await client.command("/ping")
        client.pending_events()
    return joined


# -- /keys --------------------------------------------------------------------------------


async def test_publish_get_and_room_keys(clients: Clients) -> None:
    alice, bob, _ = await room(clients, "alice", "bob", "carol")
    published = await alice.command(f"/keys publish {pub('alice')}")
    fingerprint = envelope.fingerprint(IDS["alice"].x25519_public)
    assert published["keys"] == [{"user": "alice", "key": pub("alice"),
                                  "fingerprint": fingerprint}]
    got = await bob.command("/keys get ALICE")
    assert got["keys"] == published["keys"]
    await bob.command(f"/keys publish {pub('bob')}")
    listed = await alice.command("/keys room")
    assert [k["user"] for k in listed["keys"]] == ["alice", "bob"]
    assert listed["missing"] == ["carol"] and listed["e2e"] is False
    assert (await error(bob, "/keys get carol"))["code"] == "no-key"
    assert (await error(bob, "/keys get nobody"))["code"] == "no-such-user"


async def test_republishing_replaces_the_key(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command(f"/keys publish {pub('alice')}")
    await alice.command(f"/keys publish {pub('bob')}")
    assert (await alice.command("/keys get alice"))["keys"][0]["key"] == pub("bob")


@pytest.mark.parametrize("bad", ["notbase64!", base64.b64encode(b"short").decode(),
                                 base64.b64encode(bytes(33)).decode(), "QUJD\u00e9"])
async def test_publish_validates_keys(clients: Clients, bad: str) -> None:
    alice = await clients.user("alice")
    assert (await error(alice, f"/keys publish {bad}"))["code"] == "bad-arguments"
    bad_pq = f"/keys publish {pub('alice')} {base64.b64encode(bytes(100)).decode()}"
    assert (await error(alice, bad_pq))["code"] == "bad-arguments"
    assert (await error(alice, "/keys publish"))["code"] == "bad-arguments"
    assert (await error(alice, "/keys get alice bob"))["code"] == "bad-arguments"


@PQ
async def test_publish_with_a_post_quantum_key(clients: Clients) -> None:
    alice = await clients.user("alice")
    ident = Identity.generate(pq=True)
    pq = envelope.b64(ident.mlkem_public or b"")
    reply = await alice.command(f"/keys publish {envelope.b64(ident.x25519_public)} {pq}")
    entry = reply["keys"][0]
    assert entry["pq_key"] == pq
    assert entry["fingerprint"] == envelope.fingerprint(ident.x25519_public, ident.mlkem_public)


async def test_room_keys_need_membership(clients: Clients) -> None:
    await room(clients, "alice")
    outsider = await clients.user("mallory")
    assert (await error(outsider, "/keys room dev"))["code"] == "not-in-room"
    assert (await error(outsider, "/keys room"))["code"] == "no-room"
    assert (await error(outsider, "/keys room nosuch"))["code"] == "no-such-room"


# -- /emsg ---------------------------------------------------------------------------------


async def test_emsg_relays_the_envelope_untouched(clients: Clients) -> None:
    alice, bob = await room(clients, "alice", "bob")
    env = sealed("alice", "#dev", "alice", "bob")
    reply = await alice.command(f"/emsg #dev {env}")
    echo = next(line for line in reply.lines if line["type"] == "message")
    got = await bob.next_event(lambda e: e.get("type") == "message")
    for record in (echo, got):
        assert record["e2e"] is True and record["envelope"] == env and "text" not in record
        assert record["room"] == "dev" and record["from"] == "alice"
        assert record["id"] == reply["id"]
    opened = envelope.open_envelope(base64.b64decode(got["envelope"]), "bob", IDS["bob"])
    assert opened.plaintext == b"hi"
    history = await bob.command("/history")
    assert history["messages"][-1]["envelope"] == env
    assert "text" not in history["messages"][-1]


async def test_emsg_to_a_user_online_and_offline(clients: Clients, server: ChatServer) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    env = sealed("alice", "@bob", "alice", "bob")
    reply = await alice.command(f"/emsg @bob {env}")
    assert reply["to"] == "bob" and reply["online"] is True
    got = await bob.next_event(lambda e: e.get("type") == "message")
    assert got["to"] == "bob" and got["envelope"] == env and "text" not in got
    await bob.close()
    env2 = sealed("alice", "@bob", "bob", text=b"later")
    assert (await alice.command(f"/emsg @Bob {env2}"))["online"] is False
    again = await clients.anonymous()
    login = await again.command("/login bob secret-pw")
    [replayed] = [e for e in login.lines if e.get("type") == "message"]
    assert replayed["envelope"] == env2 and replayed["offline"] is True


async def test_emsg_validation(clients: Clients) -> None:
    alice, _ = await room(clients, "alice", "bob")
    assert (await error(alice, "/emsg #dev not*base64"))["code"] == "bad-arguments"
    junk = base64.b64encode(b"\x01" * 80).decode()
    assert "not a valid envelope" in (await error(alice, f"/emsg #dev {junk}"))["message"]
    as_bob = sealed("bob", "#dev", "alice")
    assert "you are alice" in (await error(alice, f"/emsg #dev {as_bob}"))["message"]
    elsewhere = sealed("alice", "#other", "alice")
    assert "addressed to" in (await error(alice, f"/emsg #dev {elsewhere}"))["message"]
    assert (await error(alice, f"/emsg #nosuch {elsewhere}"))["code"] == "no-such-room"
    assert (await error(alice, f"/emsg @nobody {elsewhere}"))["code"] == "no-such-user"
    assert (await error(alice, "/emsg #dev"))["code"] == "bad-arguments"


async def test_a_refused_envelope_quotes_its_names_without_c1_controls(
        clients: Clients) -> None:
    # The names in an envelope are decoded bytes, not a typed line the codec cleaned:
    # the error quoting them writes out C1 controls (CSI starts an escape sequence
    # on a terminal, NEL breaks the line) as it does C0 ones.
    await room(clients, "alice")
    raw = await clients.raw()
    await raw.line()
    raw.send(f"/login alice {PASSWORD}")
    await raw.line()
    hostile = sealed("alice", "#dev\x9b31m\x85x", "alice")
    raw.send(f"/emsg #dev {hostile}")
    line = (await raw.until(lambda text: text.startswith("! ")))[-1]
    assert line.startswith("! bad-arguments: the envelope is addressed to"), line
    assert "\x9b" not in line and "\x85" not in line, line
    assert '"#dev\\u009b31m\\u0085x"' in line, line


async def test_emsg_needs_membership(clients: Clients) -> None:
    await room(clients, "alice")
    mallory = await clients.user("mallory")
    env = sealed("mallory", "#dev")
    assert (await error(mallory, f"/emsg #dev {env}"))["code"] == "not-in-room"


async def test_envelope_size_limit(db_path: Path) -> None:
    server = await start_server(db_path, clock=ManualClock(), crypto__max_envelope=200)
    clients = Clients(server)
    try:
        alice, _ = await room(clients, "alice", "bob")
        big = sealed("alice", "#dev", "alice", "bob", text=b"x" * 100)
        assert "at most 200" in (await error(alice, f"/emsg #dev {big}"))["message"]
        assert (await alice.command(f"/emsg #dev {sealed('alice', '#dev')}")).ok
    finally:
        await clients.close()
        await server.stop()


# -- /e2e -----------------------------------------------------------------------------------


async def test_e2e_room_refuses_plain_messages(clients: Clients) -> None:
    alice, bob = await room(clients, "alice", "bob")
    reply = await alice.command("/e2e on")
    assert reply["e2e"] is True and reply["changed"] is True
    event = await bob.next_event(lambda e: e.get("type") == "event")
    assert (event["event"], event["room"], event["actor"], event["e2e"]) == \
        ("e2e", "dev", "alice", True)
    assert (await error(bob, "/say dev plain words"))["code"] == "e2e-required"
    assert (await error(bob, "/me waves"))["code"] == "e2e-required"
    bob.send_line("a plain line")
    refused = await bob.next_event(lambda e: e.get("type") == "error")
    assert refused["code"] == "e2e-required"
    assert (await bob.command(f"/emsg #dev {sealed('bob', '#dev', 'alice', 'bob')}")).ok
    assert (await alice.command("/keys room"))["e2e"] is True
    assert (await alice.command("/e2e on"))["changed"] is False
    opened = "#dev is now open to plain messages again."
    assert (await alice.command("/e2e off"))["message"] == opened
    assert (await alice.command("/e2e off"))["message"] == "#dev is already open to plain messages."
    assert (await bob.command("/say dev plain again")).ok


async def test_a_leave_in_an_e2e_room_says_no_plain_reason(clients: Clients) -> None:
    # A leave's reason is said to the room as a message is (IRC's PART message too):
    # an end-to-end room, which refuses plain words, is shown the leave without it.
    alice, bob = await room(clients, "alice", "bob")
    await alice.command("/e2e on")
    await bob.command("/leave dev the plain words of a secret")
    [left] = [e for e in await settle(alice) if e.get("event") == "leave"]
    assert left["user"] == "bob" and not left.get("reason")
    await alice.command("/e2e off")
    await bob.command("/join dev")
    await bob.command("/leave dev said in the open")
    [left] = [e for e in await settle(alice) if e.get("event") == "leave"]
    assert left["reason"] == "said in the open"


async def test_e2e_needs_an_admin_or_the_owner(clients: Clients) -> None:
    alice, bob = await room(clients, "alice", "bob")
    assert (await error(bob, "/e2e on"))["code"] == "not-permitted"
    await alice.command("/promote bob")
    assert (await bob.command("/e2e on dev")).ok
    assert (await error(bob, "/e2e maybe"))["code"] == "bad-arguments"


async def test_e2e_flag_survives_a_restart(db_path: Path) -> None:
    server = await start_server(db_path, clock=ManualClock())
    clients = Clients(server)
    alice, _ = await room(clients, "alice", "bob")
    await alice.command("/e2e on")
    await clients.close()
    await server.stop()
    server = await start_server(db_path, clock=ManualClock())
    clients = Clients(server)
    try:
        bob = await clients.user("bob")
        assert (await error(bob, "/say dev hello"))["code"] == "e2e-required"
    finally:
        await clients.close()
        await server.stop()


async def test_help_lists_the_crypto_commands(clients: Clients) -> None:
    alice = await clients.user("alice")
    for name in ("encrypt", "decrypt", "keys", "emsg", "ekey", "e2e"):
        reply = await alice.command(f"/help {name}")
        assert reply["usage"].startswith(f"/{name} ") and reply["help"]


# -- sender keys: version 2 envelopes and /ekey ----------------------------------------------


def handout(sender: str, room_name: str, to: str) -> str:
    chain = OutboundChain.create(0.0)
    return envelope.b64(seal(Handout.of(chain).pack(), sender, f"#{room_name}", IDS[sender],
                             [IDS[to].public(to)]))


def group_sealed(sender: str, context: str, text: bytes = b"hi") -> str:
    return envelope.b64(group.seal(text, sender, context, OutboundChain.create(0.0)))


async def test_version_two_envelopes_go_to_rooms_only(clients: Clients) -> None:
    alice, bob = await room(clients, "alice", "bob")
    env = group_sealed("alice", "#dev")
    reply = await alice.command(f"/emsg #dev {env}")
    got = await bob.next_event(lambda e: e.get("type") == "message")
    assert got["envelope"] == env and got["id"] == reply["id"] and "text" not in got
    as_bob = group_sealed("bob", "#dev")
    assert "you are alice" in (await error(alice, f"/emsg #dev {as_bob}"))["message"]
    elsewhere = group_sealed("alice", "#other")
    assert "addressed to" in (await error(alice, f"/emsg #dev {elsewhere}"))["message"]
    direct = group_sealed("alice", "@bob")
    assert "goes to a room" in (await error(alice, f"/emsg @bob {direct}"))["message"]
    truncated = envelope.b64(base64.b64decode(env)[:-70])
    assert "truncated" in (await error(alice, f"/emsg #dev {truncated}"))["message"]


async def test_ekey_hands_a_key_to_one_member(clients: Clients) -> None:
    alice, bob, carol = await room(clients, "alice", "bob", "carol")
    env = handout("alice", "dev", "bob")
    reply = await alice.command(f"/ekey dev bob {env}")
    assert (reply["room"], reply["to"], reply["online"]) == ("dev", "bob", True)
    echo = next(line for line in reply.lines if line["type"] == "message")
    got = await bob.next_event(lambda e: e.get("type") == "message")
    for record in (echo, got):
        assert (record["to"], record["from"], record["room_key"]) == ("bob", "alice", "dev")
        assert record["e2e"] is True and record["envelope"] == env and "text" not in record
    opened = envelope.open_envelope(base64.b64decode(got["envelope"]), "bob", IDS["bob"])
    assert Handout.unpack(opened.plaintext).chain.index == 0
    await carol.command("/ping")
    assert not [e for e in carol.pending_events() if e.get("type") == "message"]
    assert not (await bob.command("/history dev"))["messages"]  # not a room message


async def test_ekey_is_checked(clients: Clients) -> None:
    alice, _ = await room(clients, "alice", "bob")
    mallory = await clients.user("mallory")
    env = handout("alice", "dev", "bob")
    assert (await error(alice, f"/ekey dev mallory {handout('alice', 'dev', 'mallory')}")
            )["code"] == "not-in-room"
    assert (await error(mallory, f"/ekey dev bob {handout('mallory', 'dev', 'bob')}")
            )["code"] == "not-in-room"
    assert "sealed for bob alone" in (await error(
        alice, f"/ekey dev bob {handout('alice', 'dev', 'carol')}"))["message"]
    assert "version 1" in (await error(alice, f"/ekey dev bob {group_sealed('alice', '#dev')}")
                           )["message"]
    assert "addressed to" in (await error(alice, f"/ekey dev bob {handout('alice', 'x', 'bob')}")
                              )["message"]
    assert (await error(alice, f"/ekey nosuch bob {env}"))["code"] == "no-such-room"
    assert (await error(alice, f"/ekey dev nobody {env}"))["code"] == "no-such-user"
    assert (await error(alice, "/ekey dev bob"))["code"] == "bad-arguments"


async def test_ekey_waits_for_an_offline_member_without_a_notification(
        clients: Clients) -> None:
    alice, bob = await room(clients, "alice", "bob")
    await bob.close()
    env = handout("alice", "dev", "bob")
    assert (await alice.command(f"/ekey dev bob {env}"))["online"] is False
    again = await clients.anonymous()
    login = await again.command("/login bob secret-pw")
    [replayed] = [e for e in login.lines if e.get("type") == "message"]
    assert replayed["envelope"] == env and replayed["offline"] is True
    assert replayed["room_key"] == "dev"
    assert not login.get("notifications")
    assert not (await again.command("/notifications"))["notifications"]


async def test_handing_keys_to_a_large_room_is_not_charged_as_messages(
        clients: Clients) -> None:
    """The message bucket (burst 10) is for what people read; a key per member is not."""
    alice, _bob = await room(clients, "alice", "bob")
    env = handout("alice", "dev", "bob")
    for _ in range(15):
        assert (await alice.command(f"/ekey dev bob {env}")).ok
    assert (await alice.command(f"/emsg #dev {sealed('alice', '#dev', 'alice')}")).ok

