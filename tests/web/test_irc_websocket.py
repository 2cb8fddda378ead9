"""/irc: the IRC listener's protocol over a WebSocket (IRCv3 WebSocket), as a static
web IRC client (Kiwi IRC, gamja) speaks it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chatd.domain.clock import ManualClock
from tests.helpers import PASSWORD, ChatServer, start_server
from tests.irc.helpers import END_OF_WELCOME, IrcClient, login
from tests.web.helpers import lines_until, ws_url


async def test_register_join_and_talk_with_a_tcp_irc_user(server: ChatServer) -> None:
    accounts = server.services.accounts
    await accounts.create("kiwi", PASSWORD)
    await accounts.create("tess", PASSWORD)
    assert server.irc is not None
    tess: IrcClient = await login(server.irc.port, "tess")
    try:
        tess.send("JOIN #lobby")
        await tess.expect("366")
        async with connect(ws_url(server, "/irc"),
                           subprotocols=["text.ircv3.net", "binary.ircv3.net"]) as ws:
            assert ws.subprotocol == "text.ircv3.net"  # the client's preference
            await ws.send(f"PASS kiwi:{PASSWORD}")
            await ws.send("NICK kiwi")
            await ws.send("USER kiwi 0 * :Kiwi")
            welcome = await lines_until(ws, *END_OF_WELCOME)
            assert any(" 001 kiwi " in line for line in welcome)
            await ws.send("JOIN #lobby")
            await lines_until(ws, "366")
            await ws.send("PRIVMSG #lobby :hello from a web IRC client")
            heard = await tess.expect("PRIVMSG")
            assert heard.params == ("#lobby", "hello from a web IRC client")
            tess.send("PRIVMSG #lobby :hello back")
            back = await lines_until(ws, "PRIVMSG")
            assert back[-1].endswith(":hello back") and back[-1].startswith(":tess!")
    finally:
        await tess.close()


async def test_binary_subprotocol_sends_binary_messages(server: ChatServer) -> None:
    async with connect(ws_url(server, "/irc"), subprotocols=["binary.ircv3.net"]) as ws:
        assert ws.subprotocol == "binary.ircv3.net"
        await ws.send(b"PING :abc")
        pong = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(pong, bytes) and pong.endswith(b"PONG chatd.local :abc")


async def test_irc_over_websocket_needs_the_irc_listener(db_path: Path,
                                                         clock: ManualClock) -> None:
    server = await start_server(db_path, clock=clock, web__enabled=True, web__port=0)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(server, "/irc"), subprotocols=["text.ircv3.net"])
        assert refused.value.response.status_code == 404
    finally:
        await server.stop()
