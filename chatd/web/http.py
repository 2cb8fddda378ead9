"""HTTP/1.1 as the web listener speaks it: requests read with limits, responses written.

Pure: bytes in, :class:`Request` out; :class:`Response` to bytes. No socket,
no routing. What it accepts is deliberately small: a request head of at most
``MAX_HEAD`` bytes, a body only with ``Content-Length`` (no chunked
uploads), one request at a time on a keep-alive connection; a head's lines may
end in CRLF or a bare LF. Every refusal is
an :class:`HttpError` with a status and one of chatd's stable error codes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from chatd.domain.names import is_number
from chatd.errors import Code

MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
# The methods the listener knows (RFC 9110 9.3 and PATCH): one a path does not take
# is a 405 naming those it does. Any other token, CONNECT and TRACE among them,
# is a 501. Methods are case-sensitive (RFC 9110 9.1): "get" is not GET.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# RFC 9110 5.6.2: a token (a method, a field name) is one or more of these.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The same, for the bytes of a request line not yet whole (RequestReader._check_start).
_TOKEN_BYTES = re.compile(_TOKEN.pattern.encode("ascii"))
# RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT.
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# A request target: visible ASCII (RFC 9112 3.2), anything else escaped.
_VISIBLE = re.compile(r"[\x21-\x7e]+")
# What a decoded path may not hold: the C0 and C1 controls and DEL.
_PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A Host header's value (RFC 3986 3.2.2-3.2.3): an IP literal or a name, and a port.
# Two Host lines are joined with ", ", which this refuses.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+;=%]*)(:[0-9]*)?")
# An IPv6 literal with a zone id (RFC 6874: "[fe80::1%25eth0]").
_ZONE = re.compile(r"\[[^\]]*%")
# The control characters a field value may not hold: all of C0 but HTAB, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_END = b"\r\n\r\n"
# The blank line that ends a head, its line ends CRLF or bare LF (see parse_head);
# and the blank lines a client may send before a request (after a body, say),
# which RFC 9112 2.2 asks a server to skip.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BLANK_LINES = re.compile(rb"(?:\r?\n)+")
# Headers every response carries: no guessing of types, no referrer (a signed
# download link must not leak through one), no framing by other sites.
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                    ("X-Frame-Options", "DENY"))
# HTML is only ever the server's own static pages: scripts and styles from this
# origin alone, never inline, and WebSocket connections to this origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")


class HttpError(Exception):
    """A request refused: the status, the stable code and the sentence to send, and
    the headers a status calls for (``Allow`` with a 405, say)."""

    def __init__(self, status: int, code: Code, message: str, *,
                 headers: Sequence[tuple[str, str]] = (), **details: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers)
        self.details = details

    def response(self) -> Response:
        """The error's answer: the API's JSON error body, with the error's headers."""
        response = error_response(self.status, self.code, self.message, **self.details)
        response.headers += self.headers
        return response


