"""Bot accounts and API tokens over IRC: the bot mode, token logins and their scopes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from chatd.client import ChatClient
from tests.helpers import ChatServer, Clients, room_with
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient
from tests.web.helpers import http

Connect = Callable[[], Awaitable[IrcClient]]


@pytest.fixture
async def connect(server: ChatServer) -> AsyncIterator[Connect]:
    """``await connect()``: a new IRC connection, not registered (closed at the end)."""
    opened: list[IrcClient] = []

    async def open_one() -> IrcClient:
        assert server.irc is not None
        opened.append(await IrcClient.connect(server.irc.port))
        return opened[-1]

    yield open_one
    for client in opened:
        await client.close()


async def _bot(clients: Clients) -> tuple[ChatClient, str]:
    """alice (owner of #general) and the token of her new bot ``helper`` (read,post)."""
    alice, = await room_with(clients, "alice")
    made = await alice.command("/bot create helper read,post")
    return alice, made["token"]


async def _token_client(connect: Connect, password: str, nick: str = "helper") -> IrcClient:
    client = await connect()
    await client.register(nick, password=password)
    return client


async def test_a_bot_account_has_the_bot_mode_on_irc(clients: Clients, irc: IrcFactory,
                                                     connect: Connect) -> None:
    _, token = await _bot(clients)
    bob = await irc("bob", caps=("message-tags",))
    bob.send("JOIN #general")
    await bob.expect("366")

    helper = await _token_client(connect, f"helper:{token}")
    assert helper.nick == "helper"
    helper.send("JOIN #general")
    await helper.expect("366")
    helper.send("MODE helper")
    assert (await helper.expect("221")).params[1] == "+B"
    # What the account is, not what its client says: -B changes nothing.
    helper.send("MODE helper -B", "MODE helper")
    assert (await helper.expect("221")).params[1] == "+B"
    assert not any(" MODE helper :-B" in line or " MODE helper -B" in line
                   for line in helper.lines)

    bob.send("WHO #general")
    flags = {m.params[5]: m.params[6] for m in await bob.until("315") if m.command == "352"}
    assert "B" in flags["helper"] and "B" not in flags["bob"]
    bob.send("WHOIS helper")
    whois = await bob.until("318")
    assert any(m.command == "335" and m.params[1] == "helper" for m in whois)
    helper.send("PRIVMSG #general :beep")
    said = await bob.expect("PRIVMSG")
    assert said.params == ("#general", "beep") and "bot" in said.tags


async def test_a_bot_on_the_line_protocol_shows_as_a_bot_to_irc(
        clients: Clients, irc: IrcFactory) -> None:
    alice, token = await _bot(clients)
    bob = await irc("bob", caps=("message-tags",))
    bob.send("JOIN #general")
    await bob.expect("366")
    bot = await clients.anonymous()
    await bot.command(f"/auth {token}")
    await bot.command("/join general")
    await bot.command("/say general hello from json")
    said = await bob.expect("PRIVMSG")
    assert said.source is not None and said.source.startswith("helper!")
    assert said.tags.get("bot") == ""
    await alice.command("/say general and a person")
    person = await bob.expect("PRIVMSG")
    assert person.params[1] == "and a person" and "bot" not in person.tags
    bob.send("WHOIS alice")
    assert not any(m.command == "335" for m in await bob.until("318"))


async def test_pass_takes_a_token_with_or_without_the_account_name(
        clients: Clients, connect: Connect) -> None:
    _, token = await _bot(clients)
    alone = await _token_client(connect, token, nick="anything")
    assert alone.nick == "helper"
    logged_in = [m.split() for m in alone.lines if m.split()[1] == "900"]
    assert logged_in[0][4] == "helper"  # the account, whatever the nick asked for
    named = await _token_client(connect, f"HELPER:{token}")
    assert named.nick == "helper"

    for password in (f"alice:{token}", f"helper:{token[:-1]}x", "helper:not-a-token"):
        wrong = await connect()
        wrong.send(f"PASS {password}", "NICK helper", "USER helper 0 * :Helper")
        refused = await wrong.expect("464")
        assert refused.params[1] == "Password incorrect"
        await wrong.closed()


async def test_sasl_plain_takes_a_token_as_the_password(clients: Clients,
                                                        connect: Connect) -> None:
    _, token = await _bot(clients)
    client = await connect()
    client.send("CAP LS 302", "CAP REQ :sasl")
    assert (await client.sasl("helper", token)).command == "903"
    client.send("NICK helper", "USER helper 0 * :Helper", "CAP END")
    lines = await client.until("376", "422")
    assert [m.params[0] for m in lines if m.command == "001"] == ["helper"]
    client.send("MODE helper")
    assert (await client.expect("221")).params[1] == "+B"

    # Another account's name with the token fails like a wrong password.
    other = await connect()
    other.send("CAP LS 302", "CAP REQ :sasl")
    assert (await other.sasl("alice", token)).command == "904"


async def test_a_token_revoked_between_sasl_and_registration_is_refused(
        clients: Clients, connect: Connect) -> None:
    alice, = await room_with(clients, "alice")
    token = (await alice.command("/token create irc read,post"))["token"]
    client = await connect()
    client.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
    await client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{token}".encode()).decode())
    assert (await client.expect("903", "904")).command == "903"
    await alice.command("/token revoke irc")
    client.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
    refused = await client.expect("464")
    assert refused.params[1] == "Token revoked since SASL authentication"
    await client.closed()


async def test_a_token_login_has_the_token_scopes_on_irc(server: ChatServer, clients: Clients,
                                                         connect: Connect) -> None:
    alice, = await room_with(clients, "alice")
    poster = (await alice.command("/token create poster read,post"))["token"]
    reader = (await alice.command("/token create reader read"))["token"]
    await alice.command("/mode +k sesame general")

    read_only = await _token_client(connect, f"alice:{reader}", nick="alice")
    # The channels of the account are shown as joined, as for any login.
    assert (await read_only.expect("JOIN")).params[0] == "#general"
    await read_only.expect("366")
    for query in ("WHO #general", "MODE #general", "MODE #general b", "TOPIC #general",
                  "NAMES #general", "MODE alice", "LIST", "WHOIS alice"):
        read_only.send(query)
        read_only.send("PING barrier")
        replies = await read_only.until("PONG")
        assert not any(m.command == "FAIL" for m in replies), (query, read_only.lines[-3:])
    for line, scope in (("PRIVMSG #general :hi", "post"), ("JOIN #elsewhere", "post"),
                        ("PART #general", "post"), ("AWAY :gone", "post"),
                        ("TOPIC #general :new", "moderate"), ("MODE #general +m", "moderate"),
                        ("MODE #general -k", "moderate"), ("KICK #general alice", "moderate"),
                        ("INVITE bob #general", "moderate"), ("WALLOPS :hey", "admin"),
                        ("KILL alice :bye", "admin")):
        read_only.send(line)
        fail = await read_only.expect("FAIL", "400", "482", "481", "442", "404")
        verb = line.split()[0]
        assert fail.command == "FAIL", (line, fail)
        assert fail.params[:3] == (verb, "MISSING_SCOPE", scope)
        assert fail.params[3] == (f"the token you logged in with does not grant the {scope} "
                                  f"scope, which {verb} needs.")
    # NOTICE never answers, not even this.
    read_only.send("NOTICE #general :quiet")
    await read_only.nothing()
    assert server.services.rooms.find("general") is not None
    assert server.services.rooms.find("elsewhere") is None

    talker = await _token_client(connect, f"alice:{poster}", nick="alice")
    await talker.expect("366")
    talker.send("PRIVMSG #general :hello from a token")
    await talker.nothing()
    said = await alice.next_event(lambda e: e.get("type") == "message")
    assert said["text"] == "hello from a token"
    talker.send("MODE #general +m")
    fail = await talker.expect("FAIL")
    assert fail.params[:3] == ("MODE", "MISSING_SCOPE", "moderate")


async def test_a_password_login_keeps_every_scope(irc: IrcFactory, clients: Clients) -> None:
    alice, = await room_with(clients, "alice")
    client = await irc("alice")
    client.send("MODE #general +m", "PING barrier")
    replies = await client.until("PONG")
    assert not any(m.command == "FAIL" for m in replies)
    modes = await alice.next_event(lambda e: e.get("event") == "modes")
    assert modes["room"] == "general"


async def test_revoking_the_token_closes_the_bots_irc_connection(
        clients: Clients, connect: Connect) -> None:
    alice, token = await _bot(clients)
    bot = await _token_client(connect, f"helper:{token}")
    await alice.command("/bot token helper")  # (a second token, which stays)
    other = await connect()
    await other.register("helper", password=f"helper:{token}")
    await bot_revokes(clients, token)
    for closed in (bot, other):
        lines = await closed.closed()
        notices = [line for line in lines if " NOTICE helper :" in line]
        assert notices and notices[0].endswith(
            ":your token default was revoked; this connection is closed. Log in again "
            "with a valid token.")
        assert lines[-1].startswith("ERROR ")


async def bot_revokes(clients: Clients, token: str) -> None:
    """Revoke the bot's token ``default`` as the operator would (chatctl revoke-token
    asks the same service), then check it no longer logs in."""
    server = clients.server
    helper = server.services.accounts.find("helper")
    assert helper is not None
    await server.services.tokens.revoke(helper, "default")
    refused = await (await clients.anonymous()).command(f"/auth {token}", check=False)
    assert refused.final["code"] == "auth-failed"


async def test_the_bot_tag_follows_the_messages_mark_in_history_too(
        clients: Clients, irc: IrcFactory) -> None:
    """The tag comes from the mark the message was stored with, not from who its
    sender's account is now: a deleted bot's messages still read as a bot's."""
    alice, token = await _bot(clients)
    bot = await clients.anonymous()
    await bot.command(f"/auth {token}")
    await bot.command("/join general")
    await bot.command("/say general beep")
    await alice.command("/say general and a person")
    await alice.command("/bot delete helper")
    bob = await irc("bob", caps=("batch", "draft/chathistory", "message-tags"))
    bob.send("JOIN #general")
    await bob.expect("366")
    bob.send("CHATHISTORY LATEST #general * 10")
    await bob.expect("BATCH")
    said = [m for m in await bob.until("BATCH") if m.command == "PRIVMSG"]
    assert [(m.params[1], "bot" in m.tags) for m in said] == [
        ("beep", True), ("and a person", False)]


@pytest.mark.server(web__enabled=True, web__port=0)
async def test_a_webhooks_message_carries_the_bot_tag_as_it_says_bot_in_json(
        server: ChatServer, clients: Clients, irc: IrcFactory) -> None:
    alice, = await room_with(clients, "alice")
    bob = await irc("bob", caps=("message-tags",))
    bob.send("JOIN #general")
    await bob.expect("366")
    made = await alice.command("/webhook create deploy")
    async with http(server) as hook:
        posted = await hook.post(made["path"], json={"text": "build 42 is green"})
        assert posted.status_code == 201, posted.text
    heard = await alice.next_event(lambda e: e.get("type") == "message")
    said = await bob.expect("PRIVMSG")
    assert heard["bot"] is True and said.params[1] == "build 42 is green"
    assert said.source is not None and said.source.startswith("deploy[bot]!")
    assert said.tags.get("bot") == ""
