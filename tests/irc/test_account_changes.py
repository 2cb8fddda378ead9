"""Account changes seen from IRC: a password changed elsewhere, and blocked direct messages."""

from __future__ import annotations

from tests.helpers import PASSWORD, Clients, messages, settle
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


async def test_privmsg_of_a_blocked_user_is_refused_and_never_delivered(
        irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await irc("bob")
    await alice.command("/block bob")
    bob.send("PRIVMSG alice :let me in", "NOTICE alice :quietly", "PRIVMSG carol,alice :two")
    refused = await bob.expect("400")
    assert refused.params == ("bob", "PRIVMSG", "alice does not accept direct messages from you.")
    assert (await bob.expect("401", "400")).command == "401"  # carol: no such nick
    assert (await bob.expect("400")).params[1:] == (
        "PRIVMSG", "alice does not accept direct messages from you.")
    await bob.nothing()  # NOTICE never answers with an error
    assert messages(await settle(alice)) == []
    await alice.command("/unblock bob")
    bob.send("PRIVMSG alice :thanks")
    got = await alice.next_event(lambda e: e.get("type") == "message")
    assert (got["from"], got["text"]) == ("bob", "thanks")


async def test_a_password_change_voids_a_sasl_login_whose_registration_had_not_ended(
        irc: IrcFactory, clients: Clients) -> None:
    alice = await clients.user("alice")
    client = await irc()
    client.send("CAP LS 302", "CAP REQ :sasl", "NICK alice", "USER a 0 * :Alice")
    assert (await client.expect("CAP")).params[1] == "LS"
    assert (await client.expect("CAP")).params[1] == "ACK"
    assert (await client.sasl("alice", PASSWORD)).command == "903"
    await alice.command(f"/passwd {PASSWORD} new-password")
    client.send("CAP END")
    lines = await client.closed()
    assert any(" 464 alice :Password changed since SASL authentication" in line
               for line in lines)
    assert not any(" 001 " in line for line in lines)
    assert (await alice.command("/whoami"))["connections"] == 1
    # Authenticating again, with the new password, works.
    again = await irc()
    again.send("CAP LS 302", "CAP REQ :sasl", "NICK alice", "USER a 0 * :Alice")
    assert (await again.sasl("alice", "new-password")).command == "903"
    again.send("CAP END")
    assert (await again.expect("001")).params[0] == "alice"



async def test_tagmsg_of_a_blocked_user_is_dropped(irc: IrcFactory, clients: Clients) -> None:
    """A TAGMSG to a nick is a direct message of tags (a reaction, typing): a block
    holds it back as it holds back the text, or a blocked user could still put
    4 KiB of client tags on the screen of whoever blocked them."""
    alice_lp = await clients.user("alice")
    alice = await irc("alice", caps=("message-tags",))
    bob = await irc("bob", caps=("message-tags",))
    await alice_lp.command("/block bob")
    bob.send("@+draft/react=lol TAGMSG alice", "@+typing=active TAGMSG alice", "PING sent")
    assert (await bob.expect("PONG")).params[1] == "sent"  # TAGMSG stays quiet
    await alice.nothing(0.3)
    await alice_lp.command("/unblock bob")
    bob.send("@+draft/react=yes TAGMSG alice")
    relayed = await alice.expect("TAGMSG")
    assert relayed.tags == {"+draft/react": "yes"} and relayed.source.startswith("bob!")
