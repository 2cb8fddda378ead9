"""The example bots (examples/bots/) against a real server; the assistant against a
local stub of a chat-completions endpoint that the test starts (no model)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chatd.client import ChatClient
from chatd.client.sdk import Bot, FileResumeTokens, ManualClock, MemoryResumeTokens, cli
from examples.bots import assistant, echo, moderate, remind
from tests.client.helpers import bot_token, fixed_backoff, said, started, stopped, until
from tests.helpers import ChatServer, Clients, settle


@pytest.fixture
def scopes() -> str:
    """The bot token's scopes: the default ones unless a test asks for others."""
    return ""


@pytest.fixture
async def room(server: ChatServer, clients: Clients, scopes: str) -> tuple[ChatClient, str]:
    """alice in #general; the bot's token."""
    token = await bot_token(clients, "helper", scopes)
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/invite helper general")
    await settle(alice)
    return alice, token


@pytest.fixture
async def bot(server: ChatServer, room: tuple[ChatClient, str]) -> AsyncIterator[Bot]:
    made = Bot("127.0.0.1", server.port, user="helper", token=room[1], rooms=["general"])
    yield made
    await made.stop()


async def run(bot: Bot) -> asyncio.Task[None]:
    return await started(bot)


# -- echo ----------------------------------------------------------------------------------


async def test_echo_bot(bot: Bot, room: tuple[ChatClient, str], clients: Clients) -> None:
    alice, _ = room
    echo.install(bot)
    task = await run(bot)
    await alice.command("/say general !ping")
    assert (await said(alice, "pong"))["from"] == "helper"
    await alice.command("/say general @helper repeat after me")
    assert (await said(alice, "repeat after me"))["from"] == "helper"
    await alice.command("/msg helper just us")
    got = await said(alice, "just us")
    assert (got["from"], got["to"]) == ("helper", "alice")
    await alice.command("/create den private")
    await alice.command("/invite helper den")
    await until(lambda: "den" in bot.rooms, "the echo bot to join #den")
    assert echo.without_mention("Helper, hi there", "helper") == "hi there"
    await stopped(bot, task)


# -- reminders -------------------------------------------------------------------------------


async def test_reminder_bot_with_a_controlled_clock(bot: Bot,
                                                    room: tuple[ChatClient, str]) -> None:
    alice, _ = room
    clock = ManualClock()
    reminders = remind.Reminders(bot, clock)
    task = await run(bot)
    await alice.command("/say general !remind 10m stretch your legs")
    assert "I will remind you in 10m" in str((await said(alice, "remind you"))["text"])
    await alice.command("/say general !remind 1h30m call bob")
    await said(alice, "remind you in 1h30m")
    await alice.command("/say general !reminders")
    await said(alice, "alice: 2 reminders pending")
    await until(lambda: clock.sleepers == 2, "both reminders to wait")

    clock.advance(9 * 60)
    await alice.command("/ping")
    assert not [e for e in await settle(alice) if "reminder:" in str(e.get("text"))]
    clock.advance(60)
    got = await said(alice, "reminder:")
    assert (got["room"], got["text"]) == ("general", "alice: reminder: stretch your legs")
    clock.advance(80 * 60)
    assert (await said(alice, "reminder:"))["text"] == "alice: reminder: call bob"
    await until(lambda: reminders.pending["alice"] == 0, "no reminder pending")

    for wrong in ("!remind soon do it", "!remind 10m", "!remind 31d too late", "!remind 0s x"):
        await alice.command(f"/say general {wrong}")
    answers = [str((await said(alice, "")).get("text")) for _ in range(4)]
    assert answers[:2] == [remind.USAGE] * 2
    assert answers[2:] == ["a reminder is for 1 second to 30 days from now."] * 2
    await alice.command("/msg helper !remind 5s in private")
    await said(alice, "I will remind you in 5s")
    await until(lambda: clock.sleepers == 1, "the private reminder to wait")
    clock.advance(5)
    assert (await said(alice, "in private"))["to"] == "alice"
    await stopped(bot, task)


async def test_a_reminder_due_while_the_bot_reconnects_is_said_once_it_is_back(
        server: ChatServer, room: tuple[ChatClient, str]) -> None:
    alice, token = room
    bot = Bot("127.0.0.1", server.port, user="helper", token=token, rooms=["general"],
              backoff=fixed_backoff(0.3))
    clock = ManualClock()
    remind.Reminders(bot, clock)
    task = await run(bot)
    await alice.command("/say general !remind 1s stretch")
    await said(alice, "I will remind you in 1s")
    await until(lambda: clock.sleepers == 1, "the reminder to wait")
    assert bot.client is not None
    await bot.client.close()
    await until(lambda: not bot.connected.is_set(), "the bot to notice")
    clock.advance(1)  # due while the bot is away
    got = await said(alice, "reminder:")
    assert got["text"] == "alice: reminder: stretch" and bot.connections == 2
    await stopped(bot, task)