@dataclass(slots=True)
class Request:
    """One request: header names lower-cased (repeated ones joined by ", ")."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    version: str
    head: bytes
    body: bytes = b""
    # The query parameters given more than once: ``query`` keeps one value of each,
    # which the route refuses to choose for its sender (Route.bind).
    repeated: frozenset[str] = frozenset()
    # A HEAD, served as a GET whose body is not sent (``method`` then says GET): its
    # handler must change nothing (RFC 9110 9.2.1), since nobody reads its answer.
    head_only: bool = False

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    @property
    def content_length(self) -> int:
        raw = self.headers.get("content-length", "0").strip()
        if "," in raw:
            # Repeated (joined by ", "): refused even when the copies agree, which
            # RFC 9112 6.3 allows, since a proxy may have taken either.
            raise HttpError(400, Code.BAD_REQUEST, "Content-Length is given more than once.")
        if not is_number(raw):
            raise HttpError(400, Code.BAD_REQUEST, "Content-Length must be a number.")
        return int(raw)

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` before it sends the body (RFC
        9110 10.1.1: an HTTP/1.0 client's expectation of it is ignored)."""
        return self.version == "HTTP/1.1" and "100-continue" in _expectations(self)

    @property
    def is_upgrade(self) -> bool:
        return "websocket" in self.headers.get("upgrade", "").lower()

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (``bad-request`` when it is not one, or missing:
        every operation that reads a body needs fields of it, and a request without
        one is malformed, not a request with a wrong argument)."""
        if not self.body.strip():
            raise HttpError(400, Code.BAD_REQUEST, "the body is empty: send a JSON object.")
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # (RecursionError: arrays or objects nested deeper than the parser goes.)
            raise HttpError(400, Code.BAD_REQUEST, "the body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise HttpError(400, Code.BAD_REQUEST, "the body must be a JSON object.")
        try:
            # A "\ud800" escape alone decodes to a string no UTF-8 can carry.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise HttpError(400, Code.BAD_REQUEST, "the body holds a lone surrogate escape "
                            "(\\ud800-\\udfff without its pair): not text.") from None
        return value


def parse_head(head: bytes) -> Request:
    """The request line and headers of ``head`` (up to, not including, the blank line).

    Its lines may end in CRLF or in a bare LF (RFC 9112 2.2 lets a recipient take
    one for a line end, as most servers do); the request keeps its head with CRLF
    line ends, as the WebSocket handshake reads it again."""
    request_line, *lines = _lines(head.decode("latin-1"))
    method, target, version = _request_line(request_line)
    headers = _headers(lines)
    _check_host(version, headers)
    split = _split_target(method, target, headers)
    try:
        # Strict: a %ff would otherwise become U+FFFD, and a file be named with it.
        pairs = parse_qsl(split.query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, Code.BAD_REQUEST, "the query string's escapes are not "
                        "UTF-8.") from None
    counts = Counter(name for name, _ in pairs)
    repeated = frozenset(name for name, count in counts.items() if count > 1)
    normal = "\r\n".join([request_line, *lines]).encode("latin-1") + _END
    return Request(method, target, _path(split.path or "/"), dict(pairs), headers, version,
                   normal, repeated=repeated)


def _request_line(line: str) -> tuple[str, str, str]:
    """The method, target and version of a request line; refused when it is none."""
    try:
        method, target, version = line.split(" ")
    except ValueError:
        raise HttpError(400, Code.BAD_REQUEST, "that is not an HTTP request.") from None
    spoken = _VERSION.fullmatch(version)
    if spoken is None or not _TOKEN.fullmatch(method):
        raise HttpError(400, Code.BAD_REQUEST, "that is not an HTTP/1.1 request.")
    if spoken[1] != "1":
        raise HttpError(505, Code.NOT_IMPLEMENTED, f"{version} is not spoken here: HTTP/1.1 "
                                                   "is.")
    _check_method(method)
    # RFC 9110 2.5: a later minor version is answered as the latest one spoken here.
    return method, target, version if spoken[2] == "0" else "HTTP/1.1"


def _check_host(version: str, headers: dict[str, str]) -> None:
    """RFC 9112 3.2: an HTTP/1.1 request names its host, once, well-formed; anything
    else is a 400. (The origin check compares Host with Origin: two Host lines that
    disagree would leave it to whichever one a reader took.)"""
    host = headers.get("host")
    if host is None:
        if version == "HTTP/1.1":
            raise HttpError(400, Code.BAD_REQUEST, "an HTTP/1.1 request names its host: "
                            "send Host.")
        return
    if _ZONE.search(host):
        # RFC 6874 4: a client removes a zone id from what it sends, since it means
        # something on the client's host alone; and the host of RFC 9110 4.2.1 (RFC
        # 3986's) has none, so a Host with one is no host (RFC 9112 3.2: a 400).
        raise HttpError(400, Code.BAD_REQUEST, "the Host header holds an IPv6 zone id "
                        "(%25...), which names an interface of the client's host alone: "
                        "send the address without it.")
    if not _HOST.fullmatch(host):
        raise HttpError(400, Code.BAD_REQUEST, "the Host header must name one host (and "
                        "port), once.")


def _split_target(method: str, target: str, headers: dict[str, str]) -> SplitResult:
    """The request target's parts: a path (origin-form), an absolute http URL
    (absolute-form, which RFC 9112 3.2.2 says a server must accept; its host then
    stands for the Host header's), or ``*`` for a server-wide OPTIONS (asterisk-form,
    RFC 9112 3.2.4), whose path is then ``*``."""
    if not _VISIBLE.fullmatch(target):
        raise HttpError(400, Code.BAD_REQUEST, "the request target holds a space, a control "
                        "character or a byte that is not ASCII: escape it with %.")
    if "#" in target:
        # RFC 9112 3.2: no form of request-target has a fragment (RFC 9110 7.1: it is
        # the client's, never sent). Dropping it would serve another target than the
        # client meant: ?name=a#b.png would upload a file named a.
        raise HttpError(400, Code.BAD_REQUEST, "the request target holds a fragment (#...), "
                        "which a client keeps to itself: send the path and query alone, "
                        "or escape a # in them as %23.")
    if target == "*" and method == "OPTIONS":
        _check_named_host(headers)  # (its URI's host is Host's too: RFC 9112 3.3)
        return SplitResult("", "", "*", "", "")
    if target.startswith("/"):
        _check_named_host(headers)
        # An origin-form target is all path and query: alone, urlsplit would read
        # "//x/health" as the host x and the path /health.
        return urlsplit("http://origin" + target)
    split = _absolute_url(target)
    if split is None:
        raise HttpError(400, Code.BAD_REQUEST, "the request target is neither a path (/...) "
                        "nor an absolute http URL.")
    headers["host"] = split.netloc
    return split


def _check_named_host(headers: dict[str, str]) -> None:
    """An origin-form request's URI takes its host from Host (RFC 9112 3.3), and an
    http URI has a host (RFC 9110 4.2.1): an empty Host, which RFC 9112 3.2 keeps for
    a URI without one, names none here. (With an absolute URL as the target, the
    URL's host stands for Host's, empty or not; HTTP/1.0 may send no Host at all.)"""
    if headers.get("host") == "":
        raise HttpError(400, Code.BAD_REQUEST, "the Host header is empty, and an http URL "
                        "has a host: name it in Host.")


def _absolute_url(target: str) -> SplitResult | None:
    """``target`` split, when it is an http(s) URL with a host (and no user name: RFC
    9110 4.2.4 deprecates it)."""
    try:
        split = urlsplit(target)
        split.port  # noqa: B018 (read for its ValueError: a port that is no number)
    except ValueError:  # that, or a malformed IPv6 address
        return None
    # (A zone id, "%25eth0", is the client's alone: refused as in Host.)
    if split.scheme in ("http", "https") and split.hostname and \
            not {"@", "%"} & set(split.netloc):
        return split
    return None


def _path(raw: str) -> str:
    """The path, its escapes decoded: strictly, as the query's, and with no control
    character (a %00 in a path is never a name here, and would reach the log and the
    file system's calls as one)."""
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, Code.BAD_REQUEST, "the path's escapes are not UTF-8.") from None
    if _PATH_CONTROL.search(path):
        raise HttpError(400, Code.BAD_REQUEST, "the path holds a control character (an "
                        "escape such as %00 or %0A).")
    return path


