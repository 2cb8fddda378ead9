"""/ws: chatd's line protocol over a WebSocket, through the same connection machinery as TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tracemalloc

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatd.domain.clock import ManualClock
from chatd.web import websocket
from tests.helpers import PASSWORD, ChatServer, Clients, eventually, settle
from tests.web.helpers import RawWs, WsChat, ws_url
from tests.web.test_http import raw_request, status_and_error


async def test_a_browser_user_and_a_tcp_user_talk_in_one_room(
        server: ChatServer, clients: Clients) -> None:
    tcp = await clients.user("carol")
    await tcp.command("/create den")
    web = await WsChat.open(server)
    try:
        assert web.ws.subprotocol == "text.chatd"
        await web.login("wendy")
        assert (await web.command("/join den"))["type"] == "ok"
        await settle(tcp)
        await web.command("/say den hello from the browser")
        heard = await tcp.next_event(lambda e: e.get("type") == "message")
        assert heard["from"] == "wendy" and heard["text"] == "hello from the browser"
        await tcp.command("/say den hello from nc")
        got = await web.until(lambda r: r.get("type") == "message")
        assert got[-1]["from"] == "carol" and got[-1]["text"] == "hello from nc"
    finally:
        await web.close()


async def test_without_format_json_the_text_protocol_is_spoken(server: ChatServer) -> None:
    async with connect(ws_url(server), subprotocols=["text.chatd"]) as ws:
        banner = await ws.recv()
        assert isinstance(banner, str) and banner.startswith("* chatd")
        await ws.send("/ping")
        assert "pong" in str(await asyncio.wait_for(ws.recv(), 5))


async def test_no_subprotocol_is_the_text_protocol_and_a_foreign_one_is_refused(
        server: ChatServer) -> None:
    async with connect(ws_url(server)) as ws:
        assert ws.subprotocol is None
        assert str(await ws.recv()).startswith("* chatd")
    with pytest.raises(InvalidStatus) as refused:
        await connect(ws_url(server), subprotocols=["mqtt"])
    assert refused.value.response.status_code == 400


async def test_a_binary_message_gets_a_clear_error_and_the_connection_stays(
        server: ChatServer) -> None:
    web = await WsChat.open(server)
    try:
        await web.ws.send(b"/ping")
        error = await web.record()
        assert error["type"] == "error" and error["code"] == "binary-frame"
        assert (await web.command("/ping"))["type"] == "ok"
    finally:
        await web.close()


async def test_a_long_message_is_line_too_long_and_a_huge_one_closes(
        server: ChatServer) -> None:
    limit = server.config.listen.max_line
    web = await WsChat.open(server)
    try:
        await web.ws.send("x" * (limit + 10))
        error = await web.record()
        assert error["code"] == "line-too-long"
        assert (await web.command("/ping"))["type"] == "ok"
        await web.ws.send("x" * (limit * 4 + 10))
        with pytest.raises(ConnectionClosed) as closed:
            await web.record()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        await web.close()


@pytest.mark.server(listen__max_line=300)
async def test_the_json_banner_announces_the_line_limit_that_applies(
        server: ChatServer) -> None:
    async with connect(ws_url(server, "/ws?format=json"), subprotocols=["text.chatd"]) as ws:
        banner = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert banner["type"] == "notice" and banner["version"]
        assert banner["max_line"] == 300
        # The announced figure is the one the connection applies: 300 bytes pass...
        await ws.send("@a /ping " + "x" * (300 - len("@a /ping ")))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply.get("code") != "line-too-long" and reply["label"] == "a"
        # ... and 301 do not.
        await ws.send("@b /ping " + "x" * (301 - len("@b /ping ")))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert refused["code"] == "line-too-long"


async def test_the_banner_announces_the_default_line_limit(server: ChatServer) -> None:
    async with connect(ws_url(server, "/ws?format=json"), subprotocols=["text.chatd"]) as ws:
        banner = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert banner["max_line"] == server.config.listen.max_line == 4096


async def test_fragments_are_one_message_and_invalid_utf8_is_refused(
        server: ChatServer) -> None:
    raw = await RawWs.open(server)
    try:
        assert " 101 " in raw.head.splitlines()[0]
        await raw.text_until(lambda line: line.startswith("* chatd"))
        raw.send(b"/pi", fin=False)
        raw.send(b"ng", opcode=0)
        assert any("pong" in line for line in await raw.text_until(lambda t: "pong" in t))
        raw.send(b"caf\xc3")
        lines = await raw.text_until(lambda t: "UTF-8" in t)
        assert "not valid UTF-8" in lines[-1]
    finally:
        raw.close()


async def test_a_message_in_countless_empty_fragments_holds_no_more_than_its_size(
        server: ChatServer) -> None:
    """Empty continuation frames carry nothing, but each was kept as a fragment:
    six bytes sent held a list entry, past any message size limit."""
    raw = await RawWs.open(server)
    tracemalloc.start()
    try:
        await raw.text_until(lambda line: line.startswith("* chatd"))
        raw.send(b"/pi", fin=False)
        empty = bytes((0x00, 0x80)) + b"\x01\x02\x03\x04"  # masked, no payload, not final
        held = tracemalloc.take_snapshot()
        raw.writer.write(empty * 100_000)
        raw.send(b"", opcode=9)  # a ping between fragments: its pong says all were read
        # The pong is what to wait for, however long the server takes: tracing every
        # allocation, its 100 000 frames take some 20 s on a busy 2-core machine.
        while await raw.frame(timeout=120) != (10, b""):
            pass
        grown = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, websocket.__file__)]).compare_to(
            held.filter_traces([tracemalloc.Filter(True, websocket.__file__)]), "filename")
        assert sum(stat.size_diff for stat in grown) < 64_000, grown
        raw.send(b"ng", opcode=0)
        assert any("pong" in line for line in await raw.text_until(lambda t: "pong" in t))
    finally:
        tracemalloc.stop()
        raw.close()


async def test_a_0xff_byte_is_invalid_utf8_and_each_message_stays_its_own_line(
        server: ChatServer) -> None:
    raw = await RawWs.open(server, "/ws?format=json")
    try:
        await raw.text_until(lambda line: '"notice"' in line)
        # 0xFF is telnet's IAC on TCP; in a message it is only a byte that is not UTF-8.
        raw.send(b"@a /ping\xff")
        raw.send(b"@b /ping")
        raw.send(b"\xff\xfa")  # IAC SB: would swallow everything up to an IAC SE
        raw.send(b"@c /ping")
        raw.send(b"@d /ping")
        records = [json.loads(line) for line in await raw.text_until(lambda t: '"d"' in t)]
        got = [(r["type"], r.get("code"), r.get("label")) for r in records]
        assert got == [("error", "invalid-utf8", None), ("ok", None, "b"),
                       ("error", "invalid-utf8", None), ("ok", None, "c"), ("ok", None, "d")]
    finally:
        raw.close()


UPGRADE = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


@pytest.mark.parametrize(("line", "changes", "status", "code", "header"), [
    ("GET /ws HTTP/1.1", {"Sec-WebSocket-Key": "not-a-key"}, 400, "bad-request", None),
    ("GET /ws HTTP/1.1", {"Sec-WebSocket-Key": None}, 400, "bad-request", None),
    ("GET /ws HTTP/1.1", {"Sec-WebSocket-Version": "8"}, 426, "bad-request",
     ("sec-websocket-version", "13")),
    ("GET /ws HTTP/1.1", {"Sec-WebSocket-Protocol": "mqtt"}, 400, "bad-request", None),
    ("GET /irc HTTP/1.1", {"Sec-WebSocket-Protocol": "text.chatd"}, 400, "bad-request", None),
    ("GET /ws HTTP/1.1", {"Connection": "keep-alive"}, 426, "bad-request",
     ("upgrade", "websocket")),
    ("POST /ws HTTP/1.1", {}, 405, "method-not-allowed", ("allow", "GET")),
    ("GET /ws HTTP/1.0", {}, 505, "bad-request", None),
    ("GET /ws HTTP/1.1", {"X-Long": "a" * 9000}, 431, "request-too-large", None),
])
async def test_a_failed_handshake_is_a_json_error_with_a_stable_code(
        server: ChatServer, line: str, changes: dict[str, str | None], status: int, code: str,
        header: tuple[str, str] | None) -> None:
    fields = {k: v for k, v in {**UPGRADE, **changes}.items() if v is not None}
    head = "\r\n".join([line, *(f"{k}: {v}" for k, v in fields.items())]) + "\r\n\r\n"
    answer = await raw_request(server, head.encode())
    assert status_and_error(answer) == (status, code)
    head_lines = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(h.lower().split(": ", 1) for h in head_lines[1:])
    assert headers["content-type"] == "application/json"
    if header is not None:
        assert headers[header[0]] == header[1].lower()
    assert server.connection_count == 0


async def test_an_unmasked_client_frame_is_a_protocol_error(server: ChatServer) -> None:
    raw = await RawWs.open(server)
    try:
        raw.send(b"/ping", masked=False)
        assert await raw.close_code() == 1002
    finally:
        raw.close()


@pytest.mark.server(web__allowed_origins=["https://chat.example.org"])
async def test_origins_same_origin_or_listed_only(server: ChatServer) -> None:
    assert server.web is not None
    own = f"http://127.0.0.1:{server.web.port}"
    for origin in (own, "https://chat.example.org"):
        async with connect(ws_url(server), origin=origin, subprotocols=["text.chatd"]) as ws:
            assert str(await ws.recv())
    with pytest.raises(InvalidStatus) as refused:
        await connect(ws_url(server), origin="https://evil.example", subprotocols=["text.chatd"])
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"]["code"] == "bad-origin"


@pytest.mark.server(limits__max_connections_per_ip=2)
async def test_the_per_address_limit_counts_websockets_as_tcp(
        server: ChatServer, clients: Clients) -> None:
    await clients.raw()
    first = await WsChat.open(server)
    try:
        async with connect(ws_url(server, "/ws?format=json"),
                           subprotocols=["text.chatd"]) as ws:
            refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert refused["code"] == "too-many-connections"
    finally:
        await first.close()


async def test_a_silent_websocket_is_timed_out_like_tcp(
        server: ChatServer, clock: ManualClock) -> None:
    web = await WsChat.open(server)
    clock.advance(server.config.limits.login_timeout + 1)
    server.sweep_once()
    error = await web.record()
    assert error["code"] == "not-logged-in"
    with pytest.raises(ConnectionClosed):
        await web.record()


async def slow_reader(server: ChatServer) -> RawWs:
    """A /ws socket whose client reads (almost) nothing: a tiny receive buffer."""
    assert server.web is not None
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.web.port))
    reader, writer = await asyncio.open_connection(sock=slow)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    return RawWs(reader, writer, head.decode("latin-1"))


@pytest.mark.server(limits__output_buffer=65536)
async def test_a_websocket_that_reads_nothing_is_cut_off(
        server: ChatServer, clients: Clients) -> None:
    talker = await clients.user("talker")
    await talker.command("/create den")
    raw = await slow_reader(server)
    try:
        raw.send(f"/register slow {PASSWORD}".encode())
        raw.send(b"/join den")
        await asyncio.sleep(0.2)
        before = server.connection_count
        text = "y" * 1000
        async with asyncio.timeout(20):
            while server.connection_count == before:
                for _ in range(50):
                    talker.send_line(f"/say den {text}")
                await talker.command("/ping")
        assert (await talker.command("/ping"))["type"] == "ok"
    finally:
        raw.writer.close()
        with contextlib.suppress(ConnectionError):
            await raw.writer.wait_closed()


@pytest.mark.server(limits__output_buffer=65536)
async def test_pings_from_a_client_that_reads_nothing_are_cut_off(server: ChatServer) -> None:
    """Each ping is answered with a pong the client never reads: the pongs are
    bounded by limits.output_buffer, as the connection's own output is."""
    raw = await slow_reader(server)
    try:
        await eventually(lambda: server.connection_count == 1)
        key = b"\x01\x02\x03\x04"
        ping = bytes((0x89, 0x80 | 125)) + key + bytes(b ^ key[i % 4] for i, b in
                                                        enumerate(b"x" * 125))
        sent = 0
        async with asyncio.timeout(30):
            while server.connection_count == 1:
                # 40 MB of pings would be 39 MB of pongs held for this client, far
                # beyond the kernel's buffers (a few MB).
                assert sent < 40_000_000, "the server kept reading pings and queuing pongs"
                raw.writer.write(ping * 1000)
                sent += len(ping) * 1000
                with contextlib.suppress(ConnectionError):
                    await raw.writer.drain()
    finally:
        raw.close()


