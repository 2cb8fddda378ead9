"""Failed-login limits: per IP address and per account name, the same for all.

Clients connect from different 127.x addresses (all loopback) so the IP limit
and the account-name limit can be observed separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatd.client.logins import password_login, resume_login, token_login
from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD
from tests.protection import ProtectionClients, error_of, serving


def comparable(final: dict[str, Any]) -> dict[str, Any]:
    """A final reply without its label: what must not differ between two cases."""
    return {k: v for k, v in final.items() if k != "label"}


async def fail_logins(clients: ProtectionClients, ip: str, names: list[str],
                      verb: str = "login") -> None:
    """One failed attempt per name, each on a fresh connection from ``ip``."""
    for name in names:
        client = await clients.from_ip(ip)
        line = f"/auth chatd_{name}" if verb == "auth" else f"/login {name} wrong-password"
        assert (await error_of(client, line))["code"] == "auth-failed"
        await client.close()


async def make_accounts(clients: ProtectionClients, *names: str) -> None:
    for name in names:
        client = await clients.user(name)
        await client.close()


async def test_five_failures_lock_the_account_name_for_everyone(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (server, clients):
        await make_accounts(clients, "alice", "bob")
        # Names count case-insensitively, as accounts do.
        await fail_logins(clients, "127.0.0.2", ["alice", "Alice", "ALICE", "aLiCe", "alice"])
        # The right password no longer helps, from any address ...
        for ip in ("127.0.0.2", "127.0.0.3"):
            client = await clients.from_ip(ip)
            error = await error_of(client, f"/login alice {PASSWORD}")
            assert error["code"] == "rate-limited", error
            # ... and the connection itself is fine.
            await client.command("/ping")
        # Another account from an address that did not fail is not affected.
        bob = await clients.from_ip("127.0.0.3")
        assert (await bob.command(f"/login bob {PASSWORD}"))["user"] == "bob"
        # A failing address stays limited for any name too.
        other = await clients.from_ip("127.0.0.2")
        assert (await error_of(other, f"/login bob {PASSWORD}"))["code"] == "rate-limited"
        # Sweeping keeps what has not refilled.
        server.sweep_once()
        assert (await error_of(other, f"/login alice {PASSWORD}"))["code"] == "rate-limited"
        entries = await server.services.audit.entries(100)
        assert sum(1 for e in entries if e.action == "failed-login"
                   and (e.target or "").lower() == "alice") >= 5


async def test_the_refusal_does_not_reveal_whether_the_account_exists(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await make_accounts(clients, "alice")
        # Before the limit: a wrong password and an unknown user fail alike.
        first = await clients.from_ip("127.0.0.2")
        known = await error_of(first, "/login alice wrong-password")
        unknown = await error_of(first, "/login nobody wrong-password")
        assert comparable(known) == comparable(unknown)
        await fail_logins(clients, "127.0.0.2", ["alice", "nobody", "alice"])
        # Past it: one reply, with the right password, a wrong one, or no account.
        client = await clients.from_ip("127.0.0.2")
        replies = [comparable(await error_of(client, line)) for line in (
            f"/login alice {PASSWORD}", "/login alice wrong-password",
            f"/login nobody {PASSWORD}", "/login ghost whatever")]
        assert replies[0]["code"] == "rate-limited"
        assert all(r == replies[0] for r in replies), replies
        # The wait is the address's, whatever the name: it tells nothing of accounts.
        assert replies[0]["retry_ms"] > 0


async def test_the_address_limit_covers_every_name(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await make_accounts(clients, "bob")
        await fail_logins(clients, "127.0.0.4", ["x1", "x2", "x3", "x4", "x5"])
        blocked = await clients.from_ip("127.0.0.4")
        assert (await error_of(blocked, f"/login bob {PASSWORD}"))["code"] == "rate-limited"
        # bob's name was never charged: elsewhere he logs in.
        fine = await clients.from_ip("127.0.0.5")
        assert (await fine.command(f"/login bob {PASSWORD}"))["user"] == "bob"


async def test_four_failures_are_allowed_and_successes_cost_nothing(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await make_accounts(clients, "alice")
        for _ in range(10):
            client = await clients.from_ip("127.0.0.2")
            await client.command(f"/login alice {PASSWORD}")
            await client.close()
        await fail_logins(clients, "127.0.0.2", ["alice"] * 4)
        client = await clients.from_ip("127.0.0.2")
        assert (await client.command(f"/login alice {PASSWORD}"))["user"] == "alice"


async def test_waiting_restores_logins(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (server, clients):
        await make_accounts(clients, "alice")
        await fail_logins(clients, "127.0.0.2", ["alice"] * 5)
        client = await clients.from_ip("127.0.0.2")
        clock.advance(5)
        assert (await error_of(client, f"/login alice {PASSWORD}"))["code"] == "rate-limited"
        clock.advance(55)  # a whole auth_window (60 s) after the failures
        server.sweep_once()
        assert (await client.command(f"/login alice {PASSWORD}"))["user"] == "alice"


async def test_auth_failures_count_per_address_only(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await make_accounts(clients, "alice")
        await fail_logins(clients, "127.0.0.6", ["t1", "t2", "t3", "t4", "t5"], verb="auth")
        blocked = await clients.from_ip("127.0.0.6")
        assert (await error_of(blocked, "/auth chatd_anything"))["code"] == "rate-limited"
        assert (await error_of(blocked, f"/login alice {PASSWORD}"))["code"] == "rate-limited"
        # No account name was charged by /auth.
        elsewhere = await clients.from_ip("127.0.0.7")
        assert (await elsewhere.command(f"/login alice {PASSWORD}"))["user"] == "alice"
        token = (await elsewhere.command("/token create bot"))["token"]
        # Even a valid token is refused from the blocked address.
        assert (await error_of(blocked, f"/auth {token}"))["code"] == "rate-limited"
        other = await clients.from_ip("127.0.0.8")
        assert (await other.command(f"/auth {token}"))["user"] == "alice"


async def test_token_logins_with_a_name_charge_the_name(
        db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock) as (_, clients):
        await make_accounts(clients, "alice")
        for _ in range(5):
            client = await clients.from_ip("127.0.0.2")
            error = await error_of(client, "/login alice --token chatd_wrong")
            assert error["code"] == "auth-failed"
            await client.close()
        elsewhere = await clients.from_ip("127.0.0.3")
        assert (await error_of(elsewhere, f"/login alice {PASSWORD}"))["code"] == "rate-limited"


async def test_auth_limits_follow_the_configuration(db_path: Path, clock: ManualClock) -> None:
    async with serving(db_path, clock, limits__auth_failures=2,
                       limits__auth_window=10) as (_, clients):
        await make_accounts(clients, "alice")
        await fail_logins(clients, "127.0.0.2", ["alice"] * 2)
        client = await clients.from_ip("127.0.0.2")
        assert (await error_of(client, f"/login alice {PASSWORD}"))["code"] == "rate-limited"
        clock.advance(10)
        assert (await client.command(f"/login alice {PASSWORD}"))["user"] == "alice"


async def test_a_login_without_its_secret_is_no_failed_login(
        db_path: Path, clock: ManualClock) -> None:
    """In JSON mode, a login whose password, token or resume token is empty (what a
    client formatting an empty string sends, or only characters the line's cleaning
    removes) is bad-arguments naming what is missing, never a secret tried: more of
    them than limits.auth_failures (5) leave the address's and the name's buckets as
    they were, and none is audited."""
    async with serving(db_path, clock) as (server, clients):
        await make_accounts(clients, "alice")
        client = await clients.from_ip("127.0.0.2")
        for line, missing in [(password_login("alice", ""), "<password>"),
                              (token_login("alice", ""), "<token>"),
                              (resume_login(""), "<resume-token>"),
                              ("/auth \x00", "<token>"),
                              ("/auth --resume \u00a0", "<token>"),
                              ("/login alice \t\x7f", "<password>")]:
            error = await error_of(client, line)
            assert error["code"] == "bad-arguments", (line, error)
            assert error["message"].startswith(f"missing {missing}. Usage: "), (line, error)
        assert (await client.command(f"/login alice {PASSWORD}"))["user"] == "alice"
        entries = await server.services.audit.entries(50)
        assert not [e for e in entries if e.action == "failed-login"]
