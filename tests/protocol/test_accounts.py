"""Accounts over the wire: register, login, logout, passwd, whoami, quit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bcrypt
import pytest

from chatd.client import Reply
from chatd.domain.clock import ManualClock
from tests.helpers import (
    PASSWORD,
    ChatServer,
    Clients,
    error_of,
    settle,
    start_server,
    text_client,
    text_run,
)

# -- /register ---------------------------------------------------------------------


async def test_register_logs_in_and_replies_with_the_account(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command(f"/register alice {PASSWORD}")
    assert reply["command"] == "register"
    assert reply["user"] == "alice"
    assert reply["admin"] is False
    assert reply["rooms"] == []
    assert reply["notifications"] == 0
    who = await client.command("/whoami")
    assert who["user"] == "alice"


async def test_register_keeps_the_case_of_the_name(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command(f"/register Alice_01 {PASSWORD}")
    assert reply["user"] == "Alice_01"


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice", "aLiCe"])
async def test_register_refuses_a_taken_name_case_insensitively(
        clients: Clients, taken: str) -> None:
    await clients.user("alice")
    other = await clients.anonymous()
    error = await error_of(other, f"/register {taken} {PASSWORD}")
    assert error["code"] == "name-taken"
    assert error["command"] == "register"
    # Refused means not logged in.
    assert (await error_of(other, "/whoami"))["code"] == "not-logged-in"


@pytest.mark.parametrize("name", ["bad!name", "x" * 25, "émile", "a.b", "#chan", "dot.",
                                  "\u212aelvin", "--token", "--Resume", "--x"])
async def test_register_refuses_an_invalid_name(clients: Clients, name: str) -> None:
    client = await clients.anonymous()
    assert (await error_of(client, f"/register {name} {PASSWORD}"))["code"] == "invalid-name"


async def test_a_name_that_reads_as_an_option_is_refused_with_why(clients: Clients) -> None:
    # An account named --resume could never log in with its password: /login --resume
    # <pw> is a resume login. A single dash starts a name as it did.
    client = await clients.anonymous()
    refused = await error_of(client, f"/register --resume {PASSWORD}")
    assert refused["code"] == "invalid-name" and "reads as an option" in refused["message"]
    assert (await error_of(client, f"/login --resume {PASSWORD}"))["code"] == "auth-failed"
    assert (await client.command(f"/register -dash {PASSWORD}"))["user"] == "-dash"


async def test_register_accepts_the_longest_name(clients: Clients) -> None:
    client = await clients.anonymous()
    name = "a-" * 12
    assert (await client.command(f"/register {name} {PASSWORD}"))["user"] == name


@pytest.mark.parametrize("password", ["abc", "x" * 73, "é" * 37])
async def test_register_refuses_a_password_of_bad_length(clients: Clients, password: str) -> None:
    client = await clients.anonymous()
    assert (await error_of(client, f"/register alice {password}"))["code"] == "bad-arguments"
    assert clients.server.services.accounts.find("alice") is None


@pytest.mark.parametrize("password", ["abcd", "x" * 72])
async def test_register_accepts_passwords_at_the_length_limits(
        clients: Clients, password: str) -> None:
    client = await clients.anonymous()
    await client.command(f"/register alice {password}")
    again = await clients.anonymous()
    assert (await again.command(f"/login alice {password}"))["user"] == "alice"


@pytest.mark.parametrize("line", [f"/register bob {PASSWORD}", f"/login alice {PASSWORD}"])
async def test_register_and_login_refused_when_already_logged_in(
        clients: Clients, line: str) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, line))["code"] == "already-logged-in"
    assert (await alice.command("/whoami"))["user"] == "alice"


@pytest.fixture
async def closed_server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[ChatServer]:
    server = await start_server(tmp_path / "closed.db", clock=clock,
                                accounts__registration="admin")
    yield server
    await server.stop()


async def test_register_refused_when_registration_is_for_admins(
        closed_server: ChatServer) -> None:
    opened = Clients(closed_server)
    try:
        client = await opened.anonymous()
        assert (await error_of(client, f"/register alice {PASSWORD}"))["code"] == \
            "registration-closed"
        assert closed_server.services.accounts.find("alice") is None
        text = await opened.raw()
        await text.line()
        lines = await text_run(text, f"/register bob {PASSWORD}")
        assert len(lines) == 1 and lines[0].startswith("! registration-closed:")
    finally:
        await opened.close()


# -- /login -------------------------------------------------------------------------


async def test_login_failures_do_not_tell_which_accounts_exist(clients: Clients) -> None:
    await clients.user("alice")
    client = await clients.anonymous()
    wrong_password = await error_of(client, "/login alice not-the-password")
    unknown_user = await error_of(client, f"/login nobody {PASSWORD}")
    invalid_name = await error_of(client, f"/login bad!name {PASSWORD}")
    for error in (wrong_password, unknown_user, invalid_name):
        assert error["code"] == "auth-failed"
        assert error["message"] == wrong_password["message"]
    assert (await error_of(client, "/whoami"))["code"] == "not-logged-in"
    assert (await client.command(f"/login alice {PASSWORD}"))["user"] == "alice"


async def test_login_reply_lists_rooms_and_notification_count(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/create dev")
    await alice.command("/logout")
    bob = await clients.user("bob")
    await bob.command("/msg alice are you there?")
    again = await clients.anonymous()
    reply = await again.command(f"/login alice {PASSWORD}")
    assert reply["command"] == "login"
    assert reply["user"] == "alice"
    assert reply["rooms"] == ["dev", "general"]
    assert reply["notifications"] == 1
    assert reply["direct_messages"] == 1


async def test_login_sentence_names_a_few_rooms_and_counts_the_rest(clients: Clients) -> None:
    alice = await clients.user("alice")
    rooms = [f"room{i:02}" for i in range(25)]
    for room in rooms:
        await alice.command(f"/create {room}")
    await alice.command("/logout")
    again = await clients.anonymous()
    reply = await again.command(f"/login alice {PASSWORD}")
    assert reply["rooms"] == rooms  # the field keeps every room
    text = await text_client(clients)
    [welcome] = await text_run(text, f"/login alice {PASSWORD}")
    assert welcome == ("* Welcome back, alice. Your rooms (25): #room00, #room01, #room02, "
                       "#room03, #room04 and 20 more: /myrooms lists them.")
    assert "#room05" not in reply.final["message"]


async def test_login_with_no_rooms_lists_none(clients: Clients) -> None:
    await clients.user("alice")
    client = await clients.anonymous()
    reply = await client.command(f"/login alice {PASSWORD}")
    assert reply["rooms"] == [] and reply["notifications"] == 0


# -- /logout ------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["/whoami", "/create general", "/join general", "/rooms",
                                  "/msg bob hi", "/history general", "/myrooms", "/logout",
                                  "/passwd a b", "/say general hi", "/me waves"])
async def test_after_logout_login_commands_say_not_logged_in(
        clients: Clients, line: str) -> None:
    alice = await clients.user("alice")
    await clients.user("bob")
    await alice.command("/create general")
    reply = await alice.command("/logout")
    assert reply["command"] == "logout"
    assert (await error_of(alice, line))["code"] == "not-logged-in"
    # Commands anyone may use still work, and so does logging in again.
    assert (await alice.command("/ping"))["command"] == "ping"
    assert (await alice.command(f"/login alice {PASSWORD}"))["rooms"] == ["general"]


async def test_after_logout_plain_lines_say_not_logged_in(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/logout")
    error = await alice.say("anyone?")
    assert error["type"] == "error" and error["code"] == "not-logged-in"


async def test_logged_out_connection_stops_receiving_room_messages(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    await alice.command("/logout")
    await bob.say("still there?")
    assert [e for e in await settle(alice) if e["type"] == "message"] == []
    # The membership itself stays with the account.
    who = await bob.command("/who general")
    assert {m["user"]: m["online"] for m in who["members"]} == {"alice": False, "bob": True}


# -- /passwd ------------------------------------------------------------------------


async def test_passwd_needs_the_old_password_and_the_new_one_works(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/passwd wrong-old new-password"))["code"] == "auth-failed"
    assert (await error_of(alice, f"/passwd {PASSWORD} abc"))["code"] == "bad-arguments"
    reply = await alice.command(f"/passwd {PASSWORD} new-password")
    assert reply["command"] == "passwd"
    other = await clients.anonymous()
    assert (await error_of(other, f"/login alice {PASSWORD}"))["code"] == "auth-failed"
    assert (await other.command("/login alice new-password"))["user"] == "alice"


async def test_passwd_closes_the_other_connections_and_counts_the_valid_tokens(
        clients: Clients, clock: ManualClock) -> None:
    first = await clients.user("alice")
    second = await clients.user("alice")
    text = await text_client(clients, "alice")
    bob = await clients.user("bob")
    await first.command("/token create bot")
    await first.command("/token create short 1h")
    clock.advance(7200)  # "short" has expired
    reply = await first.command(f"/passwd {PASSWORD} new-password")
    assert reply["closed_connections"] == 2 and reply["valid_tokens"] == 1
    assert reply.final["message"] == (
        "Your password is changed. Your 2 other connections were closed. 1 API token can "
        "still log in as you: /token list shows it, /token revoke <name> revokes one.")
    told = await second.next_event()
    assert told["type"] == "notice" and "password was changed" in told["text"]
    assert (await second.next_event())["type"] == "closed"
    assert (await text.line()).startswith("* your password was changed")
    with pytest.raises(ConnectionError):
        await text.line()
    # This connection stays, and so does everyone else's.
    assert (await first.command("/whoami"))["connections"] == 1
    assert (await bob.command("/whoami"))["connections"] == 1


async def test_passwd_alone_says_no_token_logs_in(clients: Clients) -> None:
    alice = await clients.user("alice")
    reply = await alice.command(f"/passwd {PASSWORD} new-password")
    assert reply["closed_connections"] == 0 and reply["valid_tokens"] == 0
    assert reply.final["message"] == "Your password is changed. No API token can log in as you."


class HeldCheck:
    """Wraps ``bcrypt.checkpw``: the first check after ``hold()`` waits for ``release()``."""

    def __init__(self, real: Callable[[bytes, bytes], bool]) -> None:
        self._real = real
        self._armed = False
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self._released = threading.Event()

    def hold(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._released.set()

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        with self._lock:
            held, self._armed = self._armed, False
        result = self._real(password, hashed)
        if held:
            self.entered.set()
            self._released.wait(10)
        return result


async def test_a_login_checked_against_the_old_password_during_passwd_fails(
        clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await clients.user("alice")
    held = HeldCheck(bcrypt.checkpw)
    monkeypatch.setattr(bcrypt, "checkpw", held)
    late = await clients.anonymous()
    held.hold()
    login = asyncio.ensure_future(late.command(f"/login alice {PASSWORD}", check=False))
    try:
        # The old password matched; the change happens before that login ends.
        assert await asyncio.to_thread(held.entered.wait, 10)
        assert (await alice.command(f"/passwd {PASSWORD} new-password"))["closed_connections"] \
            == 0
    finally:
        held.release()
    assert (await login).final["code"] == "auth-failed"
    assert (await alice.command("/whoami"))["connections"] == 1


async def test_concurrent_password_changes_leave_one_password_and_one_connection(
        clients: Clients, clock: ManualClock) -> None:
    password = PASSWORD
    for round_ in range(15):
        clock.advance(60)  # refills the failed-login buckets the check below takes from
        first, second = await clients.user("alice", password), await clients.user("alice", password)
        changes = [f"/passwd {password} first-{round_}", f"/passwd {password} second-{round_}"]
        sent = [c.command(line, check=False)
                for c, line in zip((first, second), changes, strict=True)]
        replies = await asyncio.gather(*sent, return_exceptions=True)
        won = [i for i, r in enumerate(replies) if isinstance(r, Reply) and r.ok]
        assert len(won) == 1, replies
        winner = (first, second)[won[0]]
        password = changes[won[0]].split()[-1]
        assert (await winner.command("/whoami"))["connections"] == 1
        check = await clients.anonymous()
        loser_password = changes[1 - won[0]].split()[-1]
        assert (await error_of(check, f"/login alice {loser_password}"))["code"] == "auth-failed"
        assert (await check.command(f"/login alice {password}"))["user"] == "alice"
        await clients.close()


async def test_passwd_missing_argument_is_bad_arguments(clients: Clients) -> None:
    alice = await clients.user("alice")
    error = await error_of(alice, f"/passwd {PASSWORD}")
    assert error["code"] == "bad-arguments" and "/passwd <old> <new>" in error["message"]


# -- /whoami ------------------------------------------------------------------------


async def test_whoami_fields(clients: Clients) -> None:
    alice = await clients.user("alice")
    who = await alice.command("/whoami")
    assert who["command"] == "whoami"
    assert who["user"] == "alice" and who["admin"] is False
    assert who["rooms"] == [] and who["current_room"] is None
    assert who["connections"] == 1 and isinstance(who["session"], int)
    await alice.command("/create general")
    await alice.command("/create dev")
    second = await clients.user("alice")
    who = await alice.command("/whoami")
    assert who["rooms"] == ["dev", "general"]
    assert who["current_room"] == "dev"
    assert who["connections"] == 2
    other = await second.command("/whoami")
    assert other["session"] != who["session"]
    assert other["current_room"] is None  # two rooms: the new connection picks none


# -- /quit --------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["/quit", "/quit see you all"])
async def test_quit_closes_the_connection_after_its_ok(clients: Clients, line: str) -> None:
    alice = await clients.user("alice")
    reply = await alice.command(line)
    assert reply["command"] == "quit"
    assert (await alice.next_event(timeout=5))["type"] == "closed"
    user = clients.server.services.accounts.find("alice")
    assert user is not None and not user.online


async def test_quit_works_before_login_in_text_mode(clients: Clients) -> None:
    client = await text_client(clients)
    client.send("/quit")
    assert (await client.line()).startswith("* ")
    with pytest.raises(ConnectionError):
        await client.line(timeout=5)


# -- one user, two connections -----------------------------------------------------


async def test_one_user_on_two_connections_gets_room_messages_on_both(clients: Clients) -> None:
    first = await clients.user("alice")
    await first.command("/create general")
    second = await clients.user("alice")
    bob = await clients.user("bob")
    await bob.command("/join general")
    sent = await bob.say("hello alice")
    for connection in (first, second):
        got = await connection.next_event(lambda e: e.get("type") == "message", timeout=5)
        assert got["id"] == sent["id"] and got["room"] == "general"
        assert got["from"] == "bob" and got["text"] == "hello alice"
    # The sender's other connection sees what one connection said.
    mine = await first.say("hi bob")
    echoed = await second.next_event(lambda e: e.get("type") == "message", timeout=5)
    assert echoed["id"] == mine["id"] and echoed["from"] == "alice"


async def test_one_user_on_two_connections_gets_direct_messages_on_both(
        clients: Clients) -> None:
    first = await clients.user("alice")
    second = await clients.user("alice")
    bob = await clients.user("bob")
    sent = await bob.command("/msg alice psst")
    for connection in (first, second):
        got = await connection.next_event(lambda e: e.get("type") == "message", timeout=5)
        assert got["id"] == sent["id"] and got["to"] == "alice" and got["from"] == "bob"
        assert "room" not in got
    # What one of alice's connections sends shows on her other one too.
    reply = await first.command("/msg bob back at you")
    copy = await second.next_event(lambda e: e.get("type") == "message", timeout=5)
    assert copy["id"] == reply["id"] and copy["to"] == "bob" and copy["from"] == "alice"


# -- text mode --------------------------------------------------------------------


async def test_account_commands_in_text_mode(clients: Clients) -> None:
    client = await text_client(clients)
    [welcome] = await text_run(client, f"/register alice {PASSWORD}")
    assert welcome.startswith("* ") and "alice" in welcome
    [whoami] = await text_run(client, "/whoami")
    assert whoami.startswith("* ") and "alice" in whoami
    [taken] = await text_run(client, f"/login alice {PASSWORD}")
    assert taken.startswith("! already-logged-in:")
    [bye] = await text_run(client, "/logout")
    assert bye.startswith("* ")
    [failed] = await text_run(client, "/login alice wrong-password")
    assert failed.startswith("! auth-failed:")
    [back] = await text_run(client, f"/login ALICE {PASSWORD}")
    assert back.startswith("* ") and "alice" in back
