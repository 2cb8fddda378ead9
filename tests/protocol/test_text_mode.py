"""The text format, as a person on telnet sees it (shapes, not wording)."""

from __future__ import annotations

import re
from pathlib import Path

import commands
from tests.helpers import PASSWORD, Clients, text_client, text_run

ERROR = re.compile(r"^! [a-z]+(-[a-z]+)*: \S")
ESC = "\x1b"






async def test_banner_is_a_notice_line_ending_in_crlf(clients: Clients) -> None:
    client = await clients.raw()
    raw = await client.reader.readline()
    assert raw.startswith(b"* chatd") and raw.endswith(b"\r\n")
    assert b"\r" not in raw[:-2] and ESC.encode() not in raw
    client.send("/ping")
    assert await client.reader.readline() == b"* pong\r\n"


async def test_lf_only_input_is_accepted(clients: Clients) -> None:
    client = await text_client(clients)
    client.send(b"/ping\n")
    assert await client.line() == "* pong"


async def test_a_session_like_the_transcript(clients: Clients) -> None:
    bob = await clients.user("bob")
    created = await bob.command("/create general")
    await bob.command("/topic Say hello!")
    await bob.command("/create rustaceans request")
    alice = await text_client(clients)

    [welcome] = await text_run(alice, f"/register alice {PASSWORD}")
    assert welcome.startswith("* ") and "alice" in welcome

    header, general, rust, footer = await text_run(alice, "/rooms")
    assert header.split() == ["id", "room", "mode", "members", "topic"]
    assert general.split() == [str(created["id"]), "general", "open", "1", "Say", "hello!"]
    assert rust.split()[1:] == ["rustaceans", "request", "1"]
    # Aligned: every column starts where its header starts; ids are right-aligned.
    for column in ("room", "mode"):
        assert general.index("general" if column == "room" else "open") == header.index(column)
        assert rust.index("rustaceans" if column == "room" else "request") == \
            header.index(column)
    assert general.index(str(created["id"])) + len(str(created["id"])) == \
        header.index("id") + 2
    assert footer == "* 2 rooms."

    [joined] = await text_run(alice, "/join general")
    assert joined.startswith("* ") and "#general" in joined

    await bob.command("/say general morning all")
    assert await text_run(alice, None) == ["<bob> morning all"]
    alice.send("hi bob")
    assert await alice.line() == "<alice> hi bob"
    heard = await bob.next_event(lambda e: e.get("type") == "message" and e["from"] == "alice")
    assert heard["text"] == "hi bob" and heard["room"] == "general"

    [missing] = await text_run(alice, "/join nosuchroom")
    assert missing.startswith("! no-such-room:") and ERROR.match(missing)
    [refused] = await text_run(alice, "/topic general Mine now")
    assert refused.startswith("! not-permitted:") and ERROR.match(refused)
    [refused] = await text_run(alice, "/kick bob")
    assert refused.startswith("! not-permitted:") and ERROR.match(refused)

    usage, needs, *_ = await text_run(alice, "/help kick")
    assert usage.startswith("  /kick <user>") and needs.startswith("  Needs:")


async def test_errors_have_the_bang_code_shape(clients: Clients) -> None:
    client = await text_client(clients)
    cases = {
        "hello?": "not-logged-in",
        "/whoami": "not-logged-in",
        "/nosuch": "unknown-command",
        "/login": "bad-arguments",
        f"/login nobody {PASSWORD}": "auth-failed",
    }
    for line, code in cases.items():
        [shown] = await text_run(client, line)
        assert shown.startswith(f"! {code}:") and ERROR.match(shown), shown
    await text_run(client, f"/register alice {PASSWORD}")
    [no_room] = await text_run(client, "plain text with no room")
    assert no_room.startswith("! no-room:")


async def test_events_and_notices_start_with_a_star(clients: Clients) -> None:
    watcher = await text_client(clients)
    await text_run(watcher, f"/register alice {PASSWORD}")
    created = await text_run(watcher, "/create general")
    assert created[0].startswith("* ")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await text_run(watcher, "/topic Be kind")
    await bob.command("/leave")
    lines = await text_run(watcher, None)
    assert lines and all(line.startswith("* ") for line in lines), lines


