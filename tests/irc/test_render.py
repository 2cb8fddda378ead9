"""How domain records read in IRC (pure rendering, no sockets), and the command table."""

from __future__ import annotations

import pytest

from chatd.irc.front import load
from chatd.irc.render import IrcRenderer, cache_key
from chatd.protocol.render import Style, style_key

PLAIN, TIMED, TAGGED = cache_key(False, False), cache_key(True, False), cache_key(True, True)
MEMBERS = {("dev", "bob")}


def _renderer() -> IrcRenderer:
    return IrcRenderer(lambda: "irc.test", lambda: 1_800_000_000.0,
                       lambda room, user: (room, user) in MEMBERS)


def _lines(record: dict, key: int = PLAIN) -> list[str]:
    data = _renderer().shared(record, key)
    assert data is not None
    return data.decode().split("\r\n")[:-1]


def test_cache_keys_never_meet_style_keys() -> None:
    keys = {cache_key(a, b) for a in (False, True) for b in (False, True)}
    assert len(keys) == 4 and all(k < 0 for k in keys)
    assert style_key(Style(), True) >= 0


def test_messages_carry_time_and_msgid_tags_by_mode() -> None:
    record = {"type": "message", "room": "dev", "from": "al", "text": "hi", "id": 7,
              "ts": "2027-01-15T08:00:00.000Z"}
    assert _lines(record) == [":al!al@irc.test PRIVMSG #dev :hi"]
    assert _lines(record, TIMED) == [
        "@time=2027-01-15T08:00:00.000Z :al!al@irc.test PRIVMSG #dev :hi"]
    assert _lines(record, TAGGED)[0].startswith("@time=2027-01-15T08:00:00.000Z;msgid=7 ")


def test_previews_become_lines_and_encrypted_messages_a_placeholder() -> None:
    record = {"type": "message", "room": "dev", "from": "al", "text": "cat.png", "id": 1,
              "ts": "x", "file": {"preview": "/\\_/\\\n( o.o )"}}
    assert [line.split(" :", 1)[1] for line in _lines(record)] == ["cat.png", "/\\_/\\",
                                                                    "( o.o )"]
    sealed = {"type": "message", "to": "bob", "from": "al", "id": 2, "ts": "x", "e2e": True}
    assert _lines(sealed) == [":al!al@irc.test PRIVMSG bob :[end-to-end encrypted message]"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"event": "join", "user": "bob"}, [":bob!bob@irc.test JOIN #dev"]),
    ({"event": "leave", "user": "bob", "actor": "bob"}, [":bob!bob@irc.test PART #dev"]),
    ({"event": "kick", "user": "bob", "actor": "al", "reason": "loud"},
     [":al!al@irc.test KICK #dev bob :loud"]),
    ({"event": "ban", "user": "bob", "actor": "al"},
     [":al!al@irc.test MODE #dev +b bob!*@*", ":al!al@irc.test KICK #dev bob :al"]),
    ({"event": "ban", "user": "eve", "actor": "console"},
     [":irc.test MODE #dev +b eve!*@*"]),
    ({"event": "unban", "user": "eve", "actor": "the server"},
     [":irc.test MODE #dev -b eve!*@*"]),
    ({"event": "promote", "user": "bob", "role": "admin"}, [":irc.test MODE #dev +o bob"]),
    ({"event": "demote", "user": "bob", "actor": "al"}, [":al!al@irc.test MODE #dev -o bob"]),
    ({"event": "owner", "user": "bob", "role": "owner"}, [":irc.test MODE #dev +q bob"]),
    ({"event": "mode", "actor": "al", "mode": "request"}, [":al!al@irc.test MODE #dev +R-i"]),
    ({"event": "topic", "actor": "al", "topic": "news"}, [":al!al@irc.test TOPIC #dev :news"]),
    ({"event": "terminated", "user": "bob"},
     [":bob!bob@irc.test PART #dev :#dev was terminated"]),
    ({"event": "mute", "user": "bob", "actor": "the server", "reason": "flooding"},
     [":irc.test NOTICE #dev :bob was muted in #dev by the server (flooding)"]),
    ({"event": "typing", "user": "bob"}, []),
])
def test_events(fields: dict, expected: list[str]) -> None:
    assert _lines({"type": "event", "room": "dev", **fields}) == expected


def test_typing_is_a_tagmsg_for_clients_that_take_tags() -> None:
    lines = _lines({"type": "event", "room": "dev", "event": "typing", "user": "bob"}, TAGGED)
    assert lines == ["@time=2027-01-15T08:00:00.000Z;+typing=active "
                     ":bob!bob@irc.test TAGMSG #dev"]


def test_notices_are_personal() -> None:
    renderer = _renderer()
    notice = {"type": "notice", "text": "one\ntwo"}
    assert renderer.shared(notice, PLAIN) is None
    assert renderer.personal(notice, "bob") == (b":irc.test NOTICE bob :one\r\n"
                                                b":irc.test NOTICE bob :two\r\n")
    invitation = {"type": "notice", "text": "...", "notification": {
        "kind": "invitation", "room": "dev", "actor": "al"}}
    assert renderer.personal(invitation, "bob") == b":al!al@irc.test INVITE bob #dev\r\n"
    assert renderer.personal({"type": "error", "message": "no"}, "bob") == (
        b":irc.test NOTICE bob :no\r\n")
    assert renderer.personal({"type": "ok"}, "bob") == b""
    assert renderer.shared({"type": "text", "lines": []}, PLAIN) == b""


def test_every_irc_command_has_a_summary() -> None:
    commands = load().all()
    assert {c.name for c in commands} >= {
        "CAP", "NICK", "USER", "PASS", "AUTHENTICATE", "PING", "PONG", "QUIT", "MOTD",
        "LUSERS", "JOIN", "PART", "PRIVMSG", "NOTICE", "TOPIC", "NAMES", "WHO", "WHOIS",
        "LIST", "KICK", "INVITE", "AWAY", "MODE", "TAGMSG"}
    assert all(c.summary for c in commands)
