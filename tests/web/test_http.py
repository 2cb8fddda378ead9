"""The web listener as plain HTTP: pages, limits, malformed requests, slow clients, origins."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import re
import socket
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from chatd.web.http import Request
from chatd.web.server import HttpConnection
from tests.helpers import ChatServer, Clients, eventually
from tests.web.helpers import WsChat, http, token_for, ws_url


async def raw_request(server: ChatServer, data: bytes, read_all: bool = True) -> bytes:
    """Send ``data`` on a fresh socket; everything the server answers until it closes."""
    assert server.web is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            return await reader.read() if read_all else await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def inline_scripts(html: str) -> list[str]:
    """The scripts of a page that are not files of their own (the CSP forbids them)."""
    return [tag for tag, body in re.findall(r"(<script\b[^>]*>)(.*?)</script>", html, re.S)
            if body.strip() or " src=" not in tag]


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]["code"]


async def test_health_front_page_and_static_files(server: ChatServer) -> None:
    async with http(server) as client:
        health = await client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
        assert inline_scripts(page.text) == [] and not re.search(r"\son\w+=", page.text)
        assert page.headers["x-content-type-options"] == "nosniff"
        css = await client.get("/static/docs.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        for bad in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/nope.css",
                    "/static/.hidden", "/static/api.py"):
            missing = await client.get(bad)
            assert missing.status_code == 404, bad
            assert missing.json()["error"]["code"] == "not-found"


async def test_health_counts_the_connections_open_now(
        server: ChatServer, clients: Clients) -> None:
    await clients.raw()
    second = await clients.raw()
    await eventually(lambda: server.connection_count == 2)
    async with http(server) as client:
        health = (await client.get("/health")).json()
        assert (health["connections"], health["connections_accepted"]) == (2, 2)
        await second.close()
        await eventually(lambda: server.connection_count == 1)
        health = (await client.get("/health")).json()
        assert (health["connections"], health["connections_accepted"]) == (1, 2)


async def test_unknown_paths_methods_and_websocket_paths_without_upgrade(
        server: ChatServer) -> None:
    async with http(server) as client:
        nowhere = await client.get("/nowhere")
        assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not-found"
        wrong = await client.put("/api/v1/rooms")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["code"] == "method-not-allowed"
        assert wrong.headers["allow"] == "GET, HEAD"
        messages = await client.delete("/api/v1/rooms/den/messages")
        assert messages.status_code == 405 and messages.headers["allow"] == "GET, HEAD, POST"
        # A webhook's path holds its secret: the refusal names the route, not the path.
        hook = await client.get("/hooks/7/s3cret-part")
        assert hook.status_code == 405 and "s3cret" not in hook.text
        assert hook.headers["allow"] == "POST"
        assert "/hooks/{id}/{secret}" in hook.json()["error"]["message"]
        # A HEAD is answered as a GET, and refused as one, saying so.
        head = await client.head("/hooks/7/s3cret-part")
        assert head.status_code == 405 and head.headers["allow"] == "POST"
        assert head.content == b""
        assert "does not take GET or HEAD" in hook.json()["error"]["message"]
        plain = await client.get("/ws")
        assert plain.status_code == 426 and plain.headers["upgrade"] == "websocket"
        # The pages are there too: a wrong method on one is a 405, not "nothing at".
        for method, path in (("POST", "/health"), ("DELETE", "/"), ("PUT", "/admin"),
                             ("POST", "/static/docs.css"), ("POST", "/api/v1/openapi.json"),
                             ("PATCH", "/api/v1/docs")):
            page = await client.request(method, path)
            assert page.status_code == 405, (method, path)
            assert page.json()["error"]["code"] == "method-not-allowed"
            assert page.headers["allow"] == "GET, HEAD"
        missing = await client.post("/static/nope.css")
        assert missing.status_code == 404


async def test_a_query_whose_escapes_are_not_utf8_is_a_bad_request(server: ChatServer) -> None:
    """An upload's name=%ff would be stored as U+FFFD: refused before any route."""
    answer = await raw_request(server, b"POST /api/v1/rooms/den/files?name=%ff HTTP/1.1\r\n"
                                       b"Host: x\r\nContent-Length: 0\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request")
    assert b"not UTF-8" in answer


