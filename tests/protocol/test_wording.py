"""Wording a person on telnet reads: one sentence per situation, true and complete."""

from __future__ import annotations

import re
from pathlib import Path

from chatd.client import LineClient
from tests.helpers import PASSWORD, Clients, error_of, room_with, text_client, text_run

PROTOCOL_PATH = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
PROTOCOL = PROTOCOL_PATH.read_text()


async def test_a_text_mode_login_with_resume_shows_the_resume_token(clients: Clients) -> None:
    await clients.user("alice")
    person = await text_client(clients)
    [welcome] = await text_run(person, f"/login alice {PASSWORD} --resume")
    token = re.search(r"chatdr_\S+", welcome)
    assert welcome.startswith("* Welcome back, alice.") and token, welcome
    assert "(shown only now;" in welcome
    # The token shown is the one that works, and its use shows the next one.
    again = await text_client(clients)
    [resumed] = await text_run(again, f"/login --resume {token.group()}")
    following = re.search(r"chatdr_\S+", resumed)
    assert resumed.startswith("* Welcome back, alice.") and following
    assert following.group() != token.group()


async def test_a_json_login_keeps_the_resume_token_out_of_its_message(
        clients: Clients) -> None:
    """A program has the field; the message, which clients show and logs keep,
    does not carry the secret."""
    await clients.user("alice")
    bot = await clients.anonymous()
    reply = await bot.command(f"/login alice {PASSWORD} --resume")
    assert reply["resume"].startswith("chatdr_")
    assert "chatdr_" not in reply["message"] and "Resume token" not in reply["message"]


