"""The limits per address count an IPv6 address with its network (limits.ipv6_prefix):
one host commonly has a whole /64 to pick addresses from. Clients are told apart
here as a trusted proxy tells them (X-Forwarded-For), over real sockets."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, ChatServer
from tests.web.helpers import WsChat, http

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