async def test_a_later_minor_version_is_answered_as_http_1_1(server: ChatServer) -> None:
    """RFC 9110 2.5: HTTP/1.2 is read as the latest minor version spoken here, which
    keeps the connection open and wants a Host."""
    answer = await raw_request(server, b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n"
                                       b"GET /health HTTP/1.9\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    missing_host = await raw_request(server, b"GET /health HTTP/1.2\r\n\r\n")
    assert status_and_error(missing_host) == (400, "bad-request")


async def test_keep_alive_serves_several_requests_on_one_socket(server: ChatServer) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await raw_request(server, request * 2 + b"GET /health HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 3


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"NONSENSE\r\n\r\n", 400, "bad-request"),
    (b"GET /health HTTP/2.0\r\n\r\n", 505, "not-implemented"),
    (b"GET /health HTTP/0.9\r\n\r\n", 505, "not-implemented"),
    (b"GET /health HTTP/1.10\r\n\r\n", 400, "bad-request"),
    (b"GET /health http/1.1\r\n\r\n", 400, "bad-request"),
    (b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n", 400, "bad-request"),
    (b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431, "request-too-large"),
    (b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
     "bad-request"),
    (b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413,
     "request-too-large"),
    (b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n", 400,
     "bad-request"),
    # A digit to str.isdigit but not to int(): Latin-1's superscript two.
    (b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400,
     "bad-request"),
    # More digits than int() takes from a string.
    (b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 +
     b"\r\n\r\n", 400, "bad-request"),
])
async def test_malformed_and_oversized_requests_get_an_error_and_a_close(
        server: ChatServer, data: bytes, status: int, code: str) -> None:
    assert status_and_error(await raw_request(server, data)) == (status, code)


@pytest.mark.server(web__request_timeout=0.3)
async def test_a_slow_request_times_out_and_an_idle_socket_is_closed(
        server: ChatServer) -> None:
    answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert status_and_error(answer) == (408, "bad-request")
    assert await raw_request(server, b"") == b""


@pytest.mark.server(limits__max_connections_per_ip=2)
async def test_the_per_address_limit_applies_to_http_sockets(server: ChatServer) -> None:
    assert server.web is not None
    held = [await asyncio.open_connection("127.0.0.1", server.web.port) for _ in range(2)]
    try:
        answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_and_error(answer) == (503, "too-many-connections")
    finally:
        for _, writer in held:
            writer.close()


async def test_bytes_sent_during_a_response_wait_unread(
        server: ChatServer, clients: Clients) -> None:
    """A client pipelining while its download is still being written is not read
    meanwhile (the server holds at most one read of it), and the download is whole."""
    assert server.web is not None
    alice = await clients.user("alice")
    await alice.command("/create den")
    token = await token_for(server, "alice")
    size = 8 * 1024 * 1024  # more than the kernel's buffers hold: the download waits
    async with http(server, token) as client:
        record = (await client.post("/api/v1/rooms/den/files", params={"name": "big.bin"},
                                    content=os.urandom(size))).json()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", server.web.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET /api/v1/files/{record['id']}/content HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        chunk, sent, limit = b"x" * (1 << 20), 0, 64 << 20
        while sent < limit:
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                break  # the server stopped reading: what this test wants
            sent += len(chunk)
        assert sent < limit, "the server read 64 MB sent during one response"
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ") and f"{size}".encode() in head
        body = await asyncio.wait_for(reader.readexactly(size), 30)
        assert len(body) == size
    finally:
        writer.close()


@pytest.mark.server(limits__max_connections_per_ip=2)
async def test_a_websocket_counts_once_per_address_with_tcp_not_with_http(
        server: ChatServer) -> None:
    """An address's chat connections (TCP, IRC, WebSockets) share one count; its
    plain HTTP sockets another: a socket is never counted in both."""
    first, second = await WsChat.open(server), await WsChat.open(server)
    try:
        await eventually(lambda: server.connection_count == 2)
        answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")
        # The chat count is full: a third WebSocket is refused as a third TCP one is.
        third = await connect(ws_url(server, "/ws?format=json"), subprotocols=["text.chatd"])
        async with third:
            refused = json.loads(await asyncio.wait_for(third.recv(), 5))
            assert refused["code"] == "too-many-connections"
    finally:
        await first.close()
        await second.close()


