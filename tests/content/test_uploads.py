"""Uploads and downloads over the real protocol, in both formats."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.content.previews import human_size
from tests.backends import on_both
from tests.content import (
    HeldPut,
    b64_lines,
    blob_path,
    blob_paths,
    download,
    image,
    interrupted_download,
    member_of,
    no_staged_files,
    pdf,
    sha,
    text_client,
    text_file,
    text_run,
    upload,
)
from tests.helpers import ChatServer, Clients, error_of

SAMPLES = {
    "cat.png": lambda: image("PNG"),
    "photo.jpg": lambda: image("JPEG"),
    "anim.gif": lambda: image("GIF", mode="P"),
    "pic.webp": lambda: image("WEBP"),
    "report.pdf": pdf,
    "notes.txt": text_file,
    "blob.bin": lambda: bytes(range(256)) * 40 + b"\x00tail",
}
MIMES = {"cat.png": "image/png", "photo.jpg": "image/jpeg", "anim.gif": "image/gif",
         "pic.webp": "image/webp", "report.pdf": "application/pdf", "notes.txt": "text/plain",
         "blob.bin": "application/octet-stream"}


async def test_every_kind_round_trips_in_json(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await member_of(alice, "general", bob)
    bob.pending_events()
    for name, make in SAMPLES.items():
        data = make()
        reply = await upload(alice, name, data, "general")
        assert reply.ok, reply.final
        assert (reply["mime"], reply["sha256"], reply["size"]) == (MIMES[name], sha(data),
                                                                    len(data))
        # The uploader's labelled copy of the announcement is their acknowledgement.
        copy = next(line for line in reply.lines if line["type"] == "message")
        announced = await bob.next_event(lambda e: e.get("type") == "message")
        assert announced["file"] == copy["file"]
        file = announced["file"]
        assert {"id", "name", "size", "mime", "sha256", "uploader", "preview"} <= set(file)
        assert (file["id"], file["name"], file["uploader"]) == (reply["file_id"], name, "alice")
        got, done = await download(bob, reply["file_id"])
        assert got == data
        assert done["sha256"] == sha(data) and done["name"] == name


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_text_mode_upload_and_download_use_bare_lines(clients: Clients, name: str) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    data = SAMPLES[name]()
    lines = await text_run(alice, f"/upload {name} {len(data)} {sha(data)}",
                           *b64_lines(data, 60), ".")
    assert lines[0].startswith(f"* send {name}")
    assert lines[1].startswith(f"<alice> shared {name}")
    # The preview follows the announcement, indented.
    assert len(lines) > 3 and all(line.startswith("    ") for line in lines[2:-1])
    assert lines[-1] == f"* uploaded {name} as file 1."
    out = await text_run(alice, "/download 1")
    end = out.index(".")
    body = out[:end]
    assert all(len(line) == 76 for line in body[:-1])
    assert base64.b64decode("".join(body)) == data
    assert out[end + 1].startswith(f"* file 1: {name}") and sha(data) in out[end + 1]


async def test_data_lines_never_reach_the_room(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await member_of(alice, "general", bob)
    bob.pending_events()
    data = b"hello /quit\n" * 50
    # The data would read as a command and as messages if it escaped the upload.
    reply = await upload(alice, "x.txt", data, "general",
                         lines=["/quit", "hello", *b64_lines(data)])
    assert reply.final["code"] == "bad-arguments"
    await alice.command("/ping")
    await bob.command("/ping")
    assert bob.pending_events() == []


@pytest.mark.parametrize("width", [1, 3, 5, 4093])
async def test_any_line_length_decodes(clients: Clients, width: int) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = bytes(range(256)) * (3 if width > 1 else 1)
    reply = await upload(alice, "b.bin", data, width=width)
    assert reply.ok, reply.final
    assert (await download(alice, reply["file_id"]))[0] == data


async def test_separately_padded_pieces_and_unpadded_end_decode(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    pieces = [b"a", b"bc", b"def", b"ghij"]
    lines = [base64.b64encode(p).decode() for p in pieces]
    lines[-1] = lines[-1].rstrip("=")  # some encoders leave the padding off
    data = b"".join(pieces)
    reply = await upload(alice, "p.bin", data, lines=lines)
    assert reply.ok, reply.final
    assert (await download(alice, reply["file_id"]))[0] == data


async def test_upload_replies_carry_the_label_and_come_after_the_dot(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    data = text_file(3)
    alice.send(f"@up1 /upload a.txt {len(data)}")
    assert await alice.line() == (f"@up1 * send a.txt ({len(data)} bytes) as base64 lines, "
                                  'then a line with a single ".". Commands wait until then.')
    for line in b64_lines(data):
        alice.send(line)
    after = await text_run(alice, ".")
    assert after[0].startswith("@up1 <alice> shared a.txt")
    assert after[-1] == "@up1 * uploaded a.txt as file 1."


async def test_an_upload_refused_at_once_reads_as_sentences(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    alice.send("/upload a.txt")
    assert await alice.line() == (
        "* upload failed (bad-arguments): missing <size>. Usage: /upload <filename> <size> "
        '[sha256] [room]. The lines up to a line with a single "." are discarded.')
    assert await text_run(alice, ".") == ["! bad-arguments: missing <size>. Usage: /upload "
                                          "<filename> <size> [sha256] [room]"]


async def test_an_upload_whose_announcement_would_be_rate_limited_is_refused_at_once(
        db_path: Path) -> None:
    """Before its data and its preview cost anything."""
    from tests.helpers import start_server

    server = await start_server(db_path, limits__message_rate=0.01, limits__message_burst=1)
    clients = Clients(server)
    try:
        alice = await text_client(clients, "alice")
        await text_run(alice, "/create general", "the one message the bucket holds")
        alice.send("/upload a.txt 3")
        refused = await alice.line()
        assert refused.startswith("* upload failed (rate-limited): too many messages; wait ")
        assert (await text_run(alice, "YWJj", "."))[-1].startswith("! rate-limited: ")
    finally:
        await clients.close()
        await server.stop()


async def test_a_zero_byte_file_and_a_checksumless_upload(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    reply = await upload(alice, "empty", b"", checksum=None)
    assert reply.ok and reply["sha256"] == sha(b"")
    assert (await download(alice, reply["file_id"]))[0] == b""


async def test_a_room_whose_name_looks_like_hex_is_the_room(clients: Clients) -> None:
    # "A word that is not a checksum is taken as the room": a room named in hex
    # digits too, while a cut checksum that names no room is still said to be one.
    alice = await clients.user("alice")
    await member_of(alice, "deadbeefdeadbeefdead")
    await alice.command("/create other")  # the current room is elsewhere
    reply = await upload(alice, "a.txt", b"abc", "deadbeefdeadbeefdead", checksum=None)
    assert reply.ok and reply.final["room"] == "deadbeefdeadbeefdead", reply.final
    refused = await upload(alice, "a.txt", b"abc", "deadbeefdeadbeefdeadbeef", checksum=None)
    assert refused.final["message"] == ("sha256 is 64 hexadecimal digits. "
                                        "Usage: /upload <filename> <size> [sha256] [room]")


async def test_same_content_is_stored_once(server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = text_file()
    first = await upload(alice, "a.txt", data)
    second = await upload(alice, "b.txt", data)
    assert first["file_id"] != second["file_id"]
    assert len(blob_paths(server)) == 1
    await alice.command(f"/rmfile {first['file_id']}")
    assert len(blob_paths(server)) == 1  # b.txt still needs it
    await alice.command(f"/rmfile {second['file_id']}")
    assert blob_paths(server) == []
    assert await no_staged_files(server)


@on_both
async def test_a_removal_whose_blob_cannot_be_deleted_still_removes_the_file(
        server: ChatServer, clients: Clients) -> None:
    # The row's deletion is committed before its blob is dropped: a blob store that
    # fails then leaves the blob to housekeeping's sweep, never a row whose blob is
    # gone nor a removal refused once decided.
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = text_file()
    stored = await upload(alice, "a.txt", data)
    blob = blob_path(server, sha(data))
    blob.unlink()
    blob.mkdir()
    (blob / "held").write_bytes(b"")  # the store's unlink of it fails, for root too
    try:
        assert (await alice.command(f"/rmfile {stored['file_id']}")).ok
        refused = await error_of(alice, f"/download {stored['file_id']}")
        assert refused["code"] == "no-such-file"
        assert (await alice.command("/files general"))["files"] == []
    finally:
        shutil.rmtree(blob)


@on_both
async def test_two_removals_of_one_file_at_once_remove_it_once(clients: Clients) -> None:
    # Both find the file before either deletes it: the one that deletes it second
    # removed nothing, and says so as a removal after it does.
    alice = await clients.user("alice")
    await alice.command("/create general")
    other = await clients.user("alice")  # a second connection: each runs one command
    stored = await upload(alice, "a.txt", text_file())
    line = f"/rmfile {stored['file_id']}"
    answers = await asyncio.gather(alice.command(line, check=False),
                                   other.command(line, check=False))
    codes = sorted(answer.get("code", "ok") for answer in answers)
    assert codes == ["no-such-file", "ok"], answers


@on_both
async def test_the_last_file_removed_between_an_uploads_put_and_its_row_leaves_it_whole(
        server: ChatServer, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    # A blob is put before its row's transaction, which holds no lock meanwhile: a
    # removal of the last file of the same content goes through and deletes the
    # blob; the upload's transaction finds it gone and puts it again.
    alice = await clients.user("alice")
    await alice.command("/create general")
    other = await clients.user("alice")  # a second connection: each runs one command
    data = text_file()
    first = await upload(alice, "a.txt", data)
    async with HeldPut(monkeypatch) as put:
        storing = asyncio.ensure_future(upload(alice, "b.txt", data))
        await put.reached(storing)
        async with asyncio.timeout(10):
            assert (await other.command(f"/rmfile {first['file_id']}")).ok
        assert not blob_path(server, sha(data)).exists()
    stored = await storing
    assert stored.ok, stored.final
    assert (await download(alice, stored["file_id"]))[0] == data
    assert await no_staged_files(server)


# (EOPNOTSUPP is ENOTSUP on Linux.)
@pytest.mark.parametrize("failure", sorted({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                            errno.EXDEV}), ids=errno.errorcode.get)
async def test_a_files_directory_without_hard_links_gets_its_blobs_copied(
        server: ChatServer, clients: Clients, monkeypatch: pytest.MonkeyPatch,
        failure: int) -> None:
    # Some network and FUSE file systems refuse hard links; EXDEV: staged elsewhere.
    def no_link(source: object, target: object, **_: object) -> None:
        raise OSError(failure, os.strerror(failure), str(source), None, str(target))

    monkeypatch.setattr(os, "link", no_link)
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = text_file(300)
    stored = await upload(alice, "a.txt", data)
    assert stored.ok, stored.final
    assert (await download(alice, stored["file_id"]))[0] == data
    blob = blob_path(server, sha(data))
    assert blob.read_bytes() == data and blob.stat().st_mode & 0o777 == 0o600
    assert blob_paths(server) == [blob]  # no copy left under its temporary name
    assert await no_staged_files(server)


async def test_files_lists_a_rooms_files(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    assert (await alice.command("/files"))["files"] == []
    data = text_file()
    await upload(alice, "a.txt", data)
    listed = (await alice.command("/files general"))["files"]
    assert [(f["name"], f["size"], f["mime"], f["uploader"]) for f in listed] == [
        ("a.txt", len(data), "text/plain", "alice")]


@on_both
async def test_myfiles_lists_your_files_in_every_room_left_and_ended_ones_too(
        clients: Clients) -> None:
    # What counts against the quota: files of rooms you left, or that ended, could be
    # neither listed nor found by id to remove.
    alice, bob = await clients.user("alice"), await clients.user("bob")
    assert (await alice.command("/myfiles"))["message"] == (
        "no files of yours: your quota is 100.0 MiB.")
    for room in ("general", "side", "temp"):
        await alice.command(f"/create {room}")
        assert (await upload(alice, f"{room}.txt", text_file(), room)).ok
    await bob.command("/join side")
    await alice.command("/promote bob side")  # so that side lives on without alice
    await bob.command("/join general")
    assert (await upload(bob, "bob.txt", text_file(), "general")).ok  # not alice's
    await alice.command("/leave side")  # bob stays, and owns it now
    await alice.command("/leave temp")  # its last member: it ends
    mine = await alice.command("/myfiles")
    assert [(f["name"], f["room"], f["room_ended"]) for f in mine["files"]] == [
        ("general.txt", "general", False), ("side.txt", "side", False),
        ("temp.txt", "temp", True)]
    size = len(text_file())
    assert (mine["used"], mine["quota"], mine["total"]) == (3 * size, 100 * 1024 * 1024, 3)
    assert mine["message"] == (f"3 files of yours: {human_size(3 * size)} of your 100.0 MiB "
                               "quota; /rmfile <id> removes one.")
    # Found, it can be removed, as its uploader may.
    await alice.command(f"/rmfile {mine['files'][2]['id']}")
    assert (await alice.command("/myfiles"))["used"] == 2 * size
    viewer = await text_client(clients, "alice")
    header, *rows, summary = await text_run(viewer, "/myfiles")
    assert header.split() == ["id", "name", "size", "room", "uploaded", "(UTC)"]
    assert [row.split()[1] for row in rows] == ["general.txt", "side.txt"]
    assert "#side" in rows[1] and summary.startswith("* 2 files of yours")


@pytest.mark.parametrize(("flush_delay", "busy"), [(0.0, False), (0.02, True)])
async def test_a_large_download_is_paced_for_a_slow_reader(db_path: Path, flush_delay: float,
                                                           busy: bool) -> None:
    """A reader that stops for a while is waited for, not dropped, and gets every byte;
    also on a busy server, whose output waits a while before it is written (the
    pacing counts what is held as well as what the socket has not taken)."""
    import asyncio
    import json

    from chatd.domain.clock import ManualClock
    from chatd.net.connection import FANOUT_MIN
    from tests.helpers import PASSWORD, start_server

    # A file bigger than the kernel's socket buffers: without pacing, this reader
    # is dropped.
    buffer = 256 * 1024
    server = await start_server(db_path, clock=ManualClock(), limits__output_buffer=buffer,
                                files__max_size=9 * 1024 * 1024, listen__flush_delay=flush_delay,
                                limits__message_burst=100_000)
    clients = Clients(server)
    try:
        alice, data, file_id = await _uploads_big_file(clients)
        waited: list[bool] = []
        if busy:
            # A room of FANOUT_MIN members with a message every 10 ms: the server's
            # turns wait the delay for more output while it lasts.
            for i in range(FANOUT_MIN):
                await (await clients.user(f"reader{i}")).command("/join general")
            chatter = asyncio.ensure_future(_chatter(alice, server, waited))
        # A raw JSON connection that reads nothing for a second.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1 << 16)
        writer.write(f"/format json\r\n/login alice {PASSWORD}\r\n"
                     f"@d /download {file_id}\r\n".encode())
        await asyncio.sleep(1.0)
        chunks, final = [], None
        async with asyncio.timeout(30):
            while final is None:
                line = await reader.readline()
                assert line, "the server dropped the slow reader"
                if not line.startswith(b"{"):
                    continue
                obj = json.loads(line)
                if obj.get("label") == "d" and obj["type"] == "data":
                    chunks.append(base64.b64decode(obj["data"]))
                elif obj.get("label") == "d":
                    final = obj
        if busy:
            chatter.cancel()
            assert any(waited), "the server's turns never waited: the case is not tested"
        assert final["type"] == "ok" and b"".join(chunks) == data
        writer.close()
    finally:
        await clients.close()
        await server.stop()


async def _chatter(sender: ChatClient, server: ChatServer, waited: list[bool]) -> None:
    """Post to the sender's room every 10 ms, noting whether the server's turns wait."""
    import asyncio

    for count in range(100_000):
        sender.send_line(f"chatter {count}")
        waited.append(server.listeners.flusher.waits)
        await asyncio.sleep(0.01)


@pytest.fixture
async def big_server(db_path: Path) -> AsyncIterator[ChatServer]:
    """A server that takes files of 8 MiB, and their upload's lines at once."""
    from chatd.domain.clock import ManualClock
    from tests.helpers import start_server

    server = await start_server(db_path, clock=ManualClock(), files__max_size=9 * 1024 * 1024,
                                limits__message_burst=100_000)
    yield server
    await server.stop()


