"""What people used to IRC type: the aliases, /quote, /nick, /whois, /away, and
a suggestion for a mistyped command."""

from __future__ import annotations

import pytest

from tests.helpers import Clients, error_of, room_with, text_client, text_run


@pytest.mark.parametrize(("alias", "canonical"),
                         [("/list", "rooms"), ("/names", "who"), ("/part", "leave")])
async def test_an_alias_runs_its_command_and_its_ok_names_it(clients: Clients, alias: str,
                                                             canonical: str) -> None:
    alice, _bob = await room_with(clients, "alice", "bob")
    reply = await alice.command(alias)
    assert reply.final["type"] == "ok" and reply.final["command"] == canonical


async def test_part_leaves_the_room(clients: Clients) -> None:
    alice, bob = await room_with(clients, "alice", "bob")
    await bob.command("/part general")
    who = await alice.command("/names")
    assert [m["user"] for m in who["members"]] == ["alice"]


async def test_help_shows_the_aliases(clients: Clients) -> None:
    client = await text_client(clients)
    overview = await text_run(client, "/help")
    assert any("/leave" in line for line in overview)
    assert any("Also /part." in line for line in overview), overview
    assert any("Also /list." in line for line in overview)
    assert any("Also /names." in line for line in overview)
    usage, needs, also = await text_run(client, "/help part")
    assert usage.startswith("  /leave [room] [reason]   ") and needs.startswith("  Needs: ")
    assert also == "  Also: /part"
    bot = await clients.anonymous()
    listed = {c["name"]: c for c in (await bot.command("/help"))["commands"]}
    assert listed["who"]["aliases"] == ["names"]
    assert (await bot.command("/help names"))["name"] == "who"


@pytest.mark.parametrize(("typed", "meant"), [("hlep", "help"), ("jion", "join"),
                                              ("whoiam", "whoami"), ("mgs", "msg")])
async def test_an_unknown_command_suggests_the_closest(clients: Clients, typed: str,
                                                       meant: str) -> None:
    client = await clients.anonymous()
    refused = await error_of(client, f"/{typed} x")
    assert refused["code"] == "unknown-command"
    assert f"did you mean /{meant}?" in refused["message"]
    assert refused["suggestion"] == meant
    refused = await error_of(client, f"/help {typed}")
    assert refused["code"] == "unknown-command" and refused["suggestion"] == meant


async def test_a_command_like_none_suggests_nothing(clients: Clients) -> None:
    client = await text_client(clients)
    assert await text_run(client, "/xyzzyq") == [
        "! unknown-command: there is no command /xyzzyq. /help lists them."]
    assert await text_run(client, "/hlep") == [
        "! unknown-command: there is no command /hlep; did you mean /help? /help lists them."]
    assert await text_run(client, "/" + "h" * 300) == [
        f"! unknown-command: there is no command /{'h' * 300}. /help lists them."]


async def test_quote_runs_the_rest_as_a_command(clients: Clients) -> None:
    alice = await clients.user("alice")
    created = await alice.command("/quote create general")
    assert created["command"] == "create" and created["label"].startswith("c")
    assert (await alice.command("/quote /whoami"))["command"] == "whoami"
    assert (await alice.command("/QUOTE quote ping"))["command"] == "ping"
    refused = await error_of(alice, "/quote nosuch")
    assert refused["code"] == "unknown-command"
    bare = await error_of(alice, "/quote")
    assert bare["code"] == "bad-arguments" and "/quote join general" in bare["message"]
    # //text is a message, not a command: refused, under the label a client waits on.
    quoted = await error_of(alice, "/quote //slash")
    assert quoted["code"] == "bad-arguments" and quoted["label"].startswith("c")
    assert (await alice.command("/history general"))["messages"] == []


async def test_nick_says_names_cannot_change(clients: Clients) -> None:
    for client in (await clients.anonymous(), await clients.user("alice")):
        refused = await error_of(client, "/nick bob")
        assert refused["code"] == "not-permitted"
        assert "cannot change" in refused["message"] and "/register" in refused["message"]
    text = await text_client(clients, "carol")
    [line] = await text_run(text, "/nick dave")
    assert line.startswith("! not-permitted: a chatd name is its account and cannot change.")


async def test_away_answers_direct_messages_and_shows_in_whois(clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    set_ = await bob.command("/away at lunch")
    assert set_["away"] == "at lunch" and "at lunch" in set_["message"]
    sent = await alice.command("/msg bob are you there?")
    assert sent["away"] == "at lunch"
    [notice] = [line for line in sent.lines if line["type"] == "notice"]
    assert notice["text"] == "bob is away: at lunch" and notice["away"] == "at lunch"
    whois = await alice.command("/whois bob")
    assert whois["away"] == "at lunch" and whois["online"] is True
    assert whois["message"] == "bob is away."
    back = await bob.command("/away")
    assert back["message"] == "You are back." and back["away"] is None
    assert (await bob.command("/away"))["message"] == "You were not away."
    sent = await alice.command("/msg bob now?")
    assert "away" not in sent.final and not [x for x in sent.lines if x["type"] == "notice"]
    assert (await alice.command("/whois bob"))["away"] is None


async def test_away_ends_with_the_last_connection(clients: Clients) -> None:
    bob = await clients.user("bob")
    await bob.command("/away gone fishing")
    await bob.command("/logout")
    bob = await clients.user("bob")
    assert (await bob.command("/whois bob"))["away"] is None


async def test_away_text_is_bounded(clients: Clients) -> None:
    bob = await clients.user("bob")
    refused = await error_of(bob, "/away " + "z" * 201)
    assert refused["code"] == "bad-arguments" and "200" in refused["message"]
    assert (await bob.command("/away " + "z" * 200))["away"] == "z" * 200


async def test_away_in_text_mode(clients: Clients) -> None:
    bob = await text_client(clients, "bob")
    alice = await text_client(clients, "alice")
    assert await text_run(bob, "/away back at 3") == [
        "* You are away: back at 3. /away alone brings you back."]
    assert await text_run(alice, "/msg bob ping") == [
        "<alice -> bob> ping", "* bob is away: back at 3"]


async def test_whois_keeps_private_rooms_private(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create lobby")
    await alice.command("/create hideout private")
    carol = await clients.user("carol")
    await carol.command("/join lobby")
    whois = await carol.command("/whois alice")
    assert whois["rooms"] == ["lobby"] and whois["admin"] is False
    assert whois["since"].endswith("Z") and whois["online"] is True
    assert (await alice.command("/whois alice"))["rooms"] == ["hideout", "lobby"]
    await alice.command("/logout")
    assert (await carol.command("/whois alice"))["message"] == "alice is offline."
    assert (await error_of(carol, "/whois nobody"))["code"] == "no-such-user"


async def test_whois_in_text_mode(clients: Clients) -> None:
    await (await clients.user("alice")).command("/create lobby")
    reader = await text_client(clients, "bob")
    lines = await text_run(reader, "/whois alice")
    assert lines[0] == "  user    alice"
    assert lines[1] == "  status  online"
    assert lines[2] == "  rooms   #lobby"
    assert lines[3].startswith("  since   20")
    assert lines[-1] == "* alice is online."