async def test_no_escape_sequences_without_color(clients: Clients) -> None:
    bob = await clients.user("bob")
    await bob.command("/create general")
    alice = await text_client(clients)
    seen = []
    for line in [f"/register alice {PASSWORD}", "/help", "/rooms", "/join general",
                 "/who", "/topic", "/myrooms", "/nosuch", "/history", "/whoami"]:
        seen += await text_run(alice, line)
    await bob.say("hello")
    await bob.command("/me waves")
    await bob.command("/msg alice hi")
    await bob.command("/create dev")
    await bob.command("/leave dev")
    seen += await text_run(alice, None)
    assert len(seen) > 20
    assert not any(ESC in line or "\x9b" in line for line in seen)


async def test_color_on_colours_messages_notices_and_errors(clients: Clients) -> None:
    bob = await clients.user("bob")
    await bob.command("/create general")
    alice = await text_client(clients)
    await text_run(alice, f"/register alice {PASSWORD}")
    await text_run(alice, "/join general")
    [switched] = await text_run(alice, "/set color on")
    assert ESC + "[" in switched
    await bob.say("hello")
    [message] = await text_run(alice, None)
    [error] = await text_run(alice, "/nosuch")
    [notice] = await text_run(alice, "/whoami")
    for line in (message, error, notice):
        assert ESC + "[" in line, line
    assert re.sub(r"\x1b\[[0-9;]*m", "", error).startswith("! unknown-command:")


async def test_a_coloured_event_keeps_its_style_after_a_coloured_name(
        clients: Clients) -> None:
    """An event line is dim (the notice style) from end to end: the colour of a
    name or a room inside it ends by going back to dim, not to plain text."""
    bob = await clients.user("bob")
    await bob.command("/create general")
    alice = await text_client(clients, "alice")
    await text_run(alice, "/join general")
    await text_run(alice, "/set color on")
    await bob.command("/topic Be kind")
    await bob.command("/kick alice general too loud")
    lines = await text_run(alice, None)
    assert len(lines) >= 3, lines
    for line in lines:
        assert line.startswith(ESC + "[2m* "), line
        # A reset is followed by another style or ends the line: no text unstyled.
        assert re.findall(r"\x1b\[0m(?!\x1b\[|$)", line) == [], line


async def test_counts_of_one_read_as_english_and_tables_have_no_blank_cells(
        clients: Clients) -> None:
    bob = await text_client(clients, "bob")
    await text_run(bob, "/logout")
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/invite bob general")
    assert await text_run(alice, "/rooms 5") == [
        "* 1 room; there is only 1 page; /rooms 1 starts over."]
    # An empty history is a sentence, not the heading of no transcript.
    assert await text_run(alice, "/history") == ["* no messages in #general yet."]
    await text_run(alice, "hello")
    history = await text_run(alice, "/history")
    assert history[0] == "-- the last message of #general --"
    who = await text_run(alice, "/who general")
    assert any(re.fullmatch(r"  alice\s+owner\s+yes", line) for line in who), who
    assert who[-1] == "* #general: 1 member, 1 online."
    bob_again = await text_client(clients, "bob")
    await text_run(bob_again, "/join general")
    await text_run(bob_again, "/logout")
    who = await text_run(alice, "/who general")
    assert any(re.fullmatch(r"  bob\s+member\s+no", line) for line in who), who


# A governance command, and the one line its issuer reads in text mode: the event.
TOLD_ONCE = [
    ("/topic Be kind", "* alice set the topic of #general: Be kind"),
    ("/mute bob", "* bob was muted in #general by alice"),
    ("/unmute bob", "* bob was unmuted in #general by alice"),
    ("/voice bob", "* alice gave bob voice in #general"),
    ("/devoice bob", "* alice took the voice of bob in #general"),
    ("/promote bob", "* bob is now an admin of #general"),
    ("/demote bob", "* bob is no longer an admin of #general"),
    ("/invite dave", "* alice invited dave to #general"),
    ("/mode +m", "* alice changed #general: moderated (only voiced members and admins speak)"),
    ("/mode request", "* alice made #general request-only"),
    ("/accept carol", "* carol joined #general"),
    ("/e2e on", "* alice turned end-to-end encryption on in #general"),
    ("/kick bob", "* bob was kicked from #general by alice"),
    ("/ban bob", "* bob was banned from #general by alice"),
    ("/unban bob", "* bob was unbanned from #general by alice"),
]