async def _big_file(server: ChatServer) -> tuple[bytes, int]:
    """alice's 8 MiB file in #general (more than the socket buffers hold): its bytes
    and id."""
    clients = Clients(server)
    try:
        _alice, data, file_id = await _uploads_big_file(clients)
        return data, file_id
    finally:
        await clients.close()


async def _uploads_big_file(clients: Clients) -> tuple[ChatClient, bytes, int]:
    """alice, who made #general and uploaded an 8 MiB file to it; its bytes and id."""
    alice = await clients.user("alice")
    await alice.command("/create general")
    data = os.urandom(8 * 1024 * 1024)
    reply = await upload(alice, "big.bin", data, width=4000)
    assert reply.ok, reply.final
    return alice, data, reply["file_id"]


async def test_a_blob_removed_during_a_download_is_still_sent_whole(
        big_server: ChatServer) -> None:
    """On the local store the download holds the blob open: removed meanwhile, it is
    still sent to its end, then the "." and the ok."""
    server = big_server
    data, file_id = await _big_file(server)
    [blob] = blob_paths(server)

    async def remove() -> None:
        blob.unlink()

    got, final = await interrupted_download(server, "alice", file_id, remove)
    assert got == data and final.startswith(f"* file {file_id}: big.bin")


async def test_a_blob_cut_short_during_a_download_ends_the_block_then_says_so(
        big_server: ChatServer) -> None:
    """A blob that ends early (cut on the disk) ends the data block with its ".", then
    file-unreadable: never an ok for a short file, nor an error inside the block."""
    server = big_server
    data, file_id = await _big_file(server)
    [blob] = blob_paths(server)

    async def truncate() -> None:
        os.truncate(blob, 1024 * 1024)

    got, final = await interrupted_download(server, "alice", file_id, truncate)
    assert final.startswith("! file-unreadable: ") and "incomplete" in final, final
    assert len(got) < len(data) and data.startswith(got)
