"""How domain events read in IRC (pure rendering, no sockets), and the command table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.domain import events as ev
from chatd.domain.modes import ModeChange, RoomModes
from chatd.irc.codec import MAX_BODY, fit
from chatd.irc.front import load
from chatd.irc.messages import fitted_text
from chatd.irc.render import IrcRenderer, cache_key
from chatd.protocol.render import Style, style_key
from storage.records import NotificationRecord

PLAIN, TIMED, TAGGED = cache_key(False, False), cache_key(True, False), cache_key(True, True)
TS = 1_800_000_000.0  # 2027-01-15T08:00:00.000Z


def _renderer() -> IrcRenderer:
    return IrcRenderer(lambda: "irc.test", lambda: 1_800_000_000.0)


def _lines(event: ev.Event, key: int = PLAIN) -> list[str]:
    data = _renderer().shared(event, key)
    assert data is not None
    return data.decode().split("\r\n")[:-1]


# Text with what the general way handles: line breaks, NULs, spaces, leading
# colons, multi-byte characters, and lengths on both sides of a line's limit.
_TEXTS = st.one_of(st.text(st.sampled_from("ab :\r\n\0é€😀"), max_size=40),
                   st.integers(400, 1100).map(lambda n: "x é" * (n // 4)),
                   st.integers(440, 510).map(lambda n: "y" * n))


@given(text=_TEXTS, sender=st.sampled_from(["al", "a" * 120]),
       target=st.sampled_from([("dev", None), (None, "bob"), (None, ":odd"), (None, "a b")]),
       kind=st.sampled_from(["text", "notice", "action", "file"]),
       key=st.sampled_from([PLAIN, TIMED, TAGGED, cache_key(False, False, True)]))
def test_a_short_plain_message_written_at_once_reads_as_the_general_way_writes_it(
        text: str, sender: str, target: tuple[str | None, str | None], kind: str,
        key: int) -> None:
    renderer = _renderer()
    message = ev.Message(sender, text, TS, 9, room=target[0], to=target[1], msg_kind=kind)
    source, where = renderer.mask(sender), target[1] or f"#{target[0]}"
    verb = "NOTICE" if kind == "notice" else "PRIVMSG"
    general = renderer._lines(message, key, where, source, verb, text)
    assert renderer.message(message, key) == general


def test_a_message_at_the_length_of_a_line_is_split_only_past_it() -> None:
    """``:al!al@irc.test PRIVMSG #dev :`` and the line end leave 478 bytes of text."""
    renderer = _renderer()
    for length, lines in ((477, 1), (478, 1), (479, 2), (480, 2)):
        message = ev.Message("al", "y" * length, TS, 9, room="dev")
        written = renderer.message(message, PLAIN)
        assert len(written) == lines
        assert max(len(line.encode()) for line in written) + 2 <= 510
        assert written == renderer._lines(message, PLAIN, "#dev", "al!al@irc.test", "PRIVMSG",
                                          message.text)


def test_only_the_first_line_of_a_split_message_carries_its_msgid() -> None:
    message = ev.Message("al", "y" * 900 + "\nsecond line", TS, 42, room="dev")
    written = _renderer().message(message, TAGGED)
    assert len(written) == 3
    assert ["msgid=42" in line.split(" ", 1)[0] for line in written] == [True, False, False]
    assert all("time=" in line.split(" ", 1)[0] for line in written)


@given(text=_TEXTS, mask=st.sampled_from(["al!al@irc.test", "é" * 60 + "!x@irc.test"]),
       target=st.sampled_from(["#dev", "#DEV" * 20, "bob", "#\u0130" * 30]),
       kind=st.sampled_from(["text", "notice", "action"]))
def test_text_sure_to_fit_is_taken_whole_and_other_text_is_cut_to_fit(
        text: str, mask: str, target: str, kind: str) -> None:
    verb = "NOTICE" if kind == "notice" else "PRIVMSG"
    room = target.lower() if target.startswith("#") else target
    limit = MAX_BODY - len(f":{mask} {verb} {room} :\r\n".encode()) - (9 if kind == "action" else 0)
    assert fitted_text(text, mask, target, kind) == fit(text, limit)


def test_cache_keys_never_meet_style_keys() -> None:
    keys = {cache_key(a, b) for a in (False, True) for b in (False, True)}
    assert len(keys) == 4 and all(k < 0 for k in keys)
    assert style_key(Style(), True) >= 0


def test_messages_carry_time_and_msgid_tags_by_mode() -> None:
    message = ev.Message("al", "hi", TS, 7, room="dev")
    assert _lines(message) == [":al!al@irc.test PRIVMSG #dev :hi"]
    assert _lines(message, TIMED) == [
        "@time=2027-01-15T08:00:00.000Z :al!al@irc.test PRIVMSG #dev :hi"]
    assert _lines(message, TAGGED)[0].startswith("@time=2027-01-15T08:00:00.000Z;msgid=7 ")
    action = ev.Message("al", "waves", TS, 8, room="dev", msg_kind="action")
    assert _lines(action) == [":al!al@irc.test PRIVMSG #dev :\x01ACTION waves\x01"]


def test_previews_become_lines_and_encrypted_messages_a_placeholder() -> None:
    picture = ev.Message("al", "cat.png", TS, 1, room="dev", msg_kind="file",
                         extra={"file": {"preview": "/\\_/\\\n( o.o )"}})
    assert [line.split(" :", 1)[1] for line in _lines(picture)] == ["cat.png", "/\\_/\\",
                                                                     "( o.o )"]
    sealed = ev.Message("al", "", TS, 2, to="bob", msg_kind="e2e", extra={"envelope": "E"})
    assert _lines(sealed) == [":al!al@irc.test PRIVMSG bob :[end-to-end encrypted message]"]
    key = ev.Message("al", "", TS, 3, to="bob", msg_kind="e2e-key",
                     extra={"envelope": "E", "room_key": "dev"})
    assert _lines(key) == [":al!al@irc.test PRIVMSG bob :[end-to-end encrypted message]"]