async def test_a_governance_command_tells_its_text_issuer_the_news_once(
        clients: Clients) -> None:
    """The event line is the news; the ok after it reads as an empty one (nothing,
    or "@label * ok"), as after /say."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    carol = await clients.user("carol")
    await clients.user("dave")
    await text_run(alice, None)
    for line, event in TOLD_ONCE:
        if line == "/accept carol":
            await carol.command("/join general")
            await text_run(alice, None)  # the request
        assert await text_run(alice, line) == [event], line
    assert await text_run(alice, "@t /topic Be kinder") == [
        "@t * alice set the topic of #general: Be kinder", "@t * ok"]


async def test_the_ok_keeps_its_sentence_where_no_event_said_it(clients: Clients) -> None:
    """Text keeps the sentence when the issuer got no event (a server admin outside
    the room, a change that changed nothing); JSON keeps every ok as it was."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await text_run(alice, "/e2e on")
    assert await text_run(alice, "/e2e on") == [
        "* #general is already end-to-end encrypted only."]
    root = await text_client(clients, "root")
    clients.server.services.accounts.require("root").is_admin = True
    assert await text_run(root, "/topic general From outside") == [
        "* The topic of #general is now: From outside"]
    bob = await clients.user("bob")  # a JSON connection
    await bob.command("/join general")
    await text_run(alice, "/promote bob")
    reply = await bob.command("/topic In JSON")  # labelled by the client
    assert reply.final["message"] == "The topic of #general is now: In JSON"
    [event] = [line for line in reply.lines if line["type"] == "event"]
    assert event["event"] == "topic" and event["label"] == reply.final["label"]


