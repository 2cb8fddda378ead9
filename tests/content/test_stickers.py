"""Stickers: the built-in set, posting in both formats, a sysadmin's own directory, reload."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from chatd.client import LineClient
from chatd.config import StickersConfig
from chatd.content.stickers import BUILTIN_DIR, BadArt, Stickers, load_dir, parse_art
from tests.content import member_of, text_client, text_run
from tests.governance import error_of
from tests.helpers import PASSWORD, ChatServer, Clients, start_server
from tests.helpers import test_config as config_for
from tests.operations import ChatdProcess, write_config

CAT = " /\\_/\\\n( o.o )\n > ^ <"


async def test_at_least_twelve_built_in_stickers_are_listed(clients: Clients) -> None:
    alice = await clients.user("alice")
    listed = (await alice.command("/stickers"))["stickers"]
    names = [s["name"] for s in listed]
    assert len(names) >= 12 and names == sorted(names)
    assert {"cat", "shrug", "tableflip", "thumbsup"} <= set(names)
    assert all(s["art"] and s["width"] <= 60 and s["height"] <= 20 for s in listed)


def test_built_in_stickers_are_found_beside_the_package_and_all_valid() -> None:
    assert BUILTIN_DIR.is_dir()
    files = sorted(p.stem for p in BUILTIN_DIR.glob("*.txt"))
    assert sorted(load_dir(BUILTIN_DIR)) == files


async def test_a_sticker_is_one_json_message(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await member_of(alice, "general", bob)
    bob.pending_events()
    reply = await alice.command("/sticker cat")
    assert reply["sticker"] == "cat" and reply["room"] == "general"
    copy = [line for line in reply.lines if line["type"] == "message"]
    assert len(copy) == 1 and copy[0]["sticker_art"] == CAT
    message = await bob.next_event(lambda e: e.get("type") == "message")
    assert (message["sticker"], message["sticker_art"], message["id"]) == ("cat", CAT,
                                                                         reply["id"])
    history = (await bob.command("/history general"))["messages"]
    assert history[-1]["sticker"] == "cat" and history[-1]["sticker_art"] == CAT


async def test_a_sticker_is_several_lines_in_text_mode(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    lines = await text_run(alice, "/sticker CAT general")
    assert lines == ["<alice> :cat:", "     /\\_/\\", "    ( o.o )", "     > ^ <"]


async def test_unknown_sticker_and_room_rules(clients: Clients) -> None:
    alice, bob = await clients.user("alice"), await clients.user("bob")
    await alice.command("/create general")
    assert (await error_of(alice, "/sticker nosuch"))["code"] == "bad-arguments"
    assert (await error_of(bob, "/sticker cat general"))["code"] == "not-in-room"
    assert (await error_of(bob, "/sticker cat"))["code"] == "no-room"


async def test_a_sysadmins_directory_is_read_at_start_and_on_reload(db_path: Path,
                                                                    tmp_path: Path) -> None:
    custom = tmp_path / "stickers"
    custom.mkdir()
    (custom / "Duck.txt").write_text("  __\n<(o )___\n ( ._> /\n  `---'\n")
    (custom / "cat.txt").write_text("=^.^=\n")  # replaces the built-in cat
    (custom / "evil.txt").write_bytes(b"\x1b[2Jgotcha\n")
    server = await start_server(db_path, stickers__dir=str(custom))
    clients = Clients(server)
    try:
        alice = await clients.user("alice")
        await alice.command("/create general")
        names = {s["name"] for s in (await alice.command("/stickers"))["stickers"]}
        assert {"duck", "cat"} <= names and "evil" not in names
        assert (await alice.command("/sticker cat")).lines[0]["sticker_art"] == "=^.^="
        (custom / "new.txt").write_text("\\o/\n")
        (custom / "duck.txt").unlink(missing_ok=True)
        (custom / "Duck.txt").unlink()
        server.apply(config_for(db_path, stickers__dir=str(custom), stickers__builtin=False))
        names = {s["name"] for s in (await alice.command("/stickers"))["stickers"]}
        assert names == {"cat", "new"}
    finally:
        await clients.close()
        await server.stop()


@pytest.mark.parametrize(("raw", "problem"), [
    (b"", "empty"),
    (b"\n\n  \n", "empty"),
    (b"ok\n\x1b[31mred\n", "control character"),
    (b"bell\x07\n", "control character"),
    (b"\xff\xfe", "not UTF-8"),
    (b"x" * 61, "wider than 60"),
    (b"x\n" * 21, "more than 20 lines"),
    (b"x" * 5000, "more than 4096 bytes"),
])
def test_invalid_art_is_rejected(raw: bytes, problem: str) -> None:
    with pytest.raises(BadArt, match=problem):
        parse_art(raw)


def test_art_is_tidied() -> None:
    assert parse_art(b"\n\n a\tb  \r\n c\n\n") == " a  b\n c"


def test_bad_names_and_a_missing_directory_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "Bad Name.txt").write_text("x\n")
    (tmp_path / "good.txt").write_text("x\n")
    (tmp_path / "other.md").write_text("x\n")
    assert sorted(load_dir(tmp_path)) == ["good"]
    book = Stickers(StickersConfig(dir=str(tmp_path / "missing")), builtin_dir=tmp_path / "no")
    assert book.all() == []


def test_two_files_of_one_sticker_name_keep_the_first_and_say_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "Cat.txt").write_text("first\n")
    (tmp_path / "cat.txt").write_text("second\n")
    with caplog.at_level(logging.WARNING, logger="chatd.content.stickers"):
        found = load_dir(tmp_path)
    assert {name: sticker.art for name, sticker in found.items()} == {"cat": "first"}
    [skipped] = [r for r in caplog.records if r.getMessage() == "sticker skipped"]
    assert skipped.fields == {"path": str(tmp_path / "cat.txt"),  # type: ignore[attr-defined]
                              "reason": "another file already gives the sticker 'cat'"}


async def test_stickers_reload_with_the_server(server: ChatServer, db_path: Path) -> None:
    before = len(server.services.stickers.all())
    server.apply(config_for(db_path, stickers__builtin=False))
    assert server.services.stickers.all() == []
    server.apply(config_for(db_path))
    assert len(server.services.stickers.all()) == before


async def test_a_pipe_or_an_endless_file_among_the_stickers_is_skipped(tmp_path: Path) -> None:
    # The whole file used to be read before its size was checked: a FIFO (or a link
    # to /dev/zero) in stickers.dir hung the daemon's start, silently, for ever.
    custom = tmp_path / "stickers"
    custom.mkdir()
    os.mkfifo(custom / "pipe.txt")
    (custom / "zero.txt").symlink_to("/dev/zero")
    (custom / "big.txt").write_bytes(b"x\n" * 100_000)
    (custom / "duck.txt").write_text("<(o )___\n")
    config = write_config(tmp_path / "chatd.yaml", accounts={"bcrypt_cost": 4},
                          stickers={"dir": str(custom), "builtin": False})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        host, port = await daemon.started()
        client = await LineClient.connect(host, port)
        try:
            await client.line()  # banner
            await text_run(client, f"/register alice {PASSWORD}")
            lines = await text_run(client, "/stickers")
        finally:
            await client.close()
        log = daemon.log()
    assert any("duck" in line for line in lines), lines
    assert not any(name in " ".join(lines) for name in ("pipe", "zero", "big")), lines
    for name in ("pipe.txt", "zero.txt", "big.txt"):
        assert f'msg="sticker skipped" path={custom / name}' in log, log


async def test_stickers_past_the_cap_are_said_to_be_skipped(tmp_path: Path) -> None:
    # Only the first 500 files are read; the rest used to go without a word.
    custom = tmp_path / "stickers"
    custom.mkdir()
    for n in range(502):
        (custom / f"s{n:03d}.txt").write_text(f"art {n}\n")
    config = write_config(tmp_path / "chatd.yaml", accounts={"bcrypt_cost": 4},
                          stickers={"dir": str(custom), "builtin": False})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.started()
        log = daemon.log()
    assert "count=500" in log
    assert f'msg="stickers skipped" dir={custom} skipped=2 read=500' in log, log
