"""End-to-end encryption between real clients (the chatd-client session code)
through a real server: the plaintext must appear nowhere but at the ends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.session import ClientSession
from chatd.crypto import envelope, group
from tests.crypto import PQ
from tests.crypto.sessions import (
    People,
    messages,
    next_message,
    received,
    secret_room,
    take_in,
)
from tests.helpers import PASSWORD, ChatServer, start_server

ROOM_SECRET = "the vault code is 7-4-1-9 zebra"
REPLY_SECRET = "copy that, bringing the zebra"
DM_SECRET = "meet behind the old mill"
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


async def test_plaintext_reaches_only_the_ends(server: ChatServer, people: People,
                                               db_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob = await secret_room(people, "alice", "bob")
    # Carol is a server admin (she may read any room's history) and not a member;
    # Dave watches in text mode from another room.
    await server.services.accounts.create("carol", PASSWORD, is_admin=True)
    carol = await ChatClient.connect("127.0.0.1", server.port)
    await carol.command(f"/login carol {PASSWORD}")
    dave = await people.session("dave")
    await dave.input("/create lobby")

    sent = await alice.input(ROOM_SECRET)
    assert [(m.text, m.encrypted, m.verified) for m in messages(sent)] == \
        [(ROOM_SECRET, True, True)]
    got = messages(await received(bob))
    assert [(m.text, m.sender, m.room, m.verified) for m in got] == \
        [(ROOM_SECRET, "alice", "secret", True)]
    await bob.input(REPLY_SECRET)
    assert messages(await received(alice))[0].text == REPLY_SECRET
    await alice.input(f"/emsg @bob {DM_SECRET}")
    dm = messages(await received(bob, lambda e: "to" in e))[0]
    assert (dm.text, dm.to, dm.verified) == (DM_SECRET, "bob", True)

    seen_by_carol = [(await carol.command("/history secret")).final,
                     (await carol.command("/keys room secret")).final]
    seen_by_carol += carol.pending_events() + dave.client.pending_events()
    await server.services.writer.flush()
    await carol.close()
    await people.close()
    await server.stop()

    stored = b"".join(p.read_bytes() for p in db_path.parent.iterdir()
                      if p.name.startswith(db_path.name))
    outside = json.dumps(seen_by_carol)
    for secret in (ROOM_SECRET, REPLY_SECRET, DM_SECRET, "zebra"):
        assert secret.encode() not in stored
        assert secret not in caplog.text
        assert secret not in outside
    history = seen_by_carol[0]["messages"]
    assert len(history) == 2 and all(m["e2e"] and "text" not in m for m in history)
    assert history[0]["envelope"].encode() in stored  # kept as sent


async def test_ordinary_rooms_stay_plain(people: People) -> None:
    alice, bob = await secret_room(people, "alice", "bob", e2e=False)
    await alice.input("just chatting")
    line = messages(await received(bob))[0]
    assert (line.text, line.encrypted) == ("just chatting", False)
    await alice.input("/secure on")
    await alice.input("now private")
    line = messages(await received(bob))[0]
    assert (line.text, line.encrypted, line.verified) == ("now private", True, True)


async def test_first_key_is_pinned_and_a_changed_key_is_flagged(people: People,
                                                                tmp_path: Path) -> None:
    alice, bob = await secret_room(people, "alice", "bob")
    await alice.input("hello")
    assert messages(await received(bob))[0].verified
    pinned = bob.secure.keyring.known.get("alice")
    assert pinned is not None
    # Alice "reinstalls": a new identity, published over the old one.
    await alice.client.close()
    alice2 = await people.session("alice", home=tmp_path / "alice-reinstalled")
    await alice2.input("/switch secret")
    await alice2.input("it is me, new laptop")
    shown = await received(bob)
    assert not messages(shown)[0].verified
    assert any(line.kind == "warning" and "NOT verified" in line.text for line in shown)
    # Bob does not encrypt to the changed key until he trusts it.
    said = await bob.input("who are you?")
    assert any("CHANGED" in line.text for line in said)
    shown = await received(alice2)
    assert "not encrypted for you" in shown[0].text and not messages(shown)
    said = await bob.input("/trust alice")
    assert "now trust" in said[0].text
    await bob.input("welcome back")
    assert messages(await received(alice2))[0].text == "welcome back"
    assert (await bob.input("/fingerprint alice"))[0].text.endswith("(trusted)")


async def test_members_without_keys_are_named(people: People, server: ChatServer) -> None:
    alice, _ = await secret_room(people, "alice", "bob")
    await server.services.accounts.create("erin", PASSWORD)
    erin = await ChatClient.connect("127.0.0.1", server.port)
    await erin.command(f"/login erin {PASSWORD}")
    await erin.command("/join secret")
    said = await alice.input("for keyed members only")
    assert any("erin has no key" in line.text for line in said)
    await erin.close()


async def test_forged_attribution_and_replay_are_caught(people: People) -> None:
    alice, bob = await secret_room(people, "alice", "bob")
    await alice.input("original")
    event = await next_message(bob)
    relabelled = {**event, "from": "mallory"}
    shown = await bob.show(relabelled)
    assert shown[0].kind == "warning" and "claims to be from alice" in shown[0].text
    moved = {**event, "room": "elsewhere"}
    assert "written for #secret" in (await bob.show(moved))[0].text
    assert messages(await bob.show(event))[0].text == "original"
    replayed = await bob.show({**event, "id": event["id"] + 100})
    assert any("again" in line.text for line in replayed if line.kind == "warning")


async def test_history_is_decrypted(people: People, server: ChatServer) -> None:
    alice, bob = await secret_room(people, "alice", "bob")
    await alice.input("first")
    await alice.input("second")
    await bob.client.command("/ping")
    await take_in(bob)
    shown = await bob.input("/history")
    assert [m.text for m in messages(shown)] == ["first", "second"]
    # The chains received are kept on disk: after a restart history still reads.
    await bob.client.close()
    client = await ChatClient.connect("127.0.0.1", server.port)
    keyring, _ = Keyring.open(people.home / "bob", f"127.0.0.1:{server.port}")
    bob_again = ClientSession(client, keyring)
    people.open.append(bob_again)
    await bob_again.login("bob", PASSWORD)
    shown = await bob_again.input("/history secret")
    assert [(m.text, m.verified) for m in messages(shown)] == [("first", True), ("second", True)]


@PQ
async def test_hybrid_when_everyone_has_ml_kem(people: People) -> None:
    alice, bob = await secret_room(people, "alice", "bob")
    await alice.input("quantum-safe hello")
    handout = await bob.client.next_event(lambda e: bool(e.get("room_key")))
    assert envelope.unpack(base64.b64decode(handout["envelope"])).kem == envelope.KEM_HYBRID
    await bob.show(handout)
    event = await next_message(bob)
    assert group.is_group(base64.b64decode(event["envelope"]))
    assert messages(await bob.show(event))[0].text == "quantum-safe hello"


@PQ
async def test_x25519_only_when_a_member_lacks_ml_kem(people: People) -> None:
    alice = await people.session("alice", pq=True)
    carl = await people.session("carl", pq=False)
    await alice.input("/create mixed")
    await carl.input("/join mixed")
    await alice.input("/e2e on")
    carl.client.pending_events()
    await alice.input("classical")
    handout = await carl.client.next_event(lambda e: bool(e.get("room_key")))
    assert envelope.unpack(base64.b64decode(handout["envelope"])).kem == envelope.KEM_X25519
    await carl.show(handout)
    assert messages(await received(carl))[0].text == "classical"


@PQ
async def test_hybrid_rooms_of_three_fit_and_long_text_is_refused(people: People) -> None:
    sessions = await secret_room(people, "alice", "bob", "carol")
    said = await sessions[0].input("three hybrid members fit in 4096 bytes now")
    assert not [line for line in said if line.kind in ("error", "warning")]
    assert messages(await received(sessions[2]))[0].text.startswith("three hybrid")
    said = await sessions[0].input("x" * 3000)
    assert said[-1].kind == "error" and "line limit" in said[-1].text


async def test_the_terminal_app_end_to_end(server: ChatServer, tmp_path: Path) -> None:
    home = tmp_path / "zed-home"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatd.client.tui.app", "127.0.0.1", str(server.port),
        "--user", "zed", "--register", "--config-dir", str(home), "--no-color",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHATD_PASSWORD": PASSWORD, "COLUMNS": "200",
             "PYTHONPATH": PROJECT_ROOT})
    script = b"/create zroom\n/e2e on\nhello from the terminal\n/fingerprint\n/quit\n"
    out, err = await asyncio.wait_for(proc.communicate(script), 30)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "<zed> hello from the terminal" in text
    assert "your key:" in text
    assert oct((home / "identity.key").stat().st_mode & 0o777) == "0o600"
    assert oct(home.stat().st_mode & 0o777) == "0o700"


async def test_offline_direct_message_is_decrypted_at_login(server: ChatServer,
                                                            people: People) -> None:
    alice = await people.session("alice")
    bob = await people.session("bob")
    await bob.client.close()
    said = await alice.input("/emsg @bob read this later")
    assert not any(line.kind == "error" for line in said)
    client = await ChatClient.connect("127.0.0.1", server.port)
    keyring, _ = Keyring.open(people.home / "bob", f"127.0.0.1:{server.port}")
    bob_again = ClientSession(client, keyring)
    people.open.append(bob_again)
    # The login's reply shows it: the server labels the messages kept for bob.
    shown = await bob_again.login("bob", PASSWORD)
    assert messages(shown)[0].text == "read this later"


async def test_a_plain_line_too_long_for_the_server_is_refused_at_once(people: People) -> None:
    alice, _bob = await secret_room(people, "alice", "bob", e2e=False)
    said = await alice.input("x" * 5000)
    assert said[-1].kind == "error" and "line limit" in said[-1].text
    assert (await alice.input("still here"))[-1].kind != "error"


async def test_a_room_of_several_pages_is_encrypted_for_every_member(tmp_path: Path) -> None:
    # /keys room lists a page of members at a time: the client reads every page, so
    # the members past the first are written to too, and those without a key named.
    server = await start_server(tmp_path / "paged.db", rooms__page_size=2)
    crowd = People(server, tmp_path / "homes")
    try:
        alice, *others = await secret_room(crowd, "alice", "bob", "carol", "dave")
        await server.services.accounts.create("erin", PASSWORD)
        erin = await ChatClient.connect("127.0.0.1", server.port)
        await erin.command(f"/login erin {PASSWORD}")
        await erin.command("/join secret")
        said = await alice.input("for every page")
        assert any("erin has no key" in line.text for line in said), said
        for member in others:
            got = messages(await received(member))
            assert [(m.text, m.verified) for m in got] == [("for every page", True)]
        await erin.close()
    finally:
        await crowd.close()
        await server.stop()


async def test_a_read_token_client_finds_its_published_key(people: People,
                                                           server: ChatServer) -> None:
    # chatd-client checks its key with /keys get at each login: a read, which a
    # read-only token may do. Its key, published before, is found, not republished.
    alice = await people.session("alice")
    token = (await alice.client.command("/token create reader read"))["token"]
    keyring, _ = Keyring.open(people.home / "alice", f"127.0.0.1:{server.port}")
    client = await ChatClient.connect("127.0.0.1", server.port)
    reader = ClientSession(client, keyring)
    people.open.append(reader)
    shown = await reader.login("alice", token=token)
    assert reader.user == "alice"
    assert [line.kind for line in shown if line.kind in ("error", "warning")] == [], shown
    assert shown[-1].text == f"your key: {reader.secure.fingerprint}"
