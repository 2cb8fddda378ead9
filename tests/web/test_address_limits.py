"""The limits per address count an IPv6 address with its network (limits.ipv6_prefix):
one host commonly has a whole /64 to pick addresses from. Clients are told apart
here as a trusted proxy tells them (X-Forwarded-For), over real sockets; IRC guests
connect over /irc, whose connections the web listener makes with that address."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from chatd.domain.accounts import User
from tests.helpers import PASSWORD, ChatServer
from tests.irc.helpers import END_OF_WELCOME, login
from tests.web.helpers import WsChat, http, lines_until, ws_url

PROXIED = {"web__trusted_proxies": ["127.0.0.1"]}


@pytest.mark.server(**PROXIED, limits__auth_failures=2)
async def test_failed_logins_count_against_the_whole_ipv6_network(server: ChatServer) -> None:
    async with http(server, "chatd_wrong") as client:
        async def me(address: str) -> str:
            answer = await client.get("/api/v1/me", headers={"X-Forwarded-For": address})
            return str(answer.json()["error"]["code"])

        assert [await me("2001:db8:0:1::1"), await me("2001:db8:0:1::2")] == [
            "auth-failed", "auth-failed"]
        # Another address of that /64 is the same client ...
        assert await me("2001:db8:0:1::ffff") == "rate-limited"
        # ... another /64 is another one.
        assert await me("2001:db8:0:2::1") == "auth-failed"
        # An IPv4 address written in IPv6 is that IPv4 address.
        assert [await me("10.0.0.7"), await me("::ffff:10.0.0.7")] == [
            "auth-failed", "auth-failed"]
        assert await me("10.0.0.7") == "rate-limited"


@pytest.mark.server(**PROXIED, limits__registrations=1)
async def test_registrations_count_against_the_whole_ipv6_network(server: ChatServer) -> None:
    async def register(address: str, name: str) -> dict[str, object]:
        chat = await WsChat.open(server, additional_headers={"X-Forwarded-For": address})
        try:
            return await chat.command(f"/register {name} {PASSWORD}")
        finally:
            await chat.close()

    assert (await register("2001:db8:0:1::1", "first"))["type"] == "ok"
    refused = await register("2001:db8:0:1::2", "second")
    assert refused["code"] == "rate-limited"
    assert (await register("2001:db8:0:2::1", "third"))["type"] == "ok"


@pytest.mark.server(**PROXIED, limits__auth_failures=2, limits__ipv6_prefix=128)
async def test_a_prefix_of_128_counts_each_ipv6_address_alone(server: ChatServer) -> None:
    async with http(server, "chatd_wrong") as client:
        for address in ("2001:db8::1", "2001:db8::1", "2001:db8::2"):
            answer = await client.get("/api/v1/me", headers={"X-Forwarded-For": address})
            assert answer.json()["error"]["code"] == "auth-failed"


@contextlib.asynccontextmanager
async def irc_guest(server: ChatServer, nick: str,
                    address: str) -> AsyncIterator[ClientConnection]:
    """An IRC guest ``nick`` registered over /irc from ``address`` (as the proxy says)."""
    async with connect(ws_url(server, "/irc"), subprotocols=["text.ircv3.net"],
                       additional_headers={"X-Forwarded-For": address}) as ws:
        await ws.send(f"NICK {nick}")
        await ws.send(f"USER {nick} 0 * :{nick}")
        await lines_until(ws, *END_OF_WELCOME)
        yield ws


def _guest(server: ChatServer, nick: str) -> User:
    assert server.irc is not None
    user = server.irc.front.guests.find(nick)
    assert user is not None
    return user


@pytest.mark.server(**PROXIED, accounts__guests=True, limits__message_rate=0.001,
                    limits__message_burst=1)
async def test_irc_guests_of_one_ipv6_network_share_its_message_bucket(
        server: ChatServer) -> None:
    # Each guest had a bucket of its own: a host with a /64 had as many bursts as
    # it opened connections from its addresses.
    protection = server.services.protection
    async with irc_guest(server, "first", "2001:db8:0:1::1") as first:
        await first.send("NICK renamed")  # shown as a message is: it takes a token
        await lines_until(first, "NICK")
        async with irc_guest(server, "second", "2001:db8:0:1::2"):
            assert protection.message_wait(_guest(server, "second"), None) > 0
        async with irc_guest(server, "third", "2001:db8:0:2::1"):
            assert protection.message_wait(_guest(server, "third"), None) == 0


@pytest.mark.server(**PROXIED, accounts__guests=True)
async def test_a_guest_ban_holds_the_whole_ipv6_network_of_the_guest_out(
        server: ChatServer) -> None:
    # The ban held the exact address: the guest came back from the next one of its /64.
    assert server.irc is not None
    await server.services.accounts.create("owner", PASSWORD)
    owner = await login(server.irc.port, "owner")
    try:
        owner.send("JOIN #hall")
        await owner.expect("366")
        async with irc_guest(server, "visitor", "2001:db8:0:1::1") as visitor:
            await visitor.send("JOIN #hall")
            await lines_until(visitor, "366")
            owner.send("MODE #hall +b visitor")
            assert (await owner.expect("MODE")).params == ("#hall", "+b", "visitor!*@*")
        for nick, address, answer in (("back", "2001:db8:0:1::2", "474"),
                                      ("again", "2001:db8:0:1:ffff::1", "474"),
                                      ("neighbour", "2001:db8:0:2::1", "366")):
            async with irc_guest(server, nick, address) as guest:
                await guest.send("JOIN #hall")
                assert (await lines_until(guest, "474", "366"))[-1].split(" ")[1] == answer
        # The ban list names the nick the ban holds (the address is not shown).
        owner.send("MODE #hall b")
        assert (await owner.expect("367")).params[1:4] == ("#hall", "visitor!*@*", "owner")
    finally:
        await owner.close()


@pytest.mark.server(**PROXIED, accounts__guests=True, limits__ipv6_prefix=128)
async def test_a_guest_ban_holds_an_address_by_its_key_in_either_writing(
        server: ChatServer) -> None:
    # An IPv4 address written in IPv6 is that IPv4 address (it was another string);
    # with a prefix of 128 each IPv6 address is its own.
    assert server.irc is not None
    await server.services.accounts.create("owner", PASSWORD)
    owner = await login(server.irc.port, "owner")
    try:
        owner.send("JOIN #hall")
        await owner.expect("366")
        for nick, address in (("visitor", "2001:db8::1"), ("walker", "10.0.0.7")):
            async with irc_guest(server, nick, address):
                owner.send(f"MODE #hall +b {nick}")
                await owner.expect("MODE")
        for nick, address, answer in (("back", "2001:db8::1", "474"),
                                      ("neighbour", "2001:db8::2", "366"),
                                      ("again", "::ffff:10.0.0.7", "474"),
                                      ("next_door", "10.0.0.8", "366")):
            async with irc_guest(server, nick, address) as guest:
                await guest.send("JOIN #hall")
                assert (await lines_until(guest, "474", "366"))[-1].split(" ")[1] == answer, nick
    finally:
        await owner.close()
