"""Bot accounts over real sockets: made by a user or an admin, token-only, shown as bots."""

from __future__ import annotations

import asyncio

from chatd.domain.tokens import MAX_TOKENS
from tests.backends import both
from tests.helpers import ChatServer, Clients, error_of, room_with, text_client, text_run

# Bots are accounts of their own kind, owned by another: alike on both backends.
backend = both


async def test_a_user_makes_a_bot_that_logs_in_with_its_token_and_shows_as_a_bot(
        clients: Clients, server: ChatServer) -> None:
    alice, = await room_with(clients, "alice")
    made = await alice.command("/bot create helper")
    assert made["user"] == "helper" and made["owner"] == "alice" and made["bot"] is True
    assert made["scopes"] == ["read", "post"] and made["token"].startswith("chatd_")

    bot = await clients.anonymous()
    login = await bot.command(f"/login helper --token {made['token']}")
    assert login["bot"] is True and login["scopes"] == ["read", "post"]
    await bot.command("/join general")

    who = await alice.command("/who")
    assert {"user": "helper", "role": "member", "online": True, "bot": True} in who["members"]
    assert {"user": "alice", "role": "owner", "online": True} in who["members"]
    whois = await alice.command("/whois helper")
    assert whois["bot"] is True and whois["owner"] == "alice"
    assert (await alice.command("/whois alice"))["bot"] is False
    assert server.services.accounts.is_bot("HELPER")
    assert not server.services.accounts.is_bot("alice")
    assert not server.services.accounts.is_bot("nobody")