async def test_shutdown_says_goodbye_over_the_websocket(server: ChatServer) -> None:
    # A server going down closes with 1001, going away (RFC 6455 §7.4.1), not 1000.
    web = await WsChat.open(server)
    assert server.irc is not None
    irc = await connect(ws_url(server, "/irc"), subprotocols=["text.ircv3.net"])
    await server.stop()
    notice = await web.record()
    assert notice.get("shutdown") is True
    with pytest.raises(ConnectionClosed) as closed:
        await web.record()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert closed.value.rcvd.reason == ""
    with pytest.raises(ConnectionClosed) as closed:
        while True:  # the IRC listener's goodbye first
            await asyncio.wait_for(irc.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_a_client_still_sending_at_a_shutdown_gets_the_whole_closing_handshake(
        server: ChatServer) -> None:
    # A browser's page may send a line as the server goes down: the server reads on
    # until the client's Close, then closes the socket. Closed at once, with that
    # line unread, the socket was reset, and a browser whose next send met the reset
    # reported 1006 (abnormal closure) instead of the 1001 waiting for it.
    raw = await RawWs.open(server)
    try:
        await raw.text_until(lambda line: line.startswith("* chatd"))
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0)  # the stop has sent its goodbye: the page has not read it
        raw.send(b"/ping")
        assert await raw.close_code() == 1001
        raw.send((1001).to_bytes(2, "big"), opcode=8)  # the client's Close
        assert await asyncio.wait_for(raw.reader.read(), 5) == b""  # a clean end, no reset
        await stopping
    finally:
        raw.close()


async def test_a_close_the_user_asks_for_is_a_normal_one(server: ChatServer) -> None:
    # Any close but the server's shutdown stays 1000, normal closure: /quit here.
    web = await WsChat.open(server)
    await web.login("wendy")
    await web.ws.send("/quit")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await web.record()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


@pytest.mark.server(web__ping_interval=0.05)
async def test_quiet_websockets_are_pinged(server: ChatServer) -> None:
    raw = await RawWs.open(server)
    try:
        async with asyncio.timeout(5):
            while (await raw.frame())[0] != 9:
                pass
    finally:
        raw.close()