def _headers(lines: list[str]) -> dict[str, str]:
    """The header fields, names lower-cased, repeated ones joined by ", "."""
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, Code.REQUEST_TOO_LARGE, "too many header fields.")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if line[:1] in (" ", "\t"):
            # RFC 9112 5.2: a line folded onto the one before is refused (or unfolded);
            # readers that disagree on it disagree on the headers.
            raise HttpError(400, Code.BAD_REQUEST, "a header line continues the one before "
                            "it (obs-fold): send each field on one line.")
        # RFC 9110 5.5: a value holds no control character but HTAB (a NUL, an
        # escape), and is trimmed of spaces and tabs alone.
        value = value.strip(" \t")
        if not sep or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise HttpError(400, Code.BAD_REQUEST, f"a header line is malformed: {name[:40]!r} "
                            "(a field name is a token, its value has no control character).")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _lines(text: str) -> list[str]:
    """The lines of a head, each without its CRLF or bare LF. A bare CR anywhere else
    is refused (RFC 9112 2.2): taken for a line end by one reader and not by
    another, it would let a request smuggle a header past a proxy.

    The last line's own end went with the blank line after it (the reader cuts the
    head before the whole CRLF or LF that ends it), so a CR that ends it here is a
    bare one: ``Host: x<CR><CR><LF><CR><LF>`` holds one, as a CR in the middle does."""
    *ended, last = text.split("\n")
    lines = [*(line.removesuffix("\r") for line in ended), last]
    if any("\r" in line for line in lines):
        raise HttpError(400, Code.BAD_REQUEST, "a line of the request head holds a bare CR.")
    return lines


