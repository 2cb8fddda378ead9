"""Uploads that go wrong: each ends with one error after the ".", and leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import asyncpg
import pytest

from chatd.client import ChatClient
from chatd.content import previews
from chatd.net.connection import Connection
from tests.content import (
    b64_lines,
    blob_paths,
    member_of,
    no_staged_files,
    sha,
    staged_files,
    text_client,
    text_file,
    text_run,
    upload,
)
from tests.helpers import ChatServer, Clients, eventually, messages, settle, start_server


async def room_owner(clients: Clients, name: str = "alice") -> ChatClient:
    client = await clients.user(name)
    await member_of(client, "general")
    return client


async def assert_failed(server: ChatServer, client: ChatClient, reply_code: str,
                        reply: object) -> None:
    """One error as the final reply, nothing stored, nothing staged, and commands work again."""
    final = reply.final  # type: ignore[attr-defined]
    assert final["type"] == "error" and final["code"] == reply_code, final
    assert final["command"] == "upload"
    assert [line for line in reply.lines if line["type"] in ("ok", "error")] == []  # type: ignore[attr-defined]
    assert await no_staged_files(server)
    assert blob_paths(server) == []
    assert (await client.command("/files general"))["files"] == []


async def test_wrong_size(server: ChatServer, clients: Clients) -> None:
    alice = await room_owner(clients)
    data = text_file()
    short = await upload(alice, "a.txt", data, size=len(data) + 10)
    await assert_failed(server, alice, "bad-arguments", short)
    assert short.final["received"] == len(data)
    long = await upload(alice, "a.txt", data, size=len(data) - 10, checksum=None)
    await assert_failed(server, alice, "bad-arguments", long)


async def test_wrong_checksum(server: ChatServer, clients: Clients) -> None:
    alice = await room_owner(clients)
    reply = await upload(alice, "a.txt", text_file(), checksum="0" * 64)
    await assert_failed(server, alice, "checksum-mismatch", reply)
    assert reply.final["sha256"] == sha(text_file())


async def test_bad_base64(server: ChatServer, clients: Clients) -> None:
    alice = await room_owner(clients)
    data = text_file()
    lines = b64_lines(data)
    lines[1] = "not*base64!"
    reply = await upload(alice, "a.txt", data, lines=lines)
    await assert_failed(server, alice, "bad-arguments", reply)
    assert "line 2" in reply.final["message"]
    # The client heard early that the rest is discarded.
    assert any(line.get("upload") == "failed" for line in reply.lines)


@pytest.mark.parametrize("bad", ["Q.", "..", " .", "-", "_"])
async def test_a_bad_character_after_the_last_whole_group_fails_on_its_line(
        server: ChatServer, clients: Clients, bad: str) -> None:
    """Characters past a line's last group of four wait for the next line, but one
    that no base64 has is refused on its own line, not at the end."""
    alice = await room_owner(clients)
    reply = await upload(alice, "q.txt", b"ABC", lines=["QUJD", bad])
    await assert_failed(server, alice, "bad-arguments", reply)
    assert "line 2 of the upload is not base64" in reply.final["message"]
    assert any(line.get("upload") == "failed" for line in reply.lines)


async def test_a_dangling_base64_character_at_the_end(server: ChatServer,
                                                      clients: Clients) -> None:
    alice = await room_owner(clients)
    reply = await upload(alice, "a.bin", b"abc", lines=["YWJj", "Y"])
    await assert_failed(server, alice, "bad-arguments", reply)


async def test_over_the_size_limit_up_front_and_while_streaming(db_path: Path) -> None:
    server = await start_server(db_path, files__max_size=1000)
    clients = Clients(server)
    try:
        alice = await room_owner(clients)
        big = bytes(2000)
        up_front = await upload(alice, "big.bin", big)
        await assert_failed(server, alice, "file-too-large", up_front)
        assert up_front.final["max_size"] == 1000
        # Announced small, sent big: stopped as soon as more than announced arrives...
        streaming = await upload(alice, "big.bin", big, size=900, checksum=None)
        await assert_failed(server, alice, "bad-arguments", streaming)
        assert "more than the announced 900 bytes" in streaming.final["message"]
        # ...which is file-too-large when that is also past the limit.
        one_line = await upload(alice, "big.bin", big, size=900, checksum=None, width=4000)
        await assert_failed(server, alice, "file-too-large", one_line)
    finally:
        await clients.close()
        await server.stop()


async def test_an_upload_the_disk_cannot_stage_keeps_its_data_out_of_the_room(
        tmp_path: Path) -> None:
    # The files directory cannot be made (a full or broken disk does the same): the
    # staging file fails at the /upload line, before any data has arrived.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    server = await start_server(tmp_path / "chatd.db", files__dir=str(blocker / "files"))
    clients = Clients(server)
    try:
        alice = await room_owner(clients)
        bob = await clients.user("bob")
        await bob.command("/join general")
        await settle(bob)
        reply = await upload(alice, "a.txt", b"hello, world")
        # One error, after the ".", like any failed upload...
        assert reply.final["code"] == "internal-error" and reply.final["command"] == "upload"
        assert [line.get("upload") for line in reply.lines if line["type"] == "notice"] == [
            "failed"]
        # ...and the data was read and thrown away: none of it became a message.
        assert messages(await settle(bob)) == []
        assert messages(await settle(alice)) == []
    finally:
        await clients.close()
        await server.stop()


async def test_over_the_quota(db_path: Path) -> None:
    server = await start_server(db_path, files__quota=3000)
    clients = Clients(server)
    try:
        alice = await room_owner(clients)
        assert (await upload(alice, "one.bin", bytes(2000))).ok
        reply = await upload(alice, "two.bin", bytes(range(200)) * 6)
        assert reply.final["code"] == "quota-exceeded"
        assert (reply.final["used"], reply.final["quota"]) == (2000, 3000)
        assert reply.final["message"].startswith(
            "that would take your files to 3.1 KiB, over your quota of 2.9 KiB (2.0 KiB used)")
        assert await no_staged_files(server)
        # Removing a file frees its share of the quota.
        await alice.command("/rmfile 1")
        assert (await upload(alice, "two.bin", bytes(range(200)) * 6)).ok
    finally:
        await clients.close()
        await server.stop()


async def test_uploads_in_progress_count_against_the_quota(db_path: Path) -> None:
    # Each is staged on the disk as its data comes: on several connections at once,
    # uploads each within the quota would otherwise stage many times the quota.
    server = await start_server(db_path, files__quota=3000)
    clients = Clients(server)
    try:
        alice = await room_owner(clients)
        other = await clients.user("alice")
        data = bytes(range(200)) * 10
        alice.send_line(f"/upload one.bin {len(data)} general")
        ready = await alice.next_event(lambda e: e.get("upload") is not None)
        assert ready["upload"] == "ready"
        refused = await upload(other, "two.bin", data, "general")
        assert refused.final["code"] == "quota-exceeded"
        assert (refused.final["used"], refused.final["quota"]) == (2000, 3000)
        for line in b64_lines(data):
            alice.send_line(line)
        alice.send_line(".")
        assert (await alice.next_event(lambda e: e.get("type") in ("ok", "error")))["type"] == "ok"
        # Stored now, and counted as a file: what is left fits, once.
        assert (await upload(other, "three.bin", bytes(1000), "general")).ok
        assert (await upload(other, "four.bin", b"x", "general")).final["code"] == \
            "quota-exceeded"
        # An upload that fails (or is dropped) counts no more.
        await other.command("/rmfile 2")
        alice.send_line("/upload five.bin 1000 general")
        await alice.next_event(lambda e: e.get("upload") == "ready")
        alice.send_line("!!!!")
        alice.send_line(".")
        assert (await alice.next_event(lambda e: e.get("type") == "error"))["code"] == \
            "bad-arguments"
        assert (await upload(other, "six.bin", bytes(1000), "general")).ok
    finally:
        await clients.close()
        await server.stop()


async def test_over_the_quota_by_less_than_its_rounding(db_path: Path) -> None:
    # 3010 bytes over a quota of 3000 read "that would take your files to 2.9 KiB,
    # over your quota of 2.9 KiB": sizes that round alike are told in bytes.
    server = await start_server(db_path, files__quota=3000)
    clients = Clients(server)
    try:
        alice = await room_owner(clients)
        assert (await upload(alice, "one.bin", bytes(2990))).ok
        reply = await upload(alice, "two.bin", bytes(20))
        assert reply.final["code"] == "quota-exceeded"
        assert reply.final["message"].startswith(
            "that would take your files to 3,010 bytes, over your quota of 3,000 bytes "
            "(2,990 bytes used)"), reply.final["message"]
    finally:
        await clients.close()
        await server.stop()


@pytest.mark.parametrize(("line", "code"), [
    ("/upload", "bad-arguments"),                      # refused by the dispatcher itself
    ("/upload a/b.txt 10", "bad-arguments"),
    ("/upload a.txt ten", "bad-arguments"),
    ("/upload a.txt 10 12345678901234567890abc", "bad-arguments"),
    ("/upload a.txt 10 nosuchroom", "no-such-room"),
    ("/upload a.txt 10 general extra words", "bad-arguments"),
])
async def test_bad_arguments(server: ChatServer, clients: Clients, line: str, code: str) -> None:
    alice = await room_owner(clients)
    if line == "/upload":
        assert (await alice.command(line, check=False)).final["code"] == code
        return
    command = asyncio.ensure_future(alice.command(line, check=False))
    await asyncio.sleep(0)
    alice.send_line("aGVsbG8=")
    alice.send_line(".")
    reply = await command
    assert reply.final["code"] == code
    assert await no_staged_files(server)


async def test_not_a_member_and_muted(server: ChatServer, clients: Clients) -> None:
    alice, bob = await room_owner(clients), await clients.user("bob")
    outsider = await upload(bob, "a.txt", text_file(), "general")
    assert outsider.final["code"] == "not-in-room"
    await bob.command("/join general")
    await alice.command("/mute bob general 10m")
    refused = (await upload(bob, "a.txt", text_file(), "general")).final
    said = await bob.command("/say general hello", check=False)
    # Refused as a message of theirs is: how long the mute lasts, until when.
    assert refused["code"] == "muted" and refused["message"] == said.final["message"]
    assert refused["message"] == "you are muted in #general for 10m more."
    assert refused["until"] == said.final["until"] and refused["retry_ms"] == 600_000
    assert await no_staged_files(server)


async def test_an_end_to_end_room_refuses_an_upload_before_its_data(
        server: ChatServer, clients: Clients) -> None:
    # Its plaintext has no place on the server: refused at the /upload line, as a
    # mute is, not after the whole file came in, was previewed and stored.
    alice = await room_owner(clients)
    await alice.command("/e2e on general")
    reply = await upload(alice, "a.txt", text_file(), "general")
    assert reply.final["code"] == "e2e-required"
    notices = [line for line in reply.lines if line["type"] == "notice"]
    assert [(n["upload"], n.get("code")) for n in notices] == [("failed", "e2e-required")]
    assert await no_staged_files(server)
    assert blob_paths(server) == []


async def test_no_current_room(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await upload(alice, "a.txt", text_file())).final["code"] == "no-room"


async def test_an_upload_abandoned_by_disconnect_leaves_nothing(server: ChatServer,
                                                               clients: Clients) -> None:
    alice = await room_owner(clients)
    data = bytes(range(256)) * 4000  # big enough for writes to the staging file
    alice.send_line(f"/upload big.bin {len(data)}")
    for line in b64_lines(data, 4000)[:-20]:
        alice.send_line(line)
    for _ in range(500):
        if staged_files(server):
            break
        await asyncio.sleep(0.01)
    assert staged_files(server)
    await alice.close()
    assert await no_staged_files(server)
    bob = await clients.user("bob")
    await bob.command("/join general")
    assert (await bob.command("/files general"))["files"] == []


async def test_an_upload_whose_connection_drops_during_its_preview_leaves_nothing(
        server: ChatServer, clients: Clients, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole file came, then the connection was reset while its preview ran: a
    # file nobody announced must not stay behind, unseen, counting against the quota.
    started, go = tmp_path / "started", tmp_path / "go"
    # A stand-in preview process that runs until the test lets it finish.
    script = (f"touch {started}; while [ ! -e {go} ]; do sleep 0.01; done; "
              "echo '{\"preview\": \"x\"}'")
    monkeypatch.setattr(previews, "_command", lambda job: ["/bin/sh", "-c", script])
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    alice.send("/upload a.txt 3")
    alice.send("QUJD")
    alice.send(".")
    await eventually(started.exists)
    [connection] = [session.out for session in server.services.presence.sessions
                    if isinstance(session.out, Connection)]
    finishing = connection.worker
    assert finishing is not None
    sock = alice.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    alice.writer.transport.abort()  # a reset: the server drops the session at once
    await eventually(lambda: not server.services.presence.sessions)
    go.touch()
    async with asyncio.timeout(15):
        await finishing
    assert await no_staged_files(server)
    assert blob_paths(server) == []
    bob = await clients.user("bob")
    await bob.command("/join general")
    assert (await bob.command("/files general"))["files"] == []


async def test_a_damaged_line_fails_the_upload(server: ChatServer, clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    data = text_file()
    alice.send(f"@u /upload a.txt {len(data)}")
    assert (await alice.line()).startswith("@u * send a.txt")
    alice.send(b"QUJD" * 1100 + b"\r\n")  # longer than the 4096-byte line limit
    for line in b64_lines(data):
        alice.send(line)
    lines = await text_run(alice, ".")
    assert lines[0].startswith("@u * upload failed (bad-arguments)")
    assert lines[1] == ("! line-too-long: that line was over the limit of 4096 bytes and "
                        "was dropped: send shorter lines, or share a long text as a file "
                        "with /upload.")
    assert lines[-1].startswith("@u ! bad-arguments: line 1 of the upload was damaged")
    assert await no_staged_files(server)


async def test_a_file_name_with_control_characters_is_cleaned_or_refused(
        clients: Clients) -> None:
    alice = await room_owner(clients)
    reply = await upload(alice, "a\x1b[31m.txt", text_file())
    # The codec removed the escape character; what is left is a valid, harmless name.
    assert reply.ok and reply["name"] == "a[31m.txt"
    assert (await upload(alice, "..", text_file())).final["code"] == "bad-arguments"
    assert (await upload(alice, "x" * 129, text_file())).final["code"] == "bad-arguments"


async def test_an_upload_whose_connection_drops_before_its_data_counts_no_more(
        db_path: Path, postgres_url: str) -> None:
    # The connection is reset while /upload itself still waits (here for the
    # database's count of the user's files): the session is gone before the upload
    # takes its data lines, so nothing will ever end it. Its announced size must not
    # stay counted against the quota, nor its staging file stay on the disk.
    server = await start_server(db_path, files__quota=3000, cluster__enabled=True,
                                cluster__node_id="test", cluster__postgres=postgres_url)
    clients = Clients(server)
    blocker = await asyncpg.connect(postgres_url)
    try:
        alice = await text_client(clients, "alice")
        await text_run(alice, "/create general")
        other = await clients.user("alice")
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("LOCK TABLE files IN ACCESS EXCLUSIVE MODE")
        alice.send("/upload big.bin 2000 general")
        await eventually_waiting(blocker)
        [connection] = [s.out for s in server.services.presence.sessions
                        if isinstance(s.out, Connection) and s.out.worker is not None]
        accepting = connection.worker
        assert accepting is not None
        sock = alice.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        alice.writer.transport.abort()  # a reset: the server drops the session at once
        await eventually(lambda: len(server.services.presence.sessions) == 1)
        await blocking.rollback()
        async with asyncio.timeout(15):
            await accepting
        assert await no_staged_files(server)
        # The whole quota is free: the dropped upload holds none of it.
        assert (await upload(other, "all.bin", bytes(3000), "general")).ok
    finally:
        await blocker.close()
        await clients.close()
        await server.stop()


async def eventually_waiting(observer: asyncpg.Connection[asyncpg.Record]) -> None:
    """Until a query of another connection waits for a lock (``observer``'s)."""
    async with asyncio.timeout(15):
        while not await observer.fetchval(  # noqa: ASYNC110 - a query waiting has no event
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"):
            await asyncio.sleep(0.01)