async def test_a_number_s_bounds_read_as_a_person_writes_them(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    assert await text_run(alice, "/ratelimit 2 2000000") == [
        "! bad-arguments: burst must be from 1 to 1,000,000. Usage: /ratelimit "
        "<messages-per-second> [burst] [room]  |  /ratelimit off [room]"]


async def test_help_ends_with_its_note_on_plain_lines_in_one_line(clients: Clients) -> None:
    client = await text_client(clients)
    lines = await text_run(client, "/help")
    assert lines[-2:] == [
        "Plain lines go to your current room; start one with // to send a leading /.",
        "* /help <command> shows one command."]
    assert max(len(line) for line in lines) < 80


async def test_a_refusal_names_a_parameter_as_the_usage_writes_it(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    assert await text_run(alice, "/resume") == [
        "! bad-arguments: missing <last-id>. Usage: /resume <last-id>"]
    assert await text_run(alice, "/resume x") == [
        '! bad-arguments: last-id must be a whole number of 0 or more, not "x". '
        "Usage: /resume <last-id>"]


async def test_a_table_is_aligned_as_a_terminal_shows_wide_characters(
        clients: Clients) -> None:
    """A CJK file name takes two columns a character: the columns after it still line
    up with the other rows (and a combining accent takes none)."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    for name in ("日本語の資料.txt", "plain.txt", "cafe\u0301.txt"):
        alice.send(f"/upload {name} 3")
        alice.send("QUJD")
        await text_run(alice, ".")
    assert (await text_run(alice, "/files"))[:4] == [
        "  id  name              size     type        uploader",
        "   1  日本語の資料.txt  3 bytes  text/plain  alice",
        "   2  plain.txt         3 bytes  text/plain  alice",
        "   3  cafe\u0301.txt          3 bytes  text/plain  alice"]


async def test_an_outsider_s_refusals_say_to_join_first(clients: Clients) -> None:
    """An error says what to do next: what only members of a room may do tells
    someone outside it to join, as /say always has."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create dev")
    alice.send("/upload a.txt 3")
    alice.send("QUJD")
    assert (await text_run(alice, "."))[-1] == "* uploaded a.txt as file 1."
    bob = await text_client(clients, "bob")
    refusals = {line: await text_run(bob, line) for line in (
        "/say dev hi", "/typing dev", "/history dev", "/files dev", "/download 1",
        "/keys room dev", "/switch dev")}
    for line, said in refusals.items():
        assert len(said) == 1 and said[0].startswith("! not-in-room: "), (line, said)
        assert said[0].endswith("; /join dev."), (line, said)


async def test_an_outsider_is_told_the_way_into_a_private_or_keyed_room(
        clients: Clients) -> None:
    """/join of a private room without an invitation, or of a keyed one without its
    key, is refused in turn: the refusal names what the room asks for instead."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create den private")
    await text_run(alice, "/create vault")
    await text_run(alice, "/mode +k pw vault")
    bob = await text_client(clients, "bob")
    for line in ("/say den hi", "/history den", "/files den", "/keys room den", "/switch den"):
        [said] = await text_run(bob, line)
        assert said.startswith("! not-in-room: ") and said.endswith(
            "; it is private: /join den once an admin of it /invites you."), (line, said)
    for line in ("/say vault hi", "/history vault", "/switch vault"):
        [said] = await text_run(bob, line)
        assert said.startswith("! not-in-room: ") and said.endswith(
            ": /join vault <key>."), (line, said)


async def test_a_history_cut_short_says_how_to_see_more(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    for n in range(3):
        await text_run(alice, f"line {n}")
    assert (await text_run(alice, "/history general 2"))[-1] == (
        "* 2 messages; /history general 200 shows up to 200.")
    assert (await text_run(alice, "/history general 5"))[-1] == "* 3 messages."


async def test_a_missing_file_or_token_says_where_to_look(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    for line in ("/download 7", "/rmfile 7"):
        assert await text_run(alice, line) == [
            "! no-such-file: there is no file 7; /files lists a room's files."]
    assert await text_run(alice, "/token revoke nope") == [
        '! no-such-token: you have no token named "nope"; /token list shows yours.']


async def test_a_labelled_broadcast_labels_its_issuer_s_copy(clients: Clients) -> None:
    """The notice reaches every connection; the issuer's copy is a line of its
    command's reply, so it carries the label, and only there."""
    root = await text_client(clients, "root")
    clients.server.services.accounts.require("root").is_admin = True
    other = await text_client(clients)
    assert await text_run(root, "@b /broadcast back at noon") == [
        "@b * [server] back at noon", "@b * Sent to 2 connections."]
    assert await text_run(other, None) == ["* [server] back at noon"]
    bob = await clients.user("bob")  # JSON
    await clients.server.services.accounts.set_admin(
        clients.server.services.accounts.require("bob"), True)
    reply = await bob.command("/broadcast in JSON")
    [notice] = reply.lines
    assert notice["text"] == "[server] in JSON" and notice["label"] == reply.final["label"]


async def test_a_sanction_s_length_is_told_with_its_event(clients: Clients) -> None:
    """The room's event names no length: the issuer of a timed ban or mute reads
    the sentence that does, after the event."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await text_run(alice, None)
    assert await text_run(alice, "/mute bob 10m") == [
        "* bob was muted in #general by alice", "* bob is muted in #general for 10m."]
    assert await text_run(alice, "/ban bob 2h spam") == [
        "* bob was banned from #general by alice (spam)",
        "* bob is banned from #general for 2h."]


async def test_a_part_of_a_mode_string_that_did_nothing_is_told_after_its_event(
        clients: Clients) -> None:
    """/mode +m+v bob with bob voiced showed the +m event alone: the sentence saying
    the +v did nothing was hidden as if the event had told it. It is shown after the
    event; a string whose every letter an event tells still shows the event alone,
    and JSON keeps its ok as it was."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await text_run(alice, "/voice bob")
    assert await text_run(alice, "/mode +m+v bob") == [
        "* alice changed #general: moderated (only voiced members and admins speak)",
        "* #general: moderated (only voiced members and admins speak); bob already has "
        "voice."]
    assert await text_run(alice, "/mode -m") == ["* alice changed #general: not moderated"]
    assert await text_run(alice, "@m /mode +m-v+v bob bob") == [
        "@m * alice changed #general: moderated (only voiced members and admins speak)",
        "@m * alice took the voice of bob in #general", "@m * alice gave bob voice in #general",
        "@m * ok"]
    json = await (await clients.user("alice")).command("/mode -m+v bob general")
    assert json.final["message"] == "#general: not moderated; bob already has voice."
    assert [line["event"] for line in json.lines if line["type"] == "event"] == ["modes"]


def test_the_docs_name_every_command_whose_news_is_its_event() -> None:
    """PROTOCOL.md §4 lists the commands whose text ok stays silent after their
    event: the declarations (``told_by_event``) and the list are the same."""
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    start = protocol.index("- A command whose news is a room event")
    listed = protocol[start:protocol.index("You read the event line once", start)]
    named = set(re.findall(r"`/([a-z0-9]+)`", listed))
    assert named == {cmd.name for cmd in commands.load().all() if cmd.told_by_event}