def _check_method(method: str) -> None:
    """Refuse a method the listener does not know, before its body is read: no path
    takes it, so the answer is the same whatever the path (RFC 9110 15.6.2)."""
    if method not in METHODS:
        raise HttpError(501, Code.NOT_IMPLEMENTED,
                        f"the method {method} is not implemented here (methods are "
                        f"case-sensitive): use one of {', '.join(sorted(METHODS))}.")


def _check_framing(request: Request) -> None:
    """Refuse a request whose body is not framed by Content-Length alone: none with
    Transfer-Encoding is read (so none is read two ways, as a request smuggled past
    a proxy would be)."""
    value = request.headers.get("transfer-encoding")
    if value is None:
        return
    if "content-length" in request.headers:
        # RFC 9112 6.1: the two together are how a request is smuggled; refused, closed.
        raise HttpError(400, Code.BAD_REQUEST, "Content-Length and Transfer-Encoding "
                        "together: the body's length is ambiguous.")
    codings = [coding.strip().lower() for coding in value.split(",")]
    if codings == ["chunked"]:
        raise HttpError(411, Code.BAD_REQUEST,
                        "chunked bodies are not accepted: send Content-Length.")
    unknown = [coding for coding in codings if coding and coding != "chunked"]
    if unknown:
        # RFC 9112 6.1: a transfer coding the server does not understand is a 501.
        raise HttpError(501, Code.NOT_IMPLEMENTED, f"the transfer coding {unknown[0][:40]} "
                        "is not implemented: send the body with Content-Length.")
    raise HttpError(400, Code.BAD_REQUEST, "the Transfer-Encoding is malformed.")


def _expectations(request: Request) -> list[str]:
    """The members of Expect, lower-cased (its value is case-insensitive), empty
    ones left out (RFC 9110 5.6.1: a list may hold them)."""
    value = request.headers.get("expect", "")
    return [member.strip().lower() for member in value.split(",") if member.strip()]


def _check_expectations(request: Request) -> None:
    """RFC 9110 10.1.1: an expectation other than 100-continue may be answered 417,
    and is, before the body is read: a client that asks for what this server does
    not do is told so, not served as if it had not asked."""
    unmet = [member for member in _expectations(request) if member != "100-continue"]
    if unmet:
        raise HttpError(417, Code.NOT_IMPLEMENTED, f"the expectation {unmet[0][:40]} cannot "
                        "be met here: only 100-continue is; send the request without it.")