def test_durations() -> None:
    assert remind.parse_duration("90s") == 90
    assert remind.parse_duration("1h30m") == 5400
    assert remind.parse_duration("2D") == 172800
    assert remind.parse_duration("soon") is None
    assert remind.parse_duration("10") is None


async def test_reminders_per_person_are_bounded(bot: Bot, room: tuple[ChatClient, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    alice, _ = room
    monkeypatch.setattr(remind, "MAX_PER_USER", 1)
    remind.Reminders(bot, ManualClock())
    task = await run(bot)
    await alice.command("/say general !remind 1m one")
    await said(alice, "I will remind you")
    await alice.command("/say general !remind 1m two")
    await said(alice, "you have 1 reminders pending already")
    await stopped(bot, task)


# -- moderation -----------------------------------------------------------------------------


@pytest.mark.parametrize("scopes", ["read,post,moderate"])  # /mute needs moderate
async def test_moderation_mutes_a_flooder_and_answers_rules(
        server: ChatServer, bot: Bot, room: tuple[ChatClient, str], clients: Clients) -> None:
    alice, _ = room
    await alice.command("/join general")
    clock = ManualClock()
    moderate.Moderator(bot, moderate.Policy(limit=3, window=10, mute="5m", rules="Be kind."),
                       clock, room_rules={"den": "Whisper."})
    task = await run(bot)
    await alice.command("/promote helper general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    for n in range(3):  # three in the window: fine
        await bob.command(f"/say general calm {n}")
        clock.advance(4)
    for n in range(3):  # then four within ten seconds: a flood
        await bob.command(f"/say general flood {n}")
    got = await said(alice, "was muted")
    assert got["text"] == "bob was muted for 5m: more than 3 messages in 10 s."
    refused = await bob.command("/say general one more", check=False)
    assert refused.final["code"] == "muted"
    await bob.command("/say general !rules", check=False)  # muted: it never arrives
    await alice.command("/say general !rules")
    assert (await said(alice, "rules of"))["text"] == "rules of #general: Be kind."

    # Without the power to mute, it says so instead.
    await alice.command("/demote helper general")
    carol = await clients.user("carol")
    await carol.command("/join general")
    for n in range(4):
        await carol.command(f"/say general spam {n}")
    assert "cannot mute them (not-permitted)" in str((await said(alice, "flooding"))["text"])
    await stopped(bot, task)


async def test_moderation_without_the_moderate_scope_says_so(
        bot: Bot, room: tuple[ChatClient, str], clients: Clients) -> None:
    """A read,post token (the default) cannot mute, even for a room admin."""
    alice, _ = room
    await alice.command("/join general")
    moderate.Moderator(bot, moderate.Policy(limit=1, window=10), ManualClock())
    task = await run(bot)
    await alice.command("/promote helper general")
    bob = await clients.user("bob")
    await bob.command("/join general")
    for n in range(2):
        await bob.command(f"/say general flood {n}")
    assert "cannot mute them (scope)" in str((await said(alice, "flooding"))["text"])
    await stopped(bot, task)


async def test_the_moderation_bots_help_names_tokens_that_can_mute(clients: Clients) -> None:
    # Each way the help gives to make the bot's token, run by its owner as written,
    # gives the bot (not the owner, and not by a login the bot cannot make: a bot has
    # no password) a token with the moderate scope.
    doc = moderate.__doc__ or ""
    made = [cmd for cmd in re.findall(r"``(/[^`]+)``", " ".join(doc.split()))
            if cmd.startswith(("/bot create", "/bot token", "/token create"))]
    assert len(made) >= 2, made
    alice = await clients.user("alice")
    for command in made:
        answer = await alice.command(command)
        assert answer["user"] == "modbot" and "moderate" in answer["scopes"], command


def test_moderation_rules_from_the_command_line() -> None:
    made = moderate.cli.parser("x")
    made.add_argument("--rules", action="append", default=[])
    args = made.parse_args(["--user", "m", "--rules", "Be nice.", "--rules", "#dev=Code only."])
    assert moderate._rules(args) == ("Be nice.", {"dev": "Code only."})


# -- the assistant ----------------------------------------------------------------------------


class StubModel:
    """A chat-completions endpoint on loopback: records requests, answers canned text."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer = "A mutex lets one task in at a time."
        self.status = 200
        self.release = threading.Event()
        self.release.set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests.append({"path": self.path, **json.loads(body)})
                stub.headers.append(dict(self.headers))
                stub.release.wait(8)
                reply = json.dumps({"choices": [{"message": {
                    "role": "assistant", "content": stub.answer}}]}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def model() -> Iterator[StubModel]:
    stub = StubModel()
    yield stub
    stub.close()


async def test_assistant_answers_mentions_in_rooms_that_opted_in(
        server: ChatServer, bot: Bot, room: tuple[ChatClient, str], clients: Clients,
        model: StubModel) -> None:
    alice, _ = room
    await alice.command("/join general")
    endpoint = assistant.Endpoint(model.url, key="sk-test", model="tiny", timeout=5)
    helper = assistant.Assistant(bot, endpoint, clock=ManualClock())
    task = await run(bot)
    bob = await clients.user("bob")
    await bob.command("/join general")

    await alice.command("/say general helper: what is a mutex?")
    await alice.command("/ping")
    assert model.requests == []  # the room has not opted in: nothing leaves
    await bob.command("/say general !assistant on")
    await said(alice, "only the room's owner or an admin")
    await alice.command("/say general !assistant on")
    await said(alice, "the assistant is now on in #general")
    await bob.command("/say general we were talking about locks")
    await alice.command("/say general helper: what is a mutex?")
    got = await said(alice, "A mutex")
    assert (got["from"], got["room"]) == ("helper", "general")

    (request,) = model.requests
    assert request["path"] == "/v1/chat/completions" and request["model"] == "tiny"
    assert model.headers[0]["Authorization"] == "Bearer sk-test"
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "user", "user"]
    assert "bob: we were talking about locks" in request["messages"][1]["content"]
    assert request["messages"][2]["content"] == "alice asks: helper: what is a mutex?"

    await alice.command("/msg helper hello in private")
    assert (await said(alice, "A mutex"))["to"] == "alice"
    await alice.command("/say general !assistant off")
    await said(alice, "the assistant is now off")
    await alice.command("/say general helper: still there?")
    await settle(alice)
    assert len(model.requests) == 2 and "general" not in helper.rooms
    await stopped(bot, task)


async def test_assistant_limits_and_failures(server: ChatServer, bot: Bot,
                                             room: tuple[ChatClient, str],
                                             model: StubModel) -> None:
    alice, _ = room
    await alice.command("/join general")
    clock = ManualClock()
    endpoint = assistant.Endpoint(model.url, timeout=5)
    assistant.Assistant(bot, endpoint, assistant.Limits(room_rate=60, user_rate=1, burst=2),
                        clock, rooms={"general"})
    task = await run(bot)

    model.release.clear()  # the model is slow: a second question waits its turn
    await alice.command("/say general helper: first?")
    await until(lambda: len(model.requests) == 1, "the first question to reach the model")
    await alice.command("/say general helper: second?")
    await said(alice, "one moment, still on the last one")
    model.release.set()
    await said(alice, "A mutex")

    await alice.command("/say general helper: third?")
    await said(alice, "A mutex")
    await alice.command("/say general helper: fourth?")  # a burst of 2: the third is refused
    await said(alice, "too many questions")
    clock.advance(60)  # one token a minute comes back
    model.answer = "\n".join(f"line {n}" for n in range(10))
    await alice.command("/say general helper: long one?")
    lines = [str((await said(alice, "")).get("text")) for _ in range(assistant.MAX_LINES)]
    assert lines == [f"line {n}" for n in range(assistant.MAX_LINES - 1)] + ["…"]

    clock.advance(120)
    model.status = 500
    await alice.command("/say general helper: broken?")
    assert (await said(alice, "unavailable"))["text"] == "the assistant is unavailable (HTTP 500)."
    await stopped(bot, task)


def test_answer_lines_and_reasons() -> None:
    assert assistant._lines("") == ["(no answer)"]
    assert assistant._lines("x" * 500) == ["x" * assistant.MAX_LINE + "…"]
    assert assistant._reason(KeyError("choices")) == "an answer it could not read"
    assert assistant._reason(ConnectionRefusedError()) == "ConnectionRefusedError"
    bucket = assistant.Bucket(rate=60, burst=1)
    assert bucket.take(0) and not bucket.take(0.5) and bucket.take(1.0)


def test_bot_credentials_from_the_command_line(tmp_path: Any) -> None:
    args = cli.parse(cli.parser("x"), ["--user", "b", "--room", "general", "--port", "7000"])
    made = cli.bot_from(args, {"CHATD_PASSWORD": "pw"})
    assert (made.user, made.port, made.rooms) == ("b", 7000, {"general"})
    assert isinstance(made.resume_tokens, MemoryResumeTokens)  # in memory unless asked
    token_file = tmp_path / "token"
    token_file.write_text("tok\n")
    args = cli.parse(cli.parser("x"), ["--user", "b", "--token-file", str(token_file), "--tls"])
    assert cli.bot_from(args, {})._token == "tok"
    args = cli.parse(cli.parser("x"), ["--user", "b", "--resume-file", str(tmp_path / "r")])
    kept = cli.bot_from(args, {"CHATD_TOKEN": "tok"}).resume_tokens
    assert isinstance(kept, FileResumeTokens) and kept.path == tmp_path / "r"
    with pytest.raises(SystemExit, match="give the bot a token"):
        cli.bot_from(cli.parse(cli.parser("x"), ["--user", "b"]), {})
    # An empty token is none: the password is used, or the bot says what is missing.
    token_file.write_text("\n")
    args = cli.parse(cli.parser("x"), ["--user", "b", "--token-file", str(token_file)])
    assert cli.bot_from(args, {"CHATD_PASSWORD": "pw"})._password == "pw"
    with pytest.raises(SystemExit, match="give the bot a token"):
        cli.bot_from(args, {})
    with pytest.raises(SystemExit, match="give the bot a token"):
        cli.bot_from(cli.parse(cli.parser("x"), ["--user", "b"]), {"CHATD_TOKEN": ""})


ROOT = Path(__file__).resolve().parents[2]


async def test_an_example_bot_logs_its_login_and_its_retries_to_stderr(
        server: ChatServer, clients: Clients) -> None:
    token = await bot_token(clients, "helper")
    alice = await clients.user("alice")
    await alice.command("/create general")
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.bots.echo", "--user", "helper", "--room", "general",
        "--port", str(server.port), cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHATD_TOKEN": token})
    try:
        assert bot.stderr is not None
        line = await asyncio.wait_for(bot.stderr.readline(), 20)
        assert b"INFO chatd.client.sdk.bot: logged in as helper to 127.0.0.1:" in line, line
        assert line.rstrip().endswith(b"(login 1), in #general"), line
    finally:
        bot.terminate()
        await bot.wait()


async def test_an_example_bot_with_an_unusable_token_file_says_why(
        server: ChatServer, tmp_path: Path) -> None:
    # A missing file was a traceback; an empty one was sent to the server as a token
    # ("missing <token>") or, beside $CHATD_PASSWORD, a ValueError traceback.
    empty = tmp_path / "empty.token"
    empty.write_text("")
    cases = ((tmp_path / "nowhere.token", b"cannot read the token file"),
             (empty, b"give the bot a token"))
    for token_file, expected in cases:
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "examples.bots.echo", "--user", "helper",
            "--port", str(server.port), "--token-file", str(token_file), cwd=ROOT,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHATD_PASSWORD": ""})
        _, err = await asyncio.wait_for(bot.communicate(), 20)
        assert bot.returncode == 1 and expected in err and b"Traceback" not in err, err


@pytest.mark.parametrize("module", [assistant, echo, moderate, remind])
def test_an_example_bots_help_keeps_its_docstrings_lines(
        module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        module.main(["--help"])
    shown = capsys.readouterr().out
    for line in (module.__doc__ or "").strip().splitlines():
        assert line.rstrip() in shown.splitlines() or not line.strip(), line


async def test_the_moderation_bot_takes_its_mute_in_seconds_or_says_at_once_it_cannot(
        server: ChatServer, clients: Clients) -> None:
    """``--mute 60`` (seconds, as ``--window`` is) was sent to /mute as it was, which
    refused it at the first flood: the bot then said it could not mute (bad-arguments).
    A mistyped one stops the bot at its start, saying why."""
    token = await bot_token(clients, "helper", "read,post,moderate")
    alice = await clients.user("alice")
    await alice.command("/create general")
    await alice.command("/join general")
    wrong = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.bots.moderate", "--user", "helper",
        "--port", str(server.port), "--mute", "5min", cwd=ROOT,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHATD_TOKEN": token})
    try:
        _, err = await asyncio.wait_for(wrong.communicate(), 20)
    finally:
        if wrong.returncode is None:  # it started instead of refusing: stop it
            wrong.terminate()
            await wrong.wait()
    assert wrong.returncode == 2 and b"a duration like 90s" in err, err
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.bots.moderate", "--user", "helper", "--room",
        "general", "--port", str(server.port), "--limit", "2", "--mute", "60", cwd=ROOT,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHATD_TOKEN": token})
    try:
        assert bot.stderr is not None
        assert b"logged in" in await asyncio.wait_for(bot.stderr.readline(), 20)
        await alice.command("/promote helper general")
        bob = await clients.user("bob")
        await bob.command("/join general")
        for n in range(3):
            await bob.command(f"/say general flood {n}")
        heard = await said(alice, "bob")
        assert heard["text"] == "bob was muted for 60s: more than 2 messages in 10 s."
    finally:
        bot.terminate()
        await bot.wait()