@pytest.mark.parametrize(("event", "expected"), [
    (ev.Joined("dev", "bob"), [":bob!bob@irc.test JOIN #dev"]),
    (ev.Left("dev", "bob", "bob"), [":bob!bob@irc.test PART #dev"]),
    (ev.Kicked("dev", "bob", "al", "loud"), [":al!al@irc.test KICK #dev bob :loud"]),
    (ev.Banned("dev", "bob", "al", member=True),
     [":al!al@irc.test MODE #dev +b bob!*@*", ":al!al@irc.test KICK #dev bob :al"]),
    (ev.Banned("dev", "eve", "console"), [":irc.test MODE #dev +b eve!*@*"]),
    (ev.Unbanned("dev", "eve", "the server"), [":irc.test MODE #dev -b eve!*@*"]),
    (ev.Promoted("dev", "bob", None, "admin"), [":irc.test MODE #dev +o bob"]),
    # Voice is a role: a voiced member made admin is no longer voiced.
    (ev.Promoted("dev", "bob", "al", "admin", voiced=True),
     [":al!al@irc.test MODE #dev -v+o bob bob"]),
    (ev.Demoted("dev", "bob", "al", "member"), [":al!al@irc.test MODE #dev -o bob"]),
    (ev.OwnerChanged("dev", "bob", None, "owner"), [":irc.test MODE #dev +o bob"]),
    (ev.Voiced("dev", "bob", "al", "voice"), [":al!al@irc.test MODE #dev +v bob"]),
    (ev.Devoiced("dev", "bob", "al", "member"), [":al!al@irc.test MODE #dev -v bob"]),
    (ev.ModesChanged("dev", "al", (ModeChange(True, "k", "pw"), ModeChange(True, "l", "5"),
                                   ModeChange(False, "n")), RoomModes()),
     [":al!al@irc.test MODE #dev +kl-n pw 5"]),
    (ev.ModeChanged("dev", "al", "request"), [":al!al@irc.test MODE #dev +R-i"]),
    (ev.TopicChanged("dev", "al", "news"), [":al!al@irc.test TOPIC #dev :news"]),
    (ev.Terminated("dev", "bob"), [":bob!bob@irc.test PART #dev :#dev was terminated"]),
    (ev.Muted("dev", "bob", "the server", reason="flooding"),
     [":irc.test NOTICE #dev :bob was muted in #dev by the server (flooding)"]),
    (ev.Typing("dev", "bob"), []),
])
def test_events(event: ev.Event, expected: list[str]) -> None:
    assert _lines(event) == expected


def test_multi_prefix_clients_see_the_owner_as_q_and_o() -> None:
    multi = cache_key(False, False, True)
    assert multi not in {PLAIN, TIMED, TAGGED}
    assert _lines(ev.OwnerChanged("dev", "bob", None, "owner"), multi) == [
        ":irc.test MODE #dev +qo bob bob"]
    assert _lines(ev.OwnerChanged("dev", "bob", "al", "owner", "al"), multi) == [
        ":al!al@irc.test MODE #dev -q+qo al bob bob"]
    assert _lines(ev.OwnerChanged("dev", "bob", "al", "owner", "al")) == [
        ":al!al@irc.test MODE #dev +o bob"]
    voiced = ev.OwnerChanged("dev", "bob", "al", "owner", "al", voiced=True)
    assert _lines(voiced, multi) == [":al!al@irc.test MODE #dev -qv+qo al bob bob bob"]
    assert _lines(voiced) == [":al!al@irc.test MODE #dev -v+o bob bob"]


def test_typing_is_a_tagmsg_for_clients_that_take_tags() -> None:
    lines = _lines(ev.Typing("dev", "bob"), TAGGED)
    assert lines == ["@time=2027-01-15T08:00:00.000Z;+typing=active "
                     ":bob!bob@irc.test TAGMSG #dev"]


def test_notices_are_personal() -> None:
    renderer = _renderer()
    notice = {"type": "notice", "text": "one\ntwo"}
    note = NotificationRecord(1, 2, "muted", {"text": "one\ntwo"}, TS)
    assert renderer.shared(ev.Notified(note), PLAIN) is None
    assert renderer.personal(notice, "bob") == (b":irc.test NOTICE bob :one\r\n"
                                                b":irc.test NOTICE bob :two\r\n")
    invitation = {"type": "notice", "text": "...", "notification": {
        "kind": "invitation", "room": "dev", "actor": "al"}}
    assert renderer.personal(invitation, "bob") == b":al!al@irc.test INVITE bob #dev\r\n"
    assert renderer.personal({"type": "error", "message": "no"}, "bob") == (
        b":irc.test NOTICE bob :no\r\n")
    assert renderer.personal({"type": "ok"}, "bob") == b""


def test_every_irc_command_has_a_summary() -> None:
    commands = load().all()
    assert {c.name for c in commands} >= {
        "CAP", "NICK", "USER", "PASS", "AUTHENTICATE", "PING", "PONG", "QUIT", "MOTD",
        "LUSERS", "JOIN", "PART", "PRIVMSG", "NOTICE", "TOPIC", "NAMES", "WHO", "WHOIS",
        "LIST", "KICK", "INVITE", "AWAY", "MODE", "TAGMSG"}
    assert all(c.summary for c in commands)
