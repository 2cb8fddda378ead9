"""Registration over real sockets: NICK/USER/PASS, CAP, SASL PLAIN, welcome, errors."""

from __future__ import annotations

import asyncio
import base64
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from chatd.irc import session as session_module
from chatd.irc.codec import parse
from chatd.irc.session import IrcSession
from tests.helpers import PASSWORD, ChatServer, eventually
from tests.irc.conftest import IrcFactory
from tests.irc.helpers import IrcClient


async def _account(server: ChatServer, name: str) -> None:
    await server.services.accounts.create(name, PASSWORD)


async def test_pass_account_colon_password_registers(server: ChatServer,
                                                     irc: IrcFactory) -> None:
    await _account(server, "bob")
    client = await irc()
    lines = await client.register("bob", password=f"bob:{PASSWORD}")
    codes = [m.command for m in lines]
    assert codes[:2] == ["900", "001"]
    assert {"002", "003", "004", "005", "251", "254", "255", "422"} <= set(codes)
    isupport = " ".join(" ".join(m.params) for m in lines if m.command == "005")
    for token in ("CHANTYPES=#", "PREFIX=(ov)@+", "CHANMODES=b,k,l,imnstR", "NICKLEN=24",
                  "CHANNELLEN=33", "CASEMAPPING=ascii", "TOPICLEN=390"):
        assert token in isupport
    assert client.nick == "bob"
    assert server.services.accounts.find("bob") is not None


async def test_the_pass_secret_is_not_kept_after_registration(server: ChatServer,
                                                              irc: IrcFactory) -> None:
    await _account(server, "kim")
    client = await irc()
    await client.register("kim", password=f"kim:{PASSWORD}")
    account = server.services.accounts.find("kim")
    assert account is not None
    [session] = server.services.presence.connections(account)
    assert isinstance(session, IrcSession)
    assert session.pending is None


async def test_pass_with_the_nick_as_account_and_the_nick_takes_the_account_case(
        server: ChatServer, irc: IrcFactory) -> None:
    await _account(server, "Bob")
    client = await irc()
    lines = await client.register("bOB", password=PASSWORD)
    assert next(m for m in lines if m.command == "001").params[0] == "Bob"


async def test_wrong_password_gets_464_and_error(server: ChatServer, irc: IrcFactory) -> None:
    await _account(server, "bob")
    client = await irc()
    client.send("PASS bob:wrong-pw", "NICK bob", "USER bob 0 * :Bob")
    lines = await client.closed()
    assert ":chatd.local 464 bob :Password incorrect" in lines
    assert lines[-1].startswith("ERROR :Closing Link")


async def test_without_an_account_and_without_guests_464(irc: IrcFactory) -> None:
    client = await irc()
    client.send("NICK nobody", "USER nobody 0 * :x")
    lines = await client.closed()
    assert any(" 464 nobody :Password required" in line for line in lines)
    assert lines[-1].startswith("ERROR ")


