"""/keys, /emsg and /e2e through a real server, with hand-made envelopes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.crypto import envelope
from chatd.crypto.envelope import Identity, seal
from chatd.domain.clock import ManualClock
from tests.helpers import ChatServer, Clients, start_server

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


@pytest.mark.skipif(not envelope.pq_available(), reason="no ML-KEM-768 here")
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
    await again.command("/login bob secret-pw")
    replayed = await again.next_event(lambda e: e.get("type") == "message")
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
    await alice.command("/e2e off")
    assert (await bob.command("/say dev plain again")).ok


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
    for name in ("encrypt", "decrypt", "keys", "emsg", "e2e"):
        reply = await alice.command(f"/help {name}")
        assert reply["usage"].startswith(f"/{name} ") and reply["help"]
