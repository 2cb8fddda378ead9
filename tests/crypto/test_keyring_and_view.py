"""The client's files (modes, TOFU pins) and its drawing (no markup injection)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from chatd.client.tui.keyring import (
    IDENTITY_FILE,
    KNOWN_FILE,
    Keyring,
    KnownKeys,
    Status,
    config_dir,
)
from chatd.client.tui.lines import Line, from_ok, from_record, plain_message
from chatd.client.tui.view import View


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_follows_xdg() -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x"}) == Path("/x/chatd-client")
    assert config_dir({"HOME": "/home/u"}) == Path("/home/u/.config/chatd-client")


def test_identity_and_directory_modes(tmp_path: Path) -> None:
    home = tmp_path / "cfg"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    keyring, new = Keyring.open(home, "srv:1", pq=False)
    # A new identity stays in memory until the login succeeds (the session keeps it then).
    assert new and mode(home) == 0o700 and not (home / IDENTITY_FILE).exists()
    assert keyring.keep_identity() and mode(home / IDENTITY_FILE) == 0o600
    assert not keyring.keep_identity()  # once
    again, new = Keyring.open(home, "srv:1")
    assert not new and not again.keep_identity()
    assert again.identity.x25519_public == keyring.identity.x25519_public


def test_an_identity_written_meanwhile_is_the_one_kept(tmp_path: Path) -> None:
    first, _ = Keyring.open(tmp_path, "srv:1", pq=False)
    second, _ = Keyring.open(tmp_path, "srv:1", pq=False)  # started before the first logs in
    assert first.keep_identity() and not second.keep_identity()
    assert second.identity.x25519_public == first.identity.x25519_public


def test_an_identity_written_by_another_while_this_one_writes_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two first runs at once: the other client's file appears after this one looked
    # and before its own is in place. Neither replaces the other's: one key, both use it.
    first, _ = Keyring.open(tmp_path, "srv:1", pq=False)
    second, _ = Keyring.open(tmp_path, "srv:1", pq=False)
    real_fsync = os.fsync

    def other_client_writes_meanwhile(fd: int) -> None:
        real_fsync(fd)
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert first.keep_identity()

    monkeypatch.setattr(os, "fsync", other_client_writes_meanwhile)
    assert not second.keep_identity()
    assert second.identity.x25519_public == first.identity.x25519_public
    kept, new = Keyring.open(tmp_path, "srv:1")
    assert not new and kept.identity.x25519_public == first.identity.x25519_public
    assert sorted(p.name for p in tmp_path.iterdir()) == [IDENTITY_FILE]  # no copy left


def test_trust_on_first_use(tmp_path: Path) -> None:
    known = KnownKeys(tmp_path / KNOWN_FILE, "srv:1")
    entry = {"user": "Bob", "key": "AAAA", "fingerprint": "00 11"}
    assert known.check(entry) is Status.NEW
    assert known.check({**entry, "user": "bob"}) is Status.SAME
    assert known.check({**entry, "key": "BBBB"}) is Status.CHANGED
    assert known.check({**entry, "pq_key": "CCCC"}) is Status.CHANGED
    assert mode(tmp_path / KNOWN_FILE) == 0o600
    reloaded = KnownKeys(tmp_path / KNOWN_FILE, "srv:1")
    pinned = reloaded.get("BOB")
    assert pinned is not None and pinned.key == "AAAA"
    assert KnownKeys(tmp_path / KNOWN_FILE, "other:2").get("bob") is None
    reloaded.trust({**entry, "key": "BBBB"})
    assert KnownKeys(tmp_path / KNOWN_FILE, "srv:1").check({**entry, "key": "BBBB"}) \
        is Status.SAME


def render(lines: list[Line], current: str | None = None) -> str:
    console = Console(record=True, width=120, color_system=None)
    View(console).show(lines, current)
    return console.export_text()


def test_messages_show_markup_and_escapes_literally() -> None:
    record = {"type": "message", "room": "dev", "from": "eve", "id": 1,
              "ts": "2026-01-01T10:05:00.000Z", "text": "[bold red]hi[/] \x1b[2J"}
    text = render([plain_message(record)])
    assert "[10:05] #dev <eve> [bold red]hi[/] \ufffd[2J" in text
    assert "\x1b" not in text
    assert "<eve> x" in render([Line("message", "x", room="dev", sender="eve")], "dev")


def test_bidirectional_overrides_never_reach_the_terminal() -> None:
    """A right-to-left override (U+202E) or isolate reorders what a bidi-capable
    terminal draws after it: shown as a replacement character, as escapes are;
    right-to-left text itself, and the marks LRM and RLM, are left as written."""
    record = {"type": "message", "room": "dev", "from": "eve", "id": 1,
              "ts": "2026-01-01T10:05:00.000Z",
              "text": "pay \u202etxt.exe\u202c and \u2067\u05e9\u05dc\u05d5\u05dd\u2069\u200f"}
    text = render([plain_message(record)])
    assert "pay \ufffdtxt.exe\ufffd and \ufffd\u05e9\u05dc\u05d5\u05dd\ufffd\u200f" in text
    assert not any(chr(c) in text for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def test_encrypted_lines_carry_their_marks() -> None:
    shown = render([Line("message", "s", room="dev", sender="a", encrypted=True, verified=True),
                    Line("message", "t", sender="a", to="b", encrypted=True)])
    assert "\N{LOCK} \N{CHECK MARK} #dev <a> s" in shown
    assert "\N{LOCK} ? <a -> b> t" in shown


def test_records_become_lines() -> None:
    event = from_record({"type": "event", "event": "join", "room": "dev", "user": "bob"})
    assert event is not None and event.text == "bob joined #dev"
    error = from_record({"type": "error", "code": "no-room", "message": "none"})
    assert error is not None and error.kind == "error"
    table = from_ok({"message": "2 rooms", "rooms": [
        {"id": 1, "name": "a", "mode": "open", "members": 3, "topic": "hi"},
        {"id": 2, "name": "b", "mode": "request", "members": 12, "topic": ""}]})
    # The columns text mode's /rooms shows, under its names.
    assert table[0].rows == (("id", "room", "mode", "members", "topic"),
                             ("1", "a", "open", "3", "hi"), ("2", "b", "request", "12", ""))
    assert "a" in render(table) and "* 2 rooms" in render(table)