async def test_irc_md_documents_each_capability_cap_ls_offers(irc: IrcFactory) -> None:
    client = await irc()
    client.send("CAP LS")
    offered = set((await client.expect("CAP")).params[2].split())
    doc = (Path(__file__).parents[2] / "docs" / "IRC.md").read_text()
    table = doc.split("## 4. Capabilities", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([^`]+)`", table, re.MULTILINE))
    assert documented == offered


async def test_cap_negotiation_holds_registration_until_end(server: ChatServer,
                                                            irc: IrcFactory) -> None:
    await _account(server, "bob")
    client = await irc()
    client.send("CAP LS 302", f"PASS bob:{PASSWORD}", "NICK bob", "USER bob 0 * :Bob")
    ls = await client.expect("CAP")
    assert ls.params[1] == "LS"
    assert set(ls.params[2].split()) == {
        "away-notify", "batch", "draft/chathistory", "echo-message", "labeled-response",
        "message-tags", "multi-prefix", "sasl=PLAIN", "server-time", "setname",
        "userhost-in-names"}
    await client.nothing()
    client.send("CAP REQ :server-time bogus")
    assert (await client.expect("CAP")).params[1:] == ("NAK", "server-time bogus")
    client.send("CAP REQ :server-time echo-message", "CAP REQ :-echo-message", "CAP LIST")
    assert (await client.expect("CAP")).params[1] == "ACK"
    assert (await client.expect("CAP")).params[1] == "ACK"
    assert (await client.expect("CAP")).params[1:] == ("LIST", "server-time")
    client.send("CAP BOGUS")
    assert (await client.expect("410")).params[1] == "BOGUS"
    client.send("CAP END")
    assert (await client.expect("001")).params[0] == "bob"


async def test_echoed_tokens_never_carry_a_line_break_or_nul(irc: IrcFactory) -> None:
    """PING's token and a refused CAP REQ come back as sent, but a CR or NUL in them
    (only LF ends an IRC line here) would break the reply line."""
    client = await irc()
    client.send_raw(b"PING a\rPING b\r\nPING :x\x00y\r\nCAP REQ :bogus\rz\r\n")
    assert await client.raw() == ":chatd.local PONG chatd.local :a PING"
    assert await client.raw() == ":chatd.local PONG chatd.local :x y"
    assert await client.raw() == ":chatd.local CAP * NAK :bogus z"


async def test_a_cap_req_of_nothing_is_refused_and_changes_nothing(server: ChatServer,
                                                                   irc: IrcFactory) -> None:
    """``CAP REQ`` (or ``CAP REQ :``) asks for no change: a NAK (which, per IRCv3
    capability negotiation, changes nothing), not an ACK of nothing; registration
    goes on after CAP END as after any NAK."""
    await _account(server, "bob")
    client = await irc()
    client.send("CAP LS 302", "CAP REQ :server-time")
    await client.expect("CAP")
    assert (await client.expect("CAP")).params[1:] == ("ACK", "server-time")
    client.send("CAP REQ", "CAP REQ :", "CAP REQ :  ", "CAP LIST")
    for _ in range(3):
        assert (await client.expect("CAP")).params[1] == "NAK"
    assert (await client.expect("CAP")).params[1:] == ("LIST", "server-time")
    client.send(f"PASS bob:{PASSWORD}", "NICK bob", "USER bob 0 * :Bob", "CAP END")
    assert (await client.expect("001")).params[0] == "bob"


async def test_cap_ls_without_302_shows_bare_names(irc: IrcFactory) -> None:
    client = await irc()
    client.send("CAP LS")
    assert "sasl" in (await client.expect("CAP")).params[2].split()


async def test_cap_302_holds_for_the_rest_of_the_connection(server: ChatServer,
                                                             irc: IrcFactory) -> None:
    await _account(server, "bob")
    client = await irc()
    client.send("CAP LS 302", "CAP LS")
    for _ in range(2):
        assert "sasl=PLAIN" in (await client.expect("CAP")).params[2].split()
    client.send("CAP LIST")
    assert (await client.expect("CAP")).params[1:] == ("LIST", "")
    client.send(f"PASS bob:{PASSWORD}", "NICK bob", "USER bob 0 * :Bob", "CAP END")
    await client.expect("001")
    client.send("CAP LS")  # after registration too
    assert "sasl=PLAIN" in (await client.expect("CAP")).params[2].split()


@pytest.mark.server(limits__max_connections_per_ip=100)
async def test_cap_302_costs_an_idle_connection_nothing_more(irc: IrcFactory) -> None:
    # The version is kept among the capabilities: with four asked for, a fifth member
    # grew each 302 connection's set from 216 to 472 bytes. Connections that asked
    # for the same capabilities hold them no heavier with 302 than without.
    asked = "CAP REQ :away-notify batch message-tags server-time"

    async def held(count: int, ls: str) -> int:
        """The bytes session.py holds after ``count`` more connections negotiated."""
        before = tracemalloc.take_snapshot()
        for _ in range(count):
            client = await irc()
            client.send(ls, asked)
            await client.expect("CAP")
            assert (await client.expect("CAP")).params[1] == "ACK"
        after = tracemalloc.take_snapshot()
        only = [tracemalloc.Filter(True, session_module.__file__)]
        grown = after.filter_traces(only).compare_to(before.filter_traces(only), "filename")
        return sum(stat.size_diff for stat in grown)

    count = 40
    tracemalloc.start()
    try:
        await held(2, "CAP LS 302")  # what the first connections of a kind make once
        await held(2, "CAP LS")
        plain = await held(count, "CAP LS")
        modern = await held(count, "CAP LS 302")
    finally:
        tracemalloc.stop()
    # Unequal by the tracing's noise only, far below 256 bytes a connection.
    assert modern - plain < count * 64, (plain, modern)


async def test_sasl_plain_success(server: ChatServer, irc: IrcFactory) -> None:
    await _account(server, "carol")
    client = await irc()
    client.send("CAP LS 302", "CAP REQ :sasl", "NICK carol", "USER c 0 * :Carol")
    assert (await client.expect("CAP")).params[1] == "LS"
    assert (await client.expect("CAP")).params[1] == "ACK"
    assert (await client.sasl("carol", PASSWORD)).command == "903"
    assert "900" in [line.split()[1] for line in client.lines]
    client.send("AUTHENTICATE PLAIN")
    assert (await client.expect("907")).command == "907"
    client.send("CAP END")
    assert (await client.expect("001")).params[0] == "carol"


async def test_sasl_failures(server: ChatServer, irc: IrcFactory) -> None:
    await _account(server, "carol")
    client = await irc()
    client.send("CAP REQ :sasl", "NICK carol", "USER c 0 * :Carol")
    assert (await client.sasl("carol", "wrong-pw")).command == "904"
    client.send("AUTHENTICATE SCRAM-SHA-256")
    assert (await client.expect("908")).params[1] == "PLAIN"
    await client.expect("904")
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")
    await client.expect("906")
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE not-base64!")
    await client.expect("904")
    client.send("AUTHENTICATE PLAIN", "AUTHENTICATE " + "A" * 401)
    await client.expect("905")
    other = base64.b64encode(f"alice\0carol\0{PASSWORD}".encode()).decode()
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {other}")
    await client.expect("904")
    # Still unauthenticated: ending negotiation without a password is refused.
    client.send("CAP END")
    assert any(" 464 " in line for line in await client.closed())


async def test_sasl_without_the_capability_fails_with_904(server: ChatServer,
                                                            irc: IrcFactory) -> None:
    """AUTHENTICATE before CAP REQ sasl: refused (904), not run; once the capability
    is negotiated, the same exchange logs in."""
    await _account(server, "carol")
    client = await irc()
    client.send("CAP LS 302", "NICK carol", "USER c 0 * :Carol")
    await client.expect("CAP")
    client.send("AUTHENTICATE PLAIN")
    refused = await client.expect("904", "AUTHENTICATE")
    assert refused.command == "904" and "CAP REQ sasl" in refused.params[-1]
    client.send("CAP REQ :sasl")
    await client.expect("CAP")
    assert (await client.sasl("carol", PASSWORD)).command == "903"
    client.send("CAP END")
    assert (await client.expect("001")).params[0] == "carol"


@pytest.mark.server(accounts__guests=True)
async def test_registration_ending_during_an_exchange_aborts_it_with_906(
        irc: IrcFactory) -> None:
    """CAP END while AUTHENTICATE waits for its payload: the exchange is aborted,
    said with 906 before the welcome (IRCv3 SASL), and the client registers
    without it (here, as a guest)."""
    client = await irc()
    client.send("CAP REQ :sasl", "NICK zed", "USER z 0 * :Zed", "AUTHENTICATE PLAIN")
    assert (await client.expect("AUTHENTICATE")).params == ("+",)
    client.send("CAP END")
    assert (await client.expect("906", "001")).command == "906"
    assert (await client.expect("001")).params[0] == "zed"


async def test_sasl_payload_in_400_byte_chunks(server: ChatServer, irc: IrcFactory) -> None:
    name = "c" * 24
    password = "p" * 72
    await server.services.accounts.create(name, password)
    client = await irc()
    payload = base64.b64encode(f"{name}\0{name}\0{password}".encode() + b"\0" * 200).decode()
    client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
    await client.expect("AUTHENTICATE")
    chunks = [payload[i:i + 400] for i in range(0, len(payload), 400)]
    assert len(chunks[0]) == 400
    client.send(*(f"AUTHENTICATE {c}" for c in chunks))
    if len(chunks[-1]) == 400:
        client.send("AUTHENTICATE +")
    # The padding makes it no PLAIN payload: the chunks were joined, then refused.
    await client.expect("904")
    exact = base64.b64encode(f"{name}\0{name}\0{password}".encode()).decode()
    client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {exact}")
    await client.expect("903")


async def test_failed_logins_are_limited_like_the_line_protocol(irc: IrcFactory,
                                                                server: ChatServer) -> None:
    await _account(server, "dave")
    client = await irc()
    client.send("CAP REQ :sasl")
    for _ in range(5):
        assert (await client.sasl("dave", "wrong-pw")).command == "904"
    # The IP is now refused before the password is checked, even a right one.
    assert (await client.sasl("dave", PASSWORD)).command == "904"
    # The failures are audited; the refusal, checked against nothing, is not.
    entries = await server.services.audit.entries(20)
    assert sum(e.action == "failed-login" for e in entries) == 5


async def test_an_empty_pass_is_no_password_given_and_no_failed_login(
        irc: IrcFactory, server: ChatServer) -> None:
    """``PASS :`` (and ``PASS erin:``) gives no secret: 461 as PASS without one, never
    a password tried. More of them than limits.auth_failures (5) leave the address's
    failed-login bucket as it was: the right password logs in after them."""
    await _account(server, "erin")
    for _ in range(3):
        for empty in ("PASS :", "PASS erin:"):
            client = await irc()
            client.send(empty, "NICK erin", "USER e 0 * :Erin")
            answered = [(m.command, m.params[1]) for m in await client.until("464")
                        if m.command in ("461", "464")]
            assert answered == [("461", "PASS"), ("464", "Password required: log in with "
                                                  "SASL PLAIN or PASS account:password")]
            await client.closed()
    entries = await server.services.audit.entries(50)
    assert not [e for e in entries if e.action == "failed-login"]
    lines = await (await irc()).register("erin", password=f"erin:{PASSWORD}")
    assert next(m for m in lines if m.command == "001").params[0] == "erin"


async def test_an_empty_sasl_password_is_malformed_and_no_failed_login(
        irc: IrcFactory, server: ChatServer) -> None:
    """SASL PLAIN with an empty password is 904 saying so, never a password tried:
    more of them than limits.auth_failures (5) leave the failed-login buckets as they
    were, and the right password logs in after them on the same connection."""
    await _account(server, "erin")
    client = await irc()
    client.send("CAP REQ :sasl")
    for _ in range(6):
        refused = await client.sasl("erin", "")
        assert refused.command == "904"
        assert refused.params[1] == "SASL authentication failed: the password is empty"
    assert (await client.sasl("erin", PASSWORD)).command == "903"
    entries = await server.services.audit.entries(50)
    assert not [e for e in entries if e.action == "failed-login"]
    assert server.services.stats.login_failures == 0


async def test_registration_errors(irc: IrcFactory, server: ChatServer) -> None:
    client = await irc()
    client.send("JOIN #x")
    assert (await client.expect("451")).params[0] == "*"
    client.send("NICK")
    await client.expect("431")
    client.send("NICK bad!nick")
    assert (await client.expect("432")).params[1] == "bad!nick"
    client.send("USER onlyone")
    assert (await client.expect("461")).params[1] == "USER"
    client.send("FROB x")
    assert (await client.expect("421")).params[1] == "FROB"
    client.send("PING")
    await client.expect("409")
    client.send("PING :abc def")
    assert (await client.expect("PONG")).params == ("chatd.local", "abc def")
    client.send("PONG x", ":only.source", "@tag=1")
    await client.nothing()
    # A word no command can be is still an unknown command.
    client.send("GET_INFO now", "garbage-without-verb-:")
    assert (await client.expect("421")).params[1] == "GET_INFO"
    assert (await client.expect("421")).params[1] == "GARBAGE-WITHOUT-VERB-:"


async def test_after_registration(irc: IrcFactory) -> None:
    client = await irc("bob")
    client.send("USER a b c d", "PASS x")
    await client.expect("462")
    await client.expect("462")
    client.send("NICK robert")
    await client.expect("484")
    client.send("NICK bob")
    await client.nothing()


async def test_motd_and_lusers(server: ChatServer, irc: IrcFactory) -> None:
    client = await irc("bob")
    client.send("MOTD", "LUSERS")
    assert (await client.expect("422")).params[1] == "MOTD File is missing"
    assert (await client.expect("251")).params[1].startswith("There are 1 users")


@pytest.mark.server(server__motd="first line\nsecond line", server__name="testnet",
                    irc__server_name="irc.test")
async def test_motd_lines_and_names(irc: IrcFactory) -> None:
    client = await irc("bob")
    raw = [line for line in client.lines if line.split()[1] in ("375", "372", "376")]
    assert raw[0] == ":irc.test 375 bob :- irc.test Message of the day - "
    assert raw[1:3] == [":irc.test 372 bob :- first line", ":irc.test 372 bob :- second line"]
    assert raw[3].startswith(":irc.test 376 bob ")
    assert ":irc.test 001 bob :Welcome to the testnet IRC Network bob!bob@irc.test" in client.lines


@pytest.mark.server(server__name="Our Chat=\\Home")
async def test_a_network_name_with_spaces_is_one_isupport_token(irc: IrcFactory) -> None:
    """server.name may hold spaces, which would end the ISUPPORT token and start
    another ("NETWORK=Our" and "Chat"): its value is escaped as ISUPPORT's are,
    \\x20 for a space, \\x3D for "=" and \\x5C for a backslash."""
    client = await irc("bob")
    isupport = [m for m in (parse(line) for line in client.lines) if m.command == "005"]
    tokens = [token for m in isupport for token in m.params[1:-1]]
    assert "NETWORK=Our\\x20Chat\\x3D\\x5CHome" in tokens
    assert not [token for token in tokens if token.startswith("Chat")], tokens
    assert ":chatd.local 001 bob :Welcome to the Our Chat=\\Home IRC Network " \
           "bob!bob@chatd.local" in client.lines


@pytest.mark.server(server__motd="x" * 600, irc__server_name="irc.test")
async def test_a_motd_line_too_long_for_the_nick_is_cut_to_fit(irc: IrcFactory) -> None:
    # The welcome's lines are formatted once for everyone; one that a nick makes
    # too long is cut as any reply is.
    for nick in ("b", "a-much-longer-nickname"):
        client = await irc(nick)
        [motd] = [line for line in client.lines if line.split()[1] == "372"]
        assert motd.startswith(f":irc.test 372 {nick} :- xxx")
        assert len(motd.encode()) == 510


async def test_quit_says_error_and_keeps_memberships(server: ChatServer,
                                                     irc: IrcFactory) -> None:
    client = await irc("bob")
    client.send("JOIN #keep", "QUIT :see you")
    lines = await client.closed()
    assert lines[-1] == "ERROR :Closing Link: bob (Quit: see you)"
    room = server.services.rooms.find("keep")
    bob = server.services.accounts.find("bob")
    assert room is not None and bob is not None and room.is_member(bob.id)


async def test_framing_errors_keep_the_connection(irc: IrcFactory) -> None:
    client = await irc("bob")
    client.send("PRIVMSG #x :" + "y" * 600)
    assert (await client.expect("417")).params == ("bob", "Input line was too long")
    client.send_raw(b"PRIVMSG #x :\xff\xfe\r\n")
    fail = await client.expect("FAIL")
    assert fail.params[:2] == ("*", "INVALID_UTF8")
    client.send_raw(b"PI")
    client.send_raw(b"NG :split")
    client.send_raw(b" across reads\r")
    client.send_raw(b"\n")
    assert (await client.expect("PONG")).params[1] == "split across reads"


async def test_login_timeout_closes_with_error(server: ChatServer, clock: ManualClock,
                                               irc: IrcFactory) -> None:
    client = await irc()
    client.send("NICK slow")
    await client.nothing(0.05)
    clock.advance(server.config.limits.login_timeout + 1)
    server.sweep_once()
    lines = await client.closed()
    assert ":chatd.local NOTICE slow :no login in time; goodbye." in lines
    assert lines[-1].startswith("ERROR :Closing Link")


@pytest.mark.server(limits__max_connections_per_ip=1)
async def test_connection_limits_hold_for_irc(irc: IrcFactory) -> None:
    await irc()
    second = await irc()
    lines = await second.closed()
    assert "too many connections" in lines[0]
    assert lines[-1].startswith("ERROR ")


async def test_shutdown_tells_irc_clients(server: ChatServer, irc: IrcFactory) -> None:
    client = await irc("bob")
    await server.stop()
    lines = await client.closed()
    assert ":chatd.local NOTICE bob :the server is shutting down. Goodbye." in lines
    assert lines[-1].startswith("ERROR ")


async def test_a_connection_gone_while_its_login_replays_is_not_registered(
        server: ChatServer, irc: IrcFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection ends while its log-in replays the direct messages waiting
    for the account: registration stops there. (It went on: the dead session's
    USER became the account's identity for good, stale in WHO and WHOIS, and it
    stayed among the away-notify listeners.)"""
    assert server.irc is not None
    await _account(server, "bob")
    alice = await irc("alice")
    alice.send("PRIVMSG bob :while you were out", "PING sync")
    await alice.expect("PONG")
    messaging = server.services.messaging
    replaying, replayed = asyncio.Event(), asyncio.Event()
    replay = messaging.replay_direct
    login: list[asyncio.Task[Any]] = []

    async def slow_replay(*args: Any) -> int:
        task = asyncio.current_task()  # the connection's command: its registration
        assert task is not None
        login.append(task)
        replaying.set()
        await replayed.wait()
        return await replay(*args)

    monkeypatch.setattr(messaging, "replay_direct", slow_replay)
    bob = await IrcClient.connect(server.irc.port)
    bob.send("CAP LS 302", "CAP REQ :away-notify", f"PASS bob:{PASSWORD}", "NICK bob",
             "USER ghostident 0 * :Ghost", "CAP END")
    await replaying.wait()
    bob.reset()
    account = server.services.accounts.require("bob")
    await eventually(lambda: not account.online)
    replayed.set()
    await asyncio.wait(login)
    assert server.irc.front.people.username("bob") == "bob"
    alice.send("WHO bob")
    assert (await alice.expect("352")).params[2] == "bob"
    # The direct message waits for bob's next log-in.
    again = await irc("bob")
    assert (await again.expect("PRIVMSG")).params == ("bob", "while you were out")
