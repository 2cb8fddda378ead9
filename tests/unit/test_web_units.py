"""The web front's pure parts: request parsing, framing, routes, signed links."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chatd.errors import ChatError
from chatd.web.http import HttpError, RequestReader, Response, error_response, parse_head
from chatd.web.links import LinkSigner
from chatd.web.routes import Param, Route, RouteTable
from chatd.web.websocket import frame


def parse_frame(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("incomplete frame")


@given(st.binary(max_size=70000))
def test_a_frame_is_what_the_library_reads_back(payload: bytes) -> None:
    parsed = parse_frame(frame(payload, 0x82))
    assert parsed.opcode is Opcode.BINARY and parsed.fin and parsed.data == payload


@given(st.lists(st.binary(max_size=300), max_size=5), st.binary(max_size=2000))
def test_the_reader_cuts_requests_wherever_the_bytes_split(bodies: list[bytes],
                                                           noise: bytes) -> None:
    stream = b"".join(b"POST /x?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(b), b) for b in bodies)
    reader, got = RequestReader(), []
    for i in range(0, len(stream), 7):
        reader.feed(stream[i:i + 7])
        while (head := reader.head()) is not None:
            request = reader.body(10_000)
            if request is None:
                break
            assert head.query == {"a": "1"}
            got.append(request.body)
    assert got == bodies


@given(st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=6, max_size=6),
       st.integers(min_value=1, max_value=9))
def test_the_reader_finds_a_head_s_end_in_crlf_or_bare_lf_wherever_the_bytes_split(
        ends: list[bytes], step: int) -> None:
    """Each line end CRLF or a bare LF, blank lines before a request skipped, the bytes
    fed a few at a time: each head is found as its last byte arrives."""
    a, b, c, d, e, f = ends
    stream = (a + b"GET /x HTTP/1.1" + b + b"Host: x" + c + d +
              e + b"GET /y HTTP/1.1" + f + b"Host: y" + a + b)
    reader, got = RequestReader(), []
    for i in range(0, len(stream), step):
        reader.feed(stream[i:i + step])
        while reader.head() is not None:
            request = reader.body(0)
            assert request is not None
            got.append((request.path, request.headers["host"], request.head))
    assert got == [("/x", "x", b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"),
                   ("/y", "y", b"GET /y HTTP/1.1\r\nHost: y\r\n\r\n")]
    assert not reader.buffered


def test_heads_are_parsed_with_lower_cased_repeated_headers() -> None:
    request = parse_head(b"GET /a%20b?x=1&x=2&y HTTP/1.0\r\nX-A: 1\r\nx-a: 2\r\n"
                         b"Connection: keep-alive")
    assert request.path == "/a b" and request.query == {"x": "2", "y": ""}
    assert request.headers["x-a"] == "1, 2" and request.keep_alive
    assert not parse_head(b"GET / HTTP/1.0").keep_alive
    with pytest.raises(HttpError):
        parse_head(b"GET nothing HTTP/1.1")
    listed = parse_head(b"POST / HTTP/1.1\r\nHost: x")
    listed.body = b"[1]"
    with pytest.raises(HttpError, match="JSON object"):
        listed.json()


def test_responses_carry_security_headers_and_retry_after() -> None:
    head = Response(200, b"<p>", "text/html; charset=utf-8").head(True).decode()
    assert "Content-Security-Policy: default-src 'self'" in head
    assert "X-Content-Type-Options: nosniff" in head and "Connection: keep-alive" in head
    limited = error_response(429, "rate-limited", "slow down", retry_ms=1500)
    assert ("Retry-After", "2") in limited.headers


async def _nothing(call: object) -> Response:
    return Response(204)


def test_routes_bind_path_and_query_parameters() -> None:
    route = Route("GET", "/api/v1/files/{id}", _nothing, "a file", "files",
                  (Param("id", "path", "id", integer=True),
                   Param("v", "query", "v", required=False)))
    assert route.bind("/api/v1/files/12", {"v": "x"}) == {"id": 12, "v": "x"}
    assert route.bind("/api/v1/files/12/more", {}) is None
    with pytest.raises(ChatError):
        route.bind("/api/v1/files/abc", {})
    table = RouteTable([route])
    assert table.find("GET", "/api/v1/files/3") == (route, True)
    assert table.find("PUT", "/api/v1/files/3") == (route, False)
    assert table.find("GET", "/elsewhere") is None
    required = Route("GET", "/q", _nothing, "q", "t", (Param("n", "query", "n"),))
    with pytest.raises(ChatError, match="n is missing"):
        required.bind("/q", {})


def test_signed_links_refuse_alteration_and_expiry() -> None:
    signer = LinkSigner(b"k" * 32)
    link = signer.link(5, 7, 100)
    signature = link.rsplit("sig=", 1)[1]
    signer.check(5, 7, 100, signature, now=99)
    with pytest.raises(ChatError, match="not valid"):
        signer.check(5, 8, 100, signature, now=99)
    with pytest.raises(ChatError, match="expired"):
        signer.check(5, 7, 100, signature, now=101)
    with pytest.raises(ChatError, match="not valid"):
        LinkSigner().check(5, 7, 100, signature, now=0)