@pytest.mark.server(web__allowed_origins=["https://app.example.org"])
async def test_api_origins_cross_origin_headers_and_preflight(server: ChatServer) -> None:
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        evil = await client.get("/api/v1/me", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["code"] == "bad-origin"
        listed = await client.get("/api/v1/me", headers={"Origin": "https://app.example.org"})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://app.example.org"
        own = await client.get("/api/v1/me", headers={"Origin": str(client.base_url)})
        assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
        preflight = await client.options("/api/v1/rooms/den/messages",
                                         headers={"Origin": "https://app.example.org"})
        assert preflight.status_code == 204
        assert "POST" in preflight.headers["access-control-allow-methods"]


@pytest.mark.server(web__trusted_proxies=["127.0.0.1"], limits__auth_failures=2)
async def test_a_trusted_proxy_names_the_client_address(server: ChatServer) -> None:
    async with http(server, "chatd_wrong") as client:
        for _ in range(2):
            refused = await client.get("/api/v1/me", headers={"X-Forwarded-For": "10.0.0.7"})
            assert refused.json()["error"]["code"] == "auth-failed"
        blocked = await client.get("/api/v1/me", headers={"X-Forwarded-For": "10.0.0.7"})
        assert blocked.json()["error"]["code"] == "rate-limited"
        # Another client behind the same proxy is not held to 10.0.0.7's failures.
        other = await client.get("/api/v1/me", headers={"X-Forwarded-For": "10.0.0.8"})
        assert other.json()["error"]["code"] == "auth-failed"


def test_the_embedded_default_does_not_import_the_web_library() -> None:
    script = ("import sys; from chatd.app.compose import build_app; "
              "from chatd.config import load_config; "
              "build_app(load_config(None, {'storage.path': ':memory:'})); "
              "assert 'websockets' not in sys.modules and 'chatd.web.server' not in sys.modules")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


async def test_an_unexpected_failure_is_internal_error_and_logged(
        server: ChatServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    assert server.web is not None

    async def broken(call: object) -> None:
        raise RuntimeError("boom")

    route = next(r for r in server.web.routes.routes if r.operation_id == "crypto_options")
    monkeypatch.setattr(server.web.routes, "routes",
                        [dataclasses.replace(route, handler=broken)])
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        failed = await client.get("/api/v1/crypto")
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal-error"
    assert "boom" not in failed.text
    assert any("web request failed" in r.message for r in caplog.records)


async def test_head_answers_as_get_without_the_body(server: ChatServer) -> None:
    async with http(server) as client:
        got = await client.get("/")
        head = await client.head("/")
        assert head.status_code == got.status_code == 200
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
        assert head.content == b""
        health = await client.head("/health")
        assert health.status_code == 200 and health.content == b""


async def test_a_client_that_expects_100_continue_is_invited_to_send_its_body(
        server: ChatServer) -> None:
    # curl sends "Expect: 100-continue" with a body over 1 MiB (an upload) and waits a
    # second for the invitation before sending the body anyway.
    assert server.web is not None
    token = await token_for(server, "alice")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        body = b'{"text": "hello"}'
        writer.write(b"POST /api/v1/crypto/encrypt HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n"
                     b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        # Uninvited, the server would wait for the body: any ceiling shows the
        # invitation, and 0.5 s only measured how loaded the machine was.
        async with asyncio.timeout(5):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")  # the final answer (no algorithm given)
    finally:
        writer.close()
    # Too large a body is refused at once, never invited.
    answer = await raw_request(server, b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\n"
                               b"Expect: 100-continue\r\n"
                               b"Content-Length: 99999999\r\n\r\n")
    assert status_and_error(answer) == (413, "request-too-large")


@pytest.mark.server(irc__enabled=False)
async def test_without_the_irc_listener_irc_is_not_a_websocket_path(server: ChatServer) -> None:
    # Told to upgrade (426), a client that did was then told there is no WebSocket.
    async with http(server) as client:
        plain = await client.get("/irc")
        assert plain.status_code == 404 and plain.json()["error"]["code"] == "not-found"
        assert "upgrade" not in plain.headers
        assert (await client.get("/ws")).status_code == 426
    answer = await raw_request(server, b"GET /irc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert status_and_error(answer) == (404, "not-found")


@pytest.mark.server(files__max_size=1000)
async def test_a_client_that_sends_an_oversized_body_anyway_reads_the_refusal(
        server: ChatServer, clients: Clients) -> None:
    """A client that sends its whole body before it reads (httpx, requests, curl
    without Expect) gets the 413, not a reset: the server stops reading the request,
    but drains what is still coming for a while before it closes, since a socket
    closed with unread bytes is reset and the answer in flight is lost."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        for _ in range(3):
            big = await client.post("/api/v1/rooms/den/messages",
                                    json={"text": "a" * 8_000_000})
            assert big.status_code == 413, big.text
            assert big.json()["error"]["code"] == "request-too-large"
            upload = await client.post("/api/v1/rooms/den/files", params={"name": "big.bin"},
                                       content=b"x" * 8_000_000)
            assert upload.status_code == 413, upload.text
            assert upload.json()["error"]["code"] == "file-too-large"
        # Another client meanwhile is served as ever.
        assert (await client.get("/api/v1/me")).status_code == 200


async def test_a_path_that_starts_with_two_slashes_is_that_path_not_a_host(
        server: ChatServer) -> None:
    """An origin-form target is all path: "//x/health" is not /health on host x
    (which urlsplit alone would make of it), and "//health" is not an empty path."""
    for target, named in ((b"//x/health", b"//x/health"), (b"//health", b"//health"),
                          (b"//api/v1/me?x=1", b"//api/v1/me")):
        answer = await raw_request(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert status_and_error(answer) == (404, "not-found"), (target, answer)
        assert b"nothing at " + named + b"." in answer, answer


@pytest.mark.parametrize("method", [b"get", b"Get", b"post", b"head", b"TRACE", b"CONNECT",
                                    b"BREW"])
async def test_a_method_the_listener_does_not_know_is_not_implemented(
        server: ChatServer, method: bytes) -> None:
    """Methods are case-sensitive (RFC 9110 9.1): "get" is no GET, and like any method
    no path takes, it is a 501 wherever it is sent (RFC 9110 15.6.2)."""
    for target in (b"/health", b"/api/v1/rooms", b"/nowhere"):
        answer = await raw_request(server, method + b" " + target + b" HTTP/1.1\r\n"
                                   b"Host: x\r\nConnection: close\r\n\r\n")
        assert status_and_error(answer) == (501, "not-implemented"), (method, target)


async def test_a_method_that_is_not_a_token_is_a_bad_request(server: ChatServer) -> None:
    for method in (b"G\xc9T", b"GE(T", b"G\x01T"):
        answer = await raw_request(server, method + b" /health HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert status_and_error(answer) == (400, "bad-request"), method


async def test_a_head_whose_lines_end_in_a_bare_lf_is_answered_at_once(
        server: ChatServer) -> None:
    """RFC 9112 2.2 lets a server take a bare LF for a line end, as most do (and as nc
    sends): such a head is read, not waited on until the request times out."""
    answer = await raw_request(server, b"GET /health HTTP/1.1\nHost: x\n\n"
                               b"GET /health HTTP/1.1\r\nHost: x\n\r\n"
                               b"GET /health HTTP/1.1\nHost: x\r\nConnection: close\r\n\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    # Blank lines before a request (a client's CRLF after its last body) are skipped.
    answer = await raw_request(server, b"\r\n\nGET /health HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    # An upgrade's head is read again by the WebSocket handshake: with CRLF ends.
    upgrade = await raw_request(server, b"GET /ws HTTP/1.1\nHost: x\nUpgrade: websocket\n"
                                b"Connection: Upgrade\nSec-WebSocket-Version: 13\n"
                                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n"
                                b"Sec-WebSocket-Protocol: text.chatd\n\n", read_all=False)
    assert upgrade.startswith(b"HTTP/1.1 101 "), upgrade


async def test_a_bare_cr_in_a_head_is_a_bad_request(server: ChatServer) -> None:
    """A CR not followed by LF is no line end (RFC 9112 2.2): a reader that took it
    for one would see another header than the next reader."""
    for head in (b"GET /health HTTP/1.1\r\nHost: x\rX-Smuggled: 1\r\n\r\n",
                 b"GET /health HTTP/1.1\rHost: x\r\n\r\n",
                 # A bare CR just before the line end of the head's last line: a reader
                 # that ends a line at a CR sees the head end a line sooner.
                 b"GET /health HTTP/1.1\r\nHost: x\r\r\n\r\n",
                 b"GET /health HTTP/1.1\r\nHost: x\r\r\n\n",
                 b"GET /health HTTP/1.0\r\r\n\r\n"):
        assert status_and_error(await raw_request(server, head)) == (400, "bad-request"), head


@pytest.mark.server(limits__max_connections_per_ip=1)
async def test_a_refused_socket_that_lingers_gives_way_to_a_new_one(server: ChatServer) -> None:
    """A socket refused mid-request lingers (the client may still be sending its body),
    but is served no more: the address's next socket takes its place, not a 503."""
    assert server.web is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        writer.write(b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        async with asyncio.timeout(5):
            refusal = await reader.read()  # up to the server's end; this one stays open
        assert status_and_error(refusal) == (413, "request-too-large")
        answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    finally:
        writer.close()
    # A socket that is still served keeps its place: the limit holds.
    held = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_and_error(answer) == (503, "too-many-connections")
    finally:
        held[1].close()


@pytest.mark.parametrize("header", [
    b"X Y: z",  # a space in the name
    b"X\x01Y: z",  # a control character in the name
    b"X-\xe9: z",  # not ASCII
    b"X-Y: a\x00b",  # a NUL in the value
    b"X-Y: a\x1bb",  # an escape
    b"X-Y: a\x0b",  # a vertical tab (not space or HTAB: not trimmed)
])
async def test_a_header_name_or_value_with_forbidden_characters_is_a_bad_request(
        server: ChatServer, header: bytes) -> None:
    answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + header +
                               b"\r\nConnection: close\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request"), answer


async def test_a_folded_header_line_is_refused_saying_so(server: ChatServer) -> None:
    answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Y: a\r\n"
                               b"\tfolded\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request")
    assert b"obs-fold" in answer


@pytest.mark.parametrize("target", [
    b"/static/%00",  # a NUL
    b"/he%0Aalth",  # a line end, decoded
    b"/hooks/1/%C2%85",  # a C1 control (NEL)
    b"/hooks/1/%ff",  # not UTF-8: it would be U+FFFD
    b"/he\x01alth",  # a control character, raw
    b"/h\xe9alth",  # a byte that is not ASCII, raw
])
async def test_a_target_with_a_control_character_or_not_utf8_is_a_bad_request(
        server: ChatServer, target: bytes) -> None:
    answer = await raw_request(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request"), answer


async def test_an_absolute_form_target_is_its_path_and_names_the_host(
        server: ChatServer) -> None:
    """RFC 9112 3.2.2: a server must accept an absolute URL as the target; its host
    stands for Host's (a browser's Origin is checked against it)."""
    answer = await raw_request(server, b"GET http://x.example/health HTTP/1.1\r\nHost: y\r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    answer = await raw_request(server, b"GET http://x.example:80/api/v1/me HTTP/1.1\r\n"
                               b"Host: evil.example\r\nOrigin: http://x.example:80\r\n"
                               b"Connection: close\r\n\r\n")
    assert status_and_error(answer) == (401, "not-logged-in"), answer  # not bad-origin
    for bad in (b"ftp://x/health", b"http:///health", b"http://u@x/health", b"http://[/x",
                b"http://x:port/health", b"*"):
        answer = await raw_request(server, b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert status_and_error(answer) == (400, "bad-request"), bad
        assert b"neither a path" in answer


@pytest.mark.parametrize(("framing", "status", "code", "says"), [
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked", 400, "bad-request", b"ambiguous"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5", 400, "bad-request", b"ambiguous"),
    (b"Transfer-Encoding: gzip, chunked", 501, "not-implemented", b"gzip"),
    (b"Transfer-Encoding: chunked, chunked", 400, "bad-request", b"malformed"),
    (b"Content-Length: 5\r\nContent-Length: 5", 400, "bad-request", b"more than once"),
])
async def test_a_body_framed_otherwise_than_by_one_content_length_is_refused(
        server: ChatServer, framing: bytes, status: int, code: str, says: bytes) -> None:
    """What a proxy in front may read another way (RFC 9112 6.1, 6.3) is refused, and the
    connection closed, before any of the body is read as a request."""
    answer = await raw_request(server, b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\n" + framing +
                               b"\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_error(answer) == (status, code), answer
    assert says in answer and answer.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("host", [None, b"a.example\r\nHost: b.example", b"a b", b"a/b",
                                  b"a.example:port"])
async def test_an_http11_request_names_one_well_formed_host(
        server: ChatServer, host: bytes | None) -> None:
    """RFC 9112 3.2: no Host, two, or one that is no host and port, is a 400. (The
    origin check compares Host with Origin: two that disagree would leave it to
    whichever one a reader took.)"""
    field = b"" if host is None else b"Host: " + host + b"\r\n"
    answer = await raw_request(server, b"GET /health HTTP/1.1\r\n" + field +
                               b"Connection: close\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request"), answer
    assert b"Host" in answer
    # HTTP/1.0 had no Host: it may go without.
    answer = await raw_request(server, b"GET /health HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(("start", "says"), [
    # A TLS ClientHello's first bytes: https:// sent to this plain port.
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32), b"TLS handshake"),
    (b"hello there\n", b"not an HTTP request"),  # a line typed at nc
    (b"GET /health\r\n", b"not an HTTP request"),  # HTTP/0.9
    (b"get /health HTTP/1.1\r\nHost: x\r\n", b"not implemented"),
])
async def test_a_head_that_starts_wrong_is_refused_before_it_ends(
        server: ChatServer, start: bytes, says: bytes) -> None:
    """A client that speaks something else is answered at once, not when its head
    times out (it may never send the blank line that ends one)."""
    answer = await raw_request(server, start)
    assert answer.startswith(b"HTTP/1.1 ") and says in answer, answer


async def test_answers_a_client_does_not_read_do_not_pile_up_in_the_server(
        server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelined requests wait in the network's buffers while one is answered, and so
    must their answers: a client that sent many and read none had every answer held
    in the server's memory (400 of app.js, 16 MB; more with every request it sent)."""
    transports: list[asyncio.BaseTransport] = []
    made = HttpConnection.connection_made

    def kept(conn: HttpConnection, transport: asyncio.BaseTransport) -> None:
        transports.append(transport)
        made(conn, transport)

    monkeypatch.setattr(HttpConnection, "connection_made", kept)
    assert server.web is not None
    _, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        writer.write(b"GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
        most = 0
        for _ in range(40):
            await asyncio.sleep(0.05)
            most = max([most, *(t.get_write_buffer_size() for t in transports
                                if isinstance(t, asyncio.WriteTransport))])
        assert most < 1024 * 1024, most
    finally:
        writer.close()


async def test_options_asterisk_asks_about_the_server_as_a_whole(server: ChatServer) -> None:
    """RFC 9110 9.3.7, RFC 9112 3.2.4: OPTIONS * is the server's own, answered with the
    methods it takes; * is no target for any other method."""
    answer = await raw_request(server, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    head = answer.partition(b"\r\n\r\n")[0].decode() + "\r\n"
    assert head.startswith("HTTP/1.1 204 "), answer
    assert "\r\nAllow: DELETE, GET, HEAD, OPTIONS, POST\r\n" in head, head
    assert "content-length" not in head.lower()  # RFC 9110 8.6: none on a 204
    for method in (b"GET", b"POST"):
        refused = await raw_request(server, method + b" * HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n")
        assert status_and_error(refused) == (400, "bad-request"), refused


@pytest.mark.parametrize("expect", [b"something-else", b"100-continue, x-trace=1",
                                    b"100-continue=1"])
async def test_an_expectation_the_server_cannot_meet_is_a_417(
        server: ChatServer, expect: bytes) -> None:
    """RFC 9110 10.1.1: only 100-continue is understood; anything else expected is
    answered 417 before any body is read, not ignored."""
    answer = await raw_request(server, b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\n"
                               b"Expect: " + expect + b"\r\nContent-Length: 5\r\n\r\nhello")
    assert status_and_error(answer) == (417, "not-implemented"), answer
    assert b"only 100-continue" in answer
    # Its case does not matter, and an empty member is none.
    fine = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue,"
                             b" \r\nConnection: close\r\n\r\n")
    assert fine.startswith(b"HTTP/1.1 200 OK"), fine


@pytest.mark.parametrize("target", [b"/health#top", b"/health?x=1#top",
                                    b"http://x.example/health#top", b"/api/v1/rooms/den/files"
                                    b"?name=a#b.png"])
async def test_a_fragment_in_a_request_target_is_a_bad_request(
        server: ChatServer, target: bytes) -> None:
    """RFC 9112 3.2: no form of request-target has a fragment; dropping it would serve
    another target than the one the client sent."""
    answer = await raw_request(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request"), answer
    assert b"fragment" in answer
    escaped = await raw_request(server, b"GET /health?x=%23 HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n")
    assert escaped.startswith(b"HTTP/1.1 200 OK"), escaped


async def test_an_empty_host_is_valid_only_where_the_target_names_the_host(
        server: ChatServer) -> None:
    """RFC 9112 3.2 keeps an empty Host for a URI without a host, and an http URI has
    one (RFC 9110 4.2.1): with a path as the target, it names no host. With an
    absolute URL as the target, the URL's host stands for Host's (RFC 9112 3.2.2)."""
    for start in (b"GET /health", b"OPTIONS *"):
        answer = await raw_request(server, start + b" HTTP/1.1\r\nHost:\r\n"
                                   b"Connection: close\r\n\r\n")
        assert status_and_error(answer) == (400, "bad-request"), answer
        assert b"Host header is empty" in answer
    answer = await raw_request(server, b"GET http://x.example/health HTTP/1.1\r\nHost: \r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


@pytest.mark.parametrize("start", [
    b"GET /health HTTP/1.1\r\nHost: [fe80::1%25eth0]:7780",
    b"GET /health HTTP/1.1\r\nHost: [fe80::1%eth0]",
])
async def test_an_ipv6_zone_id_in_host_is_refused_saying_why(
        server: ChatServer, start: bytes) -> None:
    """RFC 6874 4: a zone id means something on the client's host alone, and a client
    removes it from what it sends; RFC 9110's host has none."""
    answer = await raw_request(server, start + b"\r\nConnection: close\r\n\r\n")
    assert status_and_error(answer) == (400, "bad-request"), answer
    assert b"zone id" in answer
    answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: [fe80::1]:7780\r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


async def test_an_upgrade_request_with_a_body_is_told_it_has_none(server: ChatServer) -> None:
    answer = await raw_request(server, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               b"Content-Length: 5\r\n\r\nhello")
    assert status_and_error(answer) == (413, "request-too-large"), answer
    assert b"has no body; this one declares 5 bytes" in answer and b"at most 0" not in answer


@pytest.mark.parametrize(("auth", "target", "status", "code"), [
    (b"", b"/api/v1/rooms/den/files?name=a.bin", 401, "not-logged-in"),
    (b"Authorization: Bearer chatd_wrong\r\n", b"/api/v1/rooms/den/files?name=a.bin", 401,
     "auth-failed"),
    (b"TOKEN", b"/api/v1/nowhere", 404, "not-found"),
    (b"TOKEN", b"/api/v1/rooms", 405, "method-not-allowed"),
    (b"TOKEN", b"/api/v1/rooms/den/files", 400, "bad-arguments"),  # no name
])
async def test_a_request_is_refused_on_its_head_before_its_body_is_read(
        server: ChatServer, auth: bytes, target: bytes, status: int, code: str) -> None:
    """A body (an upload's, up to files.max_size) is read only once its head is
    accepted: a client without a valid token, or asking for nothing, is answered at
    once, and the connection closed, its body never read as the next request."""
    assert server.web is not None
    if auth == b"TOKEN":
        auth = b"Authorization: Bearer " + (await token_for(server, "alice")).encode() + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        # An upload's length, or within web.max_body (over it, 413 comes first).
        length = 5_000_000 if b"/files" in target else 60_000
        writer.write(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                     b"Content-Length: %d\r\n\r\n" % length)
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status), head
        assert b"\r\nConnection: close\r\n" in head
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
        body = json.loads(await reader.readexactly(length))
        assert body["error"]["code"] == code
        # What the client sends next is the unread body's, never a request.
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            assert await reader.read() == b""
    finally:
        writer.close()


async def refused_on_head(server: ChatServer, head: bytes) -> tuple[int, str]:
    """Send ``head`` (declaring a body it never sends); the status and code of the
    answer, which must come at once, with the connection closed after it."""
    assert server.web is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        writer.write(head)
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    assert b"\r\nConnection: close\r\n" in answer, answer
    return status_and_error(answer)


async def test_a_webhooks_secret_and_a_download_links_signature_are_checked_on_the_head(
        server: ChatServer, clients: Clients) -> None:
    """The routes that take no token have their own credential in the path: a wrong
    webhook secret, a dead webhook (its API token revoked) or a forged download
    link is refused before the body (within web.max_body) is read."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    token = (await owner.command("/token create ci read,post,moderate"))["token"]
    script = await clients.anonymous()
    await script.command(f"/login alice --token {token}")
    hook = await script.command("/webhook create deploy den")
    await owner.command("/token revoke ci")
    body = b"Content-Length: 60000\r\n\r\n"
    wrong = b"POST /hooks/%d/wrong HTTP/1.1\r\nHost: x\r\n" % hook["id"]
    assert await refused_on_head(server, wrong + body) == (404, "no-such-webhook")
    dead = b"POST " + hook["path"].encode() + b" HTTP/1.1\r\nHost: x\r\n"
    assert await refused_on_head(server, dead + body) == (403, "token-revoked")
    forged = b"GET /api/v1/download/1?user=1&expires=9999999999&sig=x HTTP/1.1\r\nHost: x\r\n"
    assert await refused_on_head(server, forged + body) == (401, "auth-failed")


async def test_100_continue_is_sent_only_once_the_token_is_accepted(
        server: ChatServer, clients: Clients) -> None:
    """RFC 9110 10.1.1: the head alone decides whether the body is wanted; a client
    waiting for 100 Continue without a valid token gets the 401 instead."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    token = await token_for(server, "alice")
    head = (b"POST /api/v1/rooms/den/files?name=a.txt HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5\r\n")
    refused = await raw_request(server, head + b"\r\n")
    assert status_and_error(refused) == (401, "not-logged-in")
    answer = await raw_request(server, head + b"Authorization: Bearer " + token.encode() +
                               b"\r\nConnection: close\r\n\r\n", read_all=False)
    assert answer == b"HTTP/1.1 100 Continue\r\n\r\n"


async def test_a_request_is_not_held_once_it_is_answered(
        server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request told 100 Continue was kept, body and all, by its connection until the
    next such request or the connection's end: it goes with its answer."""
    assert server.web is not None
    token = await token_for(server, "alice")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    marker = os.urandom(16).hex()
    try:
        for expect in (b"Expect: 100-continue\r\n", b""):
            body = json.dumps({"text": marker, "pad": "x" * 50_000}).encode()
            writer.write(b"POST /api/v1/crypto/encrypt HTTP/1.1\r\nHost: x\r\n" + expect +
                         b"Authorization: Bearer " + token.encode() + b"\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            async with asyncio.timeout(5):
                if expect:
                    assert await reader.readuntil(b"\r\n\r\n") == \
                        b"HTTP/1.1 100 Continue\r\n\r\n"
                writer.write(body)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400 "), head  # no algorithm given
                length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
                await reader.readexactly(length)
            # The socket stays open (kept alive), and holds no request.
            gc.collect()
            held = [o for o in gc.get_objects()
                    if isinstance(o, Request) and marker.encode() in o.body]
            assert held == [], expect
    finally:
        writer.close()


@pytest.mark.server(limits__max_connections=1)
async def test_at_the_listeners_limit_only_its_own_address_closes_a_lingering_socket(
        server: ChatServer) -> None:
    """A socket lingering after a 413 (its client may still be sending, and reads its
    answer after) is closed to make room only for its own address: another address's
    new socket would reset it, and its client lose the answer."""
    assert server.web is not None
    port = server.web.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /hooks/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), head
        other_reader, other = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.2", 0))
        try:
            other.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            async with asyncio.timeout(5):
                answer = await other_reader.read()
            assert status_and_error(answer) == (503, "too-many-connections"), answer
        finally:
            other.close()
        # Its own address's next socket takes its place: a client that read its 413
        # connects again at once.
        answer = await raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    finally:
        writer.close()


async def test_a_client_that_sends_its_body_anyway_reads_the_refusal_of_its_head(
        server: ChatServer, clients: Clients) -> None:
    """A client that sends its whole upload before it reads (httpx, requests) gets the
    401 its head earned, not a reset, and its next connection is served."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    async with http(server, "chatd_wrong") as client:
        for _ in range(2):
            refused = await client.post("/api/v1/rooms/den/files", params={"name": "a.bin"},
                                        content=b"x" * 8_000_000)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "auth-failed"
            assert refused.headers["connection"] == "close"
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        assert (await client.get("/api/v1/me")).status_code == 200