async def test_a_bot_has_no_password(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/bot create helper")
    other = await clients.anonymous()
    for guess in ("!bot", "secret-pw", "x" * 8):
        refused = await error_of(other, f"/login helper {guess}")
        assert refused["code"] == "auth-failed"
        assert refused["message"].startswith("wrong name or password")


async def test_text_mode_marks_bots_in_who_and_whois(clients: Clients) -> None:
    alice, = await room_with(clients, "alice")
    made = await alice.command("/bot create helper")
    bot = await clients.anonymous()
    await bot.command(f"/auth {made['token']}")
    await bot.command("/join general")
    person = await text_client(clients, "alice")
    who = await text_run(person, "/who general")
    assert any(line.split()[:2] == ["helper", "(bot)"] for line in who), who
    whois = await text_run(person, "/whois helper")
    assert "  kind    bot, owned by alice" in whois


async def test_bot_list_token_tokens_and_delete(clients: Clients, server: ChatServer) -> None:
    alice = await clients.user("alice")
    await alice.command("/bot create helper read")
    await alice.command("/bot create pinger")
    listed = await alice.command("/bot list")
    assert [b["user"] for b in listed["bots"]] == ["helper", "pinger"]
    assert all(b["owner"] == "alice" and b["online"] is False for b in listed["bots"])

    second = await alice.command("/bot token helper read,post 7d")
    assert second["name"] == "token2" and second["scopes"] == ["read", "post"]
    assert second["expires"] is not None
    tokens = await alice.command("/bot tokens helper")
    assert [(t["name"], t["scopes"]) for t in tokens["tokens"]] == [
        ("default", ["read"]), ("token2", ["read", "post"])]

    bot = await clients.anonymous()
    await bot.command(f"/auth {second['token']}")
    deleted = await alice.command("/bot delete helper")
    assert deleted["user"] == "helper"
    assert server.services.accounts.find("helper") is None
    assert [b["user"] for b in (await alice.command("/bot list"))["bots"]] == ["pinger"]
    again = await clients.anonymous()
    assert (await error_of(again, f"/auth {second['token']}"))["code"] == "auth-failed"


async def test_only_the_owner_or_a_server_admin_manages_a_bot(
        clients: Clients, server: ChatServer) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    await alice.command("/bot create helper")
    assert (await error_of(bob, "/bot delete helper"))["code"] == "not-permitted"
    assert (await error_of(bob, "/bot token helper"))["code"] == "not-permitted"
    assert (await error_of(bob, "/bot delete alice"))["message"] == "alice is not a bot."
    assert (await error_of(bob, "/bot delete nobody"))["code"] == "no-such-user"
    assert (await error_of(bob, "/bot delete"))["code"] == "bad-arguments"
    assert (await bob.command("/bot list"))["bots"] == []

    await server.services.accounts.set_admin(server.services.accounts.require("bob"), True)
    assert [b["user"] for b in (await bob.command("/bot list"))["bots"]] == ["helper"]
    await bob.command("/bot delete helper")


async def test_names_kinds_and_limits(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert (await error_of(alice, "/bot create alice"))["code"] == "name-taken"
    assert (await error_of(alice, "/bot create no/way"))["code"] == "invalid-name"
    # (A bot named --resume could not be named in /login, which reads it as the option.)
    assert (await error_of(alice, "/bot create --resume"))["code"] == "invalid-name"
    for n in range(10):
        await alice.command(f"/bot create b{n}")
    full = await error_of(alice, "/bot create b10")
    assert full["code"] == "quota-exceeded" and full["quota"] == 10

    token = (await alice.command("/bot token b0 all"))["token"]
    bot = await clients.anonymous()
    await bot.command(f"/auth {token}")
    refused = await error_of(bot, "/bot create grandchild")
    assert refused["code"] == "not-permitted" and "a bot cannot make bots" in refused["message"]


async def test_creations_sent_at_once_on_many_connections_keep_to_the_quota(
        clients: Clients) -> None:
    first = await clients.user("alice")
    await first.command("/bot create b0")
    connections = [first, *[await clients.user("alice") for _ in range(11)]]
    replies = await asyncio.gather(*(c.command(f"/bot create r{i}", check=False)
                                     for i, c in enumerate(connections)))
    made = [r for r in replies if r.ok]
    assert len(made) == 9
    assert {r["code"] for r in replies if not r.ok} == {"quota-exceeded"}
    assert len((await first.command("/bot list"))["bots"]) == 10


async def test_a_bot_outlives_its_deleted_owner(clients: Clients, server: ChatServer) -> None:
    alice = await clients.user("alice")
    await alice.command("/bot create helper")
    root = await clients.user("root")
    await server.services.accounts.set_admin(server.services.accounts.require("root"), True)
    await root.command("/userdel alice")
    whois = await root.command("/whois helper")
    assert whois["bot"] is True and whois["owner"] is None
    assert (await root.command("/bot list"))["bots"][0]["owner"] is None


async def test_a_deleted_account_leaves_no_token_in_memory(clients: Clients,
                                                          server: ChatServer) -> None:
    # Its rows went with it; held in memory, its tokens stayed until someone tried
    # to log in with them.
    services = server.services
    alice = await clients.user("alice")
    await alice.command("/token create extra read")
    token = (await alice.command("/bot create helper"))["token"]
    bot = await clients.anonymous()
    await bot.command(f"/auth {token} --resume")
    helper, owner = services.accounts.require("helper"), services.accounts.require("alice")
    held = [r.id for r in services.tokens.of(helper) + services.tokens.of(owner)]
    assert len(held) == 2 and services.resume.count(helper) == 1
    await alice.command("/bot delete helper")
    root = await clients.user("root")
    await services.accounts.set_admin(services.accounts.require("root"), True)
    await root.command("/userdel alice")
    assert [i for i in held if services.tokens.record(i) is not None] == []
    assert services.resume.count(helper) == 0


async def test_an_account_holds_a_bounded_number_of_tokens(clients: Clients,
                                                         server: ChatServer) -> None:
    # Every token is kept in memory and listed whole: without a bound one account
    # could make them until the daemon's memory gave out.
    tokens, accounts = server.services.tokens, server.services.accounts
    connections = [await clients.user("alice") for _ in range(4)]
    alice = connections[0]
    replies = await asyncio.gather(*(connections[n % 4].command(f"/token create t{n} read",
                                                                check=False)
                                     for n in range(MAX_TOKENS + 3)))
    refused = [r.final for r in replies if not r.ok]
    assert [(r["code"], r["quota"]) for r in refused] == [("quota-exceeded", MAX_TOKENS)] * 3
    assert len(tokens.of(accounts.require("alice"))) == MAX_TOKENS
    await alice.command("/token revoke t0")
    assert (await alice.command("/token create again read")).ok

    await alice.command("/bot create helper")  # its token "default", then 99 more
    for _ in range(MAX_TOKENS - 1):
        await alice.command("/bot token helper read")
    full = await error_of(alice, "/bot token helper read")
    assert (full["code"], full["quota"]) == ("quota-exceeded", MAX_TOKENS)
    assert "helper has 100 API tokens" in full["message"]


async def test_tokens_of_a_bot_asked_for_at_once_each_get_a_name(clients: Clients) -> None:
    # The next free name (token2, token3 ...) was picked before the token was made:
    # asked for on several connections at once, all but one were refused name-taken.
    connections = [await clients.user("alice") for _ in range(5)]
    await connections[0].command("/bot create helper")
    replies = await asyncio.gather(*(c.command("/bot token helper read", check=False)
                                     for c in connections))
    assert all(r.ok for r in replies), [r.final for r in replies if not r.ok]
    assert sorted(r["name"] for r in replies) == [f"token{n}" for n in range(2, 7)]
    listed = await connections[0].command("/bot tokens helper")
    assert len(listed["tokens"]) == 6


async def test_a_token_asked_for_while_its_bot_is_deleted_is_no_such_user(
        clients: Clients) -> None:
    # The token's row needs its account: made as the deletion went through, its write
    # was refused and the request answered internal-error.
    connections = [await clients.user("alice") for _ in range(4)]
    for n in range(3):
        await connections[0].command(f"/bot create helper{n}")
        replies = await asyncio.gather(
            connections[0].command(f"/bot delete helper{n}"),
            *(c.command(f"/bot token helper{n} read", check=False) for c in connections[1:]))
        codes = {r.final.get("code") for r in replies[1:] if not r.ok}
        assert codes <= {"no-such-user"}, [r.final for r in replies]