async def test_no_current_room_has_one_sentence_that_names_the_way_out(
        clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    nowhere = ("! no-room: you have no current room, and you are in no room: "
               "/join <room> or /create <room> first.")
    assert await text_run(alice, "hello") == [nowhere]
    assert await text_run(alice, "/me waves") == [nowhere]
    await text_run(alice, "/create dev")
    await text_run(alice, "/create general")
    await text_run(alice, "/logout")
    await text_run(alice, f"/login alice {PASSWORD}")  # two rooms: no current one
    elsewhere = ("! no-room: you have no current room: /switch <room> makes one of yours "
                 "(#dev, #general) current.")
    for line in ("hello", "/me waves", "/who", "/leave", "/topic", "/typing", "/mode"):
        assert await text_run(alice, line) == [elsewhere], line
    alice.send("/upload s.txt 3")
    alice.send("QUJD")
    assert (await text_run(alice, "."))[-1] == elsewhere


async def test_passwd_says_the_old_password_is_wrong_and_refuses_a_bot(
        clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    assert await text_run(alice, "/passwd wrong newpass") == [
        "! auth-failed: wrong old password."]
    owner = await clients.user("carol")
    token = (await owner.command("/bot create helper all"))["token"]
    bot = await text_client(clients)
    await text_run(bot, f"/login helper --token {token}")
    assert await text_run(bot, "/passwd x y") == [
        "! not-permitted: helper is a bot, and a bot has no password to change: it logs in "
        "with its tokens only."]


async def test_help_says_what_each_command_needs(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    needs = {
        "webhook": "an admin or the owner of the room, or a server admin.",
        "transfer": "the owner of the room, or a server admin.",
        "typing": "logged in; member of the room.",
        "history": "logged in; member of the room (server admins: any room).",
        "passwd": "logged in.",
        "register": "not logged in.",
    }
    for name, sentence in needs.items():
        lines = await text_run(alice, f"/help {name}")
        assert lines[1] == f"  Needs: {sentence}", (name, lines)
    mode = await text_run(alice, "/help mode")
    assert mode[1].startswith("  Needs: logged in; to change k l m s n t or v: an admin or ")


async def test_upload_counts_one_byte_and_names_the_missing_filename(
        clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    assert await text_run(alice, "/upload") == [
        "! bad-arguments: missing <filename>. Usage: /upload <filename> <size> [sha256] [room]"]
    alice.send("/upload s.txt 3 general")
    alice.send("QQ==")  # one byte
    lines = await text_run(alice, ".")
    assert lines[-1] == ("! bad-arguments: 1 byte arrived, but the upload announced 3. "
                         "Usage: /upload <filename> <size> [sha256] [room]")


async def test_a_word_neither_lifetime_nor_scope_is_named_so(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    [error] = await text_run(alice, "/token create x nosuchscope")
    assert error.startswith('! bad-arguments: "nosuchscope" is neither a scope (read, post, '
                            "moderate, admin, all) nor a lifetime (like 30s, 10m, 2h, 7d). "
                            "Usage: /token create"), error
    [bot] = await text_run(alice, "/bot create helper read soon")
    assert bot.startswith('! bad-arguments: ttl is a duration like'), bot
    [typo] = await text_run(alice, "/bot create helper read 7x")
    assert typo.startswith('! bad-arguments: ttl: "7x" is not a duration: use a number and a unit '
                           "(s, m, h, d or w), for example 30s, 10m, 2h, 7d, 1w or 1h30m. "
                           "Usage: /bot create"), typo


async def test_the_captured_kick_examples_are_what_the_server_says(clients: Clients) -> None:
    await room_with(clients, "alice", "bob")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/switch general")
    [refused] = await text_run(bob, "/kick alice")
    assert f"bob:   {refused}\n" in PROTOCOL
    for line in await text_run(bob, "/help kick"):
        assert f"bob:   {line}\n" in PROTOCOL
    message = (await (await clients.anonymous()).command("/schema kick"))["message"]
    assert f'{{"type":"ok","command":"schema","message":"{message}",' in PROTOCOL


async def test_quote_shows_its_line_as_required(clients: Clients) -> None:
    person = await text_client(clients)
    lines = await text_run(person, "/help quote")
    assert lines[0].startswith("  /quote <line>   "), lines
    assert await text_run(person, "/quote") == [
        "! bad-arguments: missing <line>, a command to run: /quote join general is "
        "/join general. Usage: /quote <line>"]
    schema = (await (await clients.anonymous()).command("/schema quote"))["schema"]
    assert schema["usage"] == "/quote <line>" and schema["params"][0]["optional"] is False


async def test_login_names_what_is_missing_in_the_common_style(clients: Clients) -> None:
    await clients.user("alice")
    person = await text_client(clients)
    usage = " Usage: /login <name> <password> [--resume]"
    for line, missing in (("/login --resume", "<resume-token>"), ("/login alice --token",
                                                                   "<token>"),
                          ("/login alice", "<password>"),
                          ("/login alice --resume", "<password>")):
        [error] = await text_run(person, line)
        assert error.startswith(f"! bad-arguments: missing {missing}.{usage}"), (line, error)
    [extra] = await text_run(person, "/login alice pw stray")
    assert extra.startswith(f"! bad-arguments: too many arguments.{usage}"), extra
    # None of these was a failed log-in: the address's failures are not charged.
    assert await text_run(person, f"/login alice {PASSWORD}") != []


async def test_login_with_a_token_but_no_name_names_the_missing_name(
        clients: Clients) -> None:
    """/login --token x was a password log-in of an account named "--token": an
    auth-failed, charged to the address as a failed log-in."""
    alice = await clients.user("alice")
    token = (await alice.command("/token create ci"))["token"]
    person = await text_client(clients)
    stats = clients.server.services.stats
    failures = stats.login_failures
    for line in (f"/login --token {token}", f"/login --TOKEN {token} --resume",
                 "/login --token"):
        [error] = await text_run(person, line)
        assert error.startswith("! bad-arguments: missing <name>. Usage: /login <name>"), error
        assert "--token <token>" in error, error
    assert stats.login_failures == failures
    bot = await clients.anonymous()
    refused = await error_of(bot, f"/login --token {token}")
    assert refused["code"] == "bad-arguments" and refused["message"].startswith(
        "missing <name>.")
    assert stats.login_failures == failures
    assert (await bot.command(f"/login alice --token {token}"))["user"] == "alice"


async def test_auth_names_its_missing_token_in_the_common_style(clients: Clients) -> None:
    # "/auth --resume" tried a token named "--resume": auth-failed, and a failed log-in
    # charged to the address, where every other command names what is missing.
    person = await text_client(clients)
    stats = clients.server.services.stats
    failures = stats.login_failures
    for line in ("/auth --resume", "/AUTH --Resume", "/auth"):
        assert await text_run(person, line) == [
            "! bad-arguments: missing <token>. Usage: /auth <token> [--resume]"], line
    assert stats.login_failures == failures
    bot = await clients.anonymous()
    assert (await error_of(bot, "/auth --resume"))["code"] == "bad-arguments"
    # /schema and /help describe the token as required, as it is.
    schema = (await bot.command("/schema auth"))["schema"]
    assert schema["usage"] == "/auth <token> [--resume]"
    assert [p["optional"] for p in schema["params"]] == [False, True]


async def test_a_room_id_that_names_no_room_is_called_an_id(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    assert await text_run(alice, "/join 999") == [
        "! no-such-room: there is no room with id 999. /rooms lists the rooms you can join."]
    assert await text_run(alice, "/join nosuchroom") == [
        '! no-such-room: there is no room "nosuchroom". /rooms lists the rooms you can join.']


async def test_errors_quote_what_was_typed_in_double_quotes_and_end_a_sentence(
        clients: Clients) -> None:
    person = await text_client(clients)
    [name] = await text_run(person, "/register al!ce secret-pw")
    assert name == ('! invalid-name: invalid user name "al!ce": use 1-24 characters, letters '
                    "A-Z a-z, digits 0-9, '_' or '-'.")
    await text_run(person, f"/register alice {PASSWORD}")
    [room] = await text_run(person, "/create 123")
    assert room == ('! invalid-name: invalid room name "123": a number alone is a room id; '
                    "add a letter.")
    await text_run(person, "/create dev")
    await clients.user("bob")
    [zero] = await text_run(person, "/ban bob dev 0s")
    assert zero == ('! bad-arguments: duration: invalid duration "0s": it must be longer than '
                    "zero. Usage: /ban <user> [room] [duration] [reason]")
    # The sentence ends before the usage every bad-arguments ends with.
    [token] = await text_run(person, "/token create bad/name")
    assert token.split(" Usage: ")[0] == ("! bad-arguments: a token's name is 1-32 letters, "
                                          "digits, '.', '_' or '-', not \"bad/name\".")
    [long] = await text_run(person, "/token create 3651d")
    assert long.split(" Usage: ")[0] == ('! bad-arguments: ttl: invalid duration "3651d": at '
                                         'most 10 years (3650d).')
    [huge] = await text_run(person, "/token create 99999999999d")
    assert huge.split(" Usage: ")[0] == ('! bad-arguments: ttl: invalid duration '
                                         '"99999999999d": at most 10 years (3650d).')


async def test_sanctions_use_one_preposition_and_reasons_in_parentheses(
        clients: Clients) -> None:
    await room_with(clients, "alice", "bob", room="mod")
    alice = await text_client(clients, "alice")
    bob = await text_client(clients, "bob")
    await text_run(alice, "/ban bob mod 1h spam")
    assert "* you are banned from #mod for 1h (spam)." in await text_run(bob, None)
    assert await text_run(alice, "/unban bob mod") == ["* bob was unbanned from #mod by alice"]
    assert "* you are no longer banned from #mod." in await text_run(bob, None)
    assert await text_run(alice, "/unban bob mod") == [
        "! bad-arguments: bob is not banned from #mod. Usage: /unban <user> [room]"]
    await text_run(bob, "/join mod")
    await text_run(alice, "/kick bob mod too loud")
    told = await text_run(bob, None)
    assert "* bob was kicked from #mod by alice (too loud)" in told
    assert "* alice kicked you from #mod (too loud)." in told


async def test_a_new_tokens_sentence_has_single_spaces(clients: Clients) -> None:
    alice = await text_client(clients, "alice")
    for line in ("/token create ci", "/bot create helper"):
        [made] = await text_run(alice, line)
        assert "  " not in made and made.endswith("--token <token>)."), made


async def test_every_usage_separates_its_forms_alike(clients: Clients) -> None:
    client = await clients.anonymous()
    usages = [c["usage"] for c in (await client.command("/help"))["commands"]]
    assert not [u for u in usages if "  or  " in u]
    assert sum("  |  " in u for u in usages) >= 6
    person = await text_client(clients)
    assert (await text_run(person, "/help login"))[0].startswith(
        "  /login <name> <password> [--resume]  |  /login <name> --token <token>")


async def test_stats_in_text_mode_are_rounded_with_units_and_audit_dates_are_full(
        clients: Clients) -> None:
    root = await text_client(clients, "root")
    clients.server.services.accounts.require("root").is_admin = True
    figures = dict(line.split(None, 1) for line in await text_run(root, "/stats")
                   if line.startswith("  ") and not line.startswith("  figure"))
    assert re.fullmatch(r"\d+s|\d+m( \d+s)?", figures["uptime"].strip()), figures
    assert re.fullmatch(r"\d+\.\d ms", figures["loop_lag"].strip()), figures
    assert re.fullmatch(r"\d+\.\d ms", figures["storage_flush_seconds"].strip()), figures
    assert re.fullmatch(r"\d+\.\d/s", figures["messages_per_second"].strip()), figures
    await text_run(root, "/create dev")
    audit = await text_run(root, "/audit dev")
    assert re.match(r"  \d{4}-\d\d-\d\d \d\d:\d\d  ", audit[1]), audit


async def test_the_captured_json_example_is_what_the_server_sends(clients: Clients) -> None:
    """PROTOCOL.md §5's "JSON example (captured)", line for line (the test server's
    clock stands still, so its times and ids are the same at every run)."""
    alice = await clients.user("alice")
    bob = await clients.user("bob", "battery-staple")
    for room in ("general", "dev"):
        await alice.command(f"/create {room}")
        await bob.command(f"/join {room}")
    for n in range(8):
        await alice.command(f"/say general warm-up {n}")
    await alice.command("/voice bob dev")  # the unread notification
    await bob.command("/logout")
    person = await LineClient.connect("127.0.0.1", clients.server.port)
    await person.line()  # the banner
    seen: list[str] = []

    async def run(label: str, line: str) -> None:
        person.send(f"@{label} {line}")
        seen.extend(await person.until(lambda got: f'"label":"{label}"}}' in got))

    try:
        for label, line in (("l1", "/format json"), ("l2", "/login bob battery-staple"),
                            ("s1", "/say general labelled say"), ("x", "/join nosuch"),
                            ("t", "/typing general"), ("h", "/help sticker")):
            await run(label, line)
        await alice.command("/promote bob general")
        seen.extend(await person.until(lambda got: '"notification"' in got))
        await alice.command("/mute bob general 10m")
        await run("sy", "/say general muted say")
    finally:
        await person.close()
    example = PROTOCOL[PROTOCOL.index("### JSON example (captured)"):]
    example = example[:example.index("\n---\n")]
    for line in seen:
        if '"event":"mute"' not in line and '"kind":"muted"' not in line:
            assert f"\n{line}\n" in example, line


async def test_the_scope_error_in_bots_md_is_what_the_server_sends(clients: Clients) -> None:
    owner = await clients.user("carol")
    token = (await owner.command("/bot create helper read"))["token"]
    await owner.command("/create general")
    bot = await text_client(clients)
    await text_run(bot, f"/login helper --token {token}")
    bot.send("/format json")
    await bot.line()  # its ok
    bot.send("/say general hi")
    refused = await bot.line()
    assert f"\n{refused}\n" in (PROTOCOL_PATH.parent / "BOTS.md").read_text()


async def test_a_room_named_after_the_number_is_told_to_come_first(clients: Clients) -> None:
    """``/history 5 general`` has the right number of words in the wrong order: not
    "too many arguments", but which goes first, and the line that works."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create general")
    await (await clients.user("bob")).command("/join general")
    assert await text_run(alice, None) == ["* bob joined #general"]
    for line, fixed, usage in (
            ("/history 5 general", "/history general 5", "/history [room] [n]"),
            ("/who 2 #general", "/who #general 2", "/who [room] [page]"),
            ("/files 2 general", "/files general 2", "/files [room] [page]"),
            ("/mute bob 10m general", "/mute bob general 10m",
             "/mute <user> [room] [duration]")):
        assert await text_run(alice, line) == [
            f"! bad-arguments: the room comes first: {fixed}. Usage: {usage}"], line
        assert (await text_run(alice, fixed))[-1].startswith("* "), fixed
    # A word that is no room is still one too many.
    assert await text_run(alice, "/history 5 extra") == [
        "! bad-arguments: too many arguments. Usage: /history [room] [n]"]


async def test_a_leave_that_ends_the_room_says_so(clients: Clients) -> None:
    """The last member's /leave ends the room: "You left #dev." alone let it seem
    to live on, until /rooms no longer listed it."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create dev")
    assert await text_run(alice, "/leave") == [
        "* You left #dev; it had no other member, so it has ended."]
    await text_run(alice, "/create hall")
    bob = await clients.user("bob")
    await bob.command("/join hall")
    assert await text_run(alice, "/leave hall") == [
        "* bob joined #hall",
        "* You left #hall; the one member left was no admin, so it has ended."]
    await text_run(alice, "/create open")
    await bob.command("/join open")
    await bob.command("/leave")  # the room goes on: no word of an ending
    assert await text_run(alice, None) == ["* bob joined #open", "* bob left #open"]
    await text_run(alice, "/create two")
    await bob.command("/join two")
    await text_run(alice, "/promote bob two")
    assert (await text_run(alice, "/leave two"))[-1] == "* You left #two."
    carol = await clients.user("carol")
    await carol.command("/create solo")
    left = await carol.command("/leave")
    assert left["terminated"] is True and left["message"].endswith("so it has ended.")


async def test_a_duration_split_in_two_words_is_refused_not_taken_for_a_reason(
        clients: Clients) -> None:
    # "/ban bob general 1 week" banned bob for good, with the reason "1 week": the
    # number alone is no duration, so the optional duration passed it by.
    alice, bob = await room_with(clients, "alice", "bob")
    for line in ("/ban bob general 1 week", "/mute bob 10 min", "/ban bob 2 h spam"):
        refused = await alice.command(line, check=False)
        assert refused["code"] == "bad-arguments", (line, refused.final)
        assert "is not a duration" in refused["message"] and "one word" in refused["message"]
    assert (await bob.command("/say general still here"))["id"] > 0  # neither banned nor muted
    # A reason may still start with a number.
    banned = await alice.command("/ban bob general 3 strikes")
    assert banned["until"] is None
    audit = await alice.command("/audit general 1")
    assert audit["entries"][-1]["reason"] == "3 strikes"


async def test_a_direct_message_to_a_room_says_how_a_room_is_written_to(
        clients: Clients) -> None:
    alice, _ = await room_with(clients, "alice", "bob")
    refused = await alice.command("/msg #general hi all", check=False)
    assert (refused["code"], refused["message"]) == (
        "no-such-user", "#general is a room, not a user: /say general <text> posts to it.")
    nobody = await alice.command("/msg #nosuch hi", check=False)
    assert nobody["code"] == "no-such-user" and "is a room" not in nobody["message"]


async def test_audit_with_its_count_before_the_room_says_the_room_comes_first(
        clients: Clients) -> None:
    alice, _ = await room_with(clients, "alice", "bob")
    refused = await alice.command("/audit 5 general", check=False)
    assert refused["code"] == "bad-arguments"
    assert refused["message"].startswith("the room comes first: /audit general 5. Usage: /audit")
    assert (await alice.command("/audit general 5"))["room"] == "general"


def _screens_of(heading: str) -> list[tuple[str, str | None, str | None]]:
    """The transcript under ``heading``: (person, what they typed, or what their
    screen showed), line by line."""
    example = PROTOCOL[PROTOCOL.index(heading):]
    example = example[example.index("```text\n") + len("```text\n"):]
    lines = example[:example.index("```")].splitlines()
    # A person's name and its mark (> typed, : shown), then spaces to one column.
    marked = [re.match(r"(\w+)([>:])", line) for line in lines]
    column = max(len(found.group(1)) for found in marked if found) + 2
    steps: list[tuple[str, str | None, str | None]] = []
    for line, found in zip(lines, marked, strict=True):
        assert found is not None and not line[found.end():column].strip(), line
        person, mark, text = found.group(1), found.group(2), line[column:]
        steps.append((person, text, None) if mark == ">" else (person, None, text))
    return steps


async def test_the_captured_text_example_is_what_each_screen_shows(clients: Clients) -> None:
    """PROTOCOL.md §4's "Example (captured from the server)": what alice and bob type,
    and each one's screen line for line (a connection's lines keep their order, so
    the two screens are read apart; the clock's [HH:MM] is the test server's)."""
    screens: dict[str, LineClient] = {}
    stamp = re.compile(r"^\[\d\d:\d\d\] ")
    for person, typed, said in _screens_of("### Example (captured from the server)"):
        if person not in screens:
            screens[person] = await clients.raw()
            if person != "alice":  # bob's account was made off screen, after alice's banner
                await screens[person].line()
                await text_run(screens[person], f"/register {person} {PASSWORD}")
        if typed is not None:
            screens[person].send(typed)
        else:
            shown = await screens[person].line()
            assert stamp.sub("[15:30] ", shown) == said, (person, said)
    for screen in screens.values():
        assert await text_run(screen, None) == []  # nothing the example leaves out


async def test_the_captured_encryption_example_is_what_each_screen_shows(
        clients: Clients) -> None:
    """PROTOCOL.md §17.5, up to its first shortened envelope: alice in text mode, bob
    in JSON, both in #secret, bob's key published off screen."""
    alice = await text_client(clients, "alice")
    await text_run(alice, "/create secret")
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join secret")
    await text_run(bob, "/keys publish dU6SQM9gePETIm5cWxwwq0aCiFOZNgbpHHJ72R1YXmg=")
    await text_run(alice, None)  # bob's join
    bob.send("/format json")
    await bob.line()
    screens = {"alice": alice, "bob": bob}
    for person, typed, said in _screens_of("### 17.5 Example (captured"):
        if "…" in (typed or said or ""):
            break  # shortened envelopes: not lines a server sends
        if typed is not None:
            screens[person].send(typed)
        else:
            assert await screens[person].line() == said, (person, said)


async def test_the_captured_files_example_is_what_each_screen_shows(clients: Clients) -> None:
    """PROTOCOL.md §16.7's text part: carol and dave in #lobby, where the file
    shared is file 5 (carol shared four before, elsewhere)."""
    carol = await text_client(clients, "carol")
    await text_run(carol, "/create scratch")
    for n in range(4):
        carol.send(f"/upload old{n}.txt 1")
        await text_run(carol, "YQ==\n.")
    await text_run(carol, "/create lobby")
    dave = await text_client(clients, "dave")
    await text_run(dave, "/join lobby")
    await text_run(carol, None)  # dave's join
    screens = {"carol": carol, "dave": dave}
    heading = "### 16.7 Example (captured)"
    for person, typed, said in _screens_of(heading):
        if typed is not None:
            screens[person].send(typed)
        else:
            assert await screens[person].line() == said, (person, said)
    for screen in screens.values():
        assert await text_run(screen, None) == []  # nothing the example leaves out