class RequestReader:
    """Cuts requests out of a connection's bytes; the body's limit is the caller's."""

    __slots__ = ("_buffer", "_line_checked", "_pending", "_scanned")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: Request | None = None
        # How much of the buffer is known to hold no head's end: a head that arrives
        # a byte at a time is scanned once, not once a byte (16 KiB of it cost a
        # second of the loop's time).
        self._scanned = 0
        self._line_checked = False  # the next request's line, checked before its head ends

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> bool:
        return bool(self._buffer) or self._pending is not None

    def head(self) -> Request | None:
        """The next request's head once it is complete (its body still to come)."""
        if self._pending is not None:
            return self._pending
        blank = _BLANK_LINES.match(self._buffer)
        if blank is not None:
            del self._buffer[:blank.end()]
            self._scanned = max(0, self._scanned - blank.end())
        # A blank line is at most 4 bytes: one may end in the bytes just arrived.
        end = _HEAD_END.search(self._buffer, max(0, self._scanned - 3))
        if end is None:
            if len(self._buffer) > MAX_HEAD:
                raise HttpError(431, Code.REQUEST_TOO_LARGE,
                                f"the request head is over {MAX_HEAD} bytes.")
            self._check_start()
            self._scanned = len(self._buffer)
            return None
        self._scanned, self._line_checked = 0, False
        if end.start() > MAX_HEAD:
            raise HttpError(431, Code.REQUEST_TOO_LARGE,
                            f"the request head is over {MAX_HEAD} bytes.")
        request = parse_head(bytes(self._buffer[:end.start()]))
        del self._buffer[:end.end()]
        _check_framing(request)
        _check_expectations(request)
        self._pending = request
        return request

    def _check_start(self) -> None:
        """Refuse at once a head whose start is already wrong, rather than wait for its
        end until web.request_timeout: a client that speaks something else (TLS to
        this plain port, a line typed at nc) is told now. Only the bytes not yet
        looked at are searched for the first line's end."""
        if self._line_checked or len(self._buffer) == 0 or self._buffer == b"\r":
            return  # (a lone CR: a blank line's start, or a bare CR the head refuses)
        if self._buffer[:1] == b"\x16":
            raise HttpError(400, Code.BAD_REQUEST, "that is a TLS handshake: this port "
                            "speaks plain HTTP (http://, not https://).")
        line_end = self._buffer.find(b"\n", self._scanned)
        if line_end < 0:
            method = bytes(self._buffer[:32]).partition(b" ")[0]
            if not _TOKEN_BYTES.fullmatch(method):
                raise HttpError(400, Code.BAD_REQUEST, "that is not an HTTP request.")
            return
        _request_line(self._buffer[:line_end].decode("latin-1").removesuffix("\r"))
        self._line_checked = True

    def body(self, limit: int, what: str = "") -> Request | None:
        """The pending request with its whole body, or None while it is arriving;
        ``request-too-large`` at once when its declared length is over ``limit``
        (``file-too-large`` when the body is ``what``: "a file")."""
        request = self._pending
        assert request is not None
        length = request.content_length
        if length > limit:
            if what:
                raise HttpError(413, Code.FILE_TOO_LARGE, f"{what} may have at most {limit} "
                                f"bytes; this one has {length}.", max_size=limit)
            raise HttpError(413, Code.REQUEST_TOO_LARGE,
                            f"the body is {length} bytes; at most {limit} are accepted here.",
                            max_size=limit)
        if len(self._buffer) < length:
            return None
        request.body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._pending = None
        return request

    def rest(self) -> bytes:
        """What arrived after the last request (a WebSocket's first frames)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


@dataclass(slots=True)
class Response:
    """A response; a ``stream`` sends its body in chunks (``length`` bytes in all)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    length: int | None = None

    def head(self, keep_alive: bool) -> bytes:
        """The status line and headers (with the security headers)."""
        reason = HTTPStatus(self.status).phrase
        length = self.length if self.stream is not None else len(self.body)
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Type: {self.content_type}"]
        if self.status != 204:  # RFC 9110 8.6: a 204 has no Content-Length
            lines.append(f"Content-Length: {length}")
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        lines += [f"{k}: {v}" for k, v in SECURITY_HEADERS]
        if self.content_type.startswith("text/html"):
            lines.append(f"Content-Security-Policy: {CSP}")
        lines += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(value: Any, status: int = 200, **headers: str) -> Response:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json",
                    [("Cache-Control", "no-store"), *headers.items()])


# The challenge of a 401: RFC 9110 15.5.2 has every 401 name one, and HTTP clients
# read it to learn how to authenticate (RFC 6750 3: a bearer token). A credential
# that was sent and refused is an invalid_token; a request that sent none is told
# the scheme alone (RFC 6750 3.1).
CHALLENGE = 'Bearer realm="chatd"'
REFUSED_CHALLENGE = f'{CHALLENGE}, error="invalid_token"'


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    """The API's error body: ``{"error": {"code", "message", ...details}}``."""
    extra: dict[str, str] = {}
    retry_ms = details.get("retry_ms")
    if status in (429, 503) and isinstance(retry_ms, int):
        extra["Retry-After"] = str(max(1, -(-retry_ms // 1000)))
    if status == 401:
        refused = code == Code.AUTH_FAILED
        extra["WWW-Authenticate"] = REFUSED_CHALLENGE if refused else CHALLENGE
    return json_response({"error": {"code": code, "message": message, **details}}, status,
                         **extra)
