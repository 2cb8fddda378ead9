"""A change of password on the line protocol closes the account's IRC connections."""

from __future__ import annotations

from tests.helpers import PASSWORD, Clients
from tests.irc.conftest import IrcFactory


async def test_passwd_elsewhere_closes_the_irc_connection_with_a_notice(
        irc: IrcFactory, clients: Clients) -> None:
    on_irc = await irc("alice")
    alice = await clients.user("alice")
    reply = await alice.command(f"/passwd {PASSWORD} new-password")
    assert reply["closed_connections"] == 1
    lines = await on_irc.closed()
    notices = [line for line in lines if " NOTICE alice :" in line]
    assert notices and "your password was changed on another connection" in notices[0]
    assert lines[-1].startswith("ERROR ")
    assert (await alice.command("/whoami"))["connections"] == 1
