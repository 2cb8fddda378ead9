"""The web listener: one HTTP port for browsers and integrations.

:class:`WebServer` binds ``web.host:web.port`` and gives each accepted socket
an :class:`HttpConnection`, which reads requests (:mod:`chatd.web.http`) and
answers them one at a time:

- ``GET /`` and ``/static/...``: the browser client's files, ``GET /admin`` the
  live admin page; ``GET /health``;
- ``/ws`` (``text.chatd``) and ``/irc`` (``binary.ircv3.net``,
  ``text.ircv3.net``): the socket becomes a WebSocket, and from then on a
  chatd :class:`~chatd.net.connection.Connection` (or IRC's) of the same
  connection host as TCP's, which counts, limits, times out and closes it;
- ``/api/v1/...`` and ``/hooks/...``: the HTTP API (:mod:`chatd.web.api`),
  with its OpenAPI document and reference page.

The limits of plain HTTP are its own: a request must arrive within
``web.request_timeout`` (so must the next one on a kept-alive socket), its
body within ``web.max_body`` (an upload's within ``files.max_size``) and only
once its head is admitted (its route, its token: :meth:`WebServer.admit`), and one
address may hold ``limits.max_connections_per_ip`` plain HTTP sockets (the
listener ``limits.max_connections``). A socket that becomes a WebSocket leaves
that count: it is then a connection of the host, counted with the address's
TCP and IRC connections against the same limits, and never in both counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from chatd import __version__
from chatd.domain.limits import Kind, address_key
from chatd.errors import ChatError, Code
from chatd.net.connection import Connection, ConnectionHost
from chatd.protocol.codec import LineFramer
from chatd.protocol.dispatch import database_busy
from chatd.web import openapi
from chatd.web.api import api_routes
from chatd.web.http import (
    HttpError,
    Request,
    RequestReader,
    Response,
    error_response,
    json_response,
)
from chatd.web.links import LinkSigner
from chatd.web.routes import Call, RouteTable
from chatd.web.static import ADMIN, INDEX, static_file
from chatd.web.websocket import (
    CHATD_PROTOCOLS,
    IRC_BINARY,
    IRC_MAX_MESSAGE,
    IRC_PROTOCOLS,
    OVERSIZE_FACTOR,
    MessageReader,
    WsTransport,
    handshake,
)
from storage.api import Unavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.scopes import Scope
    from chatd.domain.tokens import Grant
    from chatd.protocol.services import Services
    from chatd.web.routes import Route

log = logging.getLogger(__name__)

# How long a streamed download may wait for a client that reads nothing.
STALL_LIMIT = 60.0
# How long a refused request's client may go on sending (its body, say) before the
# socket closes: closed with bytes unread, a socket is reset, and a client still
# sending would lose the refusal sent to it.
LINGER = 2.0
STATUS = {Code.AUTH_FAILED: 401, Code.NOT_LOGGED_IN: 401, Code.NOT_PERMITTED: 403,
          Code.BANNED: 403, Code.MUTED: 403, Code.NOT_IN_ROOM: 403, Code.BLOCKED: 403,
          Code.E2E_REQUIRED: 403, Code.MODERATED: 403, Code.BAD_ORIGIN: 403,
          # (A webhook's post: the API token that made the webhook is gone.)
          Code.TOKEN_REVOKED: 403, Code.TOKEN_EXPIRED: 403,
          Code.NO_SUCH_USER: 404,
          Code.NO_SUCH_ROOM: 404, Code.NO_SUCH_FILE: 404, Code.NO_SUCH_TOKEN: 404,
          Code.NO_SUCH_WEBHOOK: 404, Code.NOT_FOUND: 404, Code.NO_KEY: 404,
          Code.METHOD_NOT_ALLOWED: 405, Code.NAME_TAKEN: 409, Code.ALREADY_IN_ROOM: 409,
          Code.FILE_TOO_LARGE: 413, Code.QUOTA_EXCEEDED: 413, Code.REQUEST_TOO_LARGE: 413,
          Code.RATE_LIMITED: 429, Code.INTERNAL_ERROR: 500, Code.NOT_IMPLEMENTED: 501,
          Code.TOO_MANY_CONNECTIONS: 503, Code.BUSY: 503,
          Code.FILE_UNREADABLE: 503}
API = "/api/v1"


def status_of(code: Code) -> int:
    return STATUS.get(code, 400)


@dataclasses.dataclass(frozen=True, slots=True)
class Admitted:
    """A request accepted on its head (before its body was read, when one is still to
    come): its route, the route's parameters and the user its token names (None on a
    route that takes no token), that token's id and the scopes it grants. Each is
    decided once, the token checked (and the request charged against the user's
    rate) once."""

    route: Route
    params: dict[str, str | int]
    user: User | None
    token_id: int | None = None
    scopes: frozenset[Scope] = frozenset()


class WebHost(ConnectionHost, Protocol):
    """The connection host, as the web listener needs it: it also tells how many
    connections are open (TCP, IRC and WebSocket alike), for /health."""

    @property
    def connection_count(self) -> int: ...


class WebServer:
    """The web listener, its HTTP connections and what they answer."""

    def __init__(self, host: WebHost, services: Services,
                 irc_connection: Callable[[], Connection] | None = None) -> None:
        self.host = host
        self.services = services
        self._irc_connection = irc_connection
        self.links = LinkSigner()
        self.routes = RouteTable(api_routes(self.links))
        self._openapi = json.dumps(openapi.document(self.routes.routes, __version__)).encode()
        self._docs = openapi.page(self.routes.routes, __version__)
        self._servers: list[asyncio.Server] = []
        # Plain HTTP sockets (what the limits here count), and the sockets that
        # became WebSockets (counted by the connection host, pinged from here).
        self._http: set[HttpConnection] = set()
        self._websockets: set[HttpConnection] = set()
        self._per_ip: Counter[str] = Counter()
        # The refused sockets waiting for their client's close (HttpConnection.refuse),
        # oldest first: counted still, but the first to go when a new one needs room.
        self._lingering: dict[HttpConnection, None] = {}
        self._pinger: asyncio.Task[None] | None = None

    @property
    def config(self) -> Config:
        """The connection host's configuration: a reload reaches the web at once."""
        return self.host.config

    # -- binding and closing --------------------------------------------------------

    async def start(self) -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        web = self.config.web
        self._servers.append(await loop.create_server(
            lambda: HttpConnection(self), web.host, web.port, reuse_address=True, backlog=1024))
        self._pinger = asyncio.ensure_future(self._ping())
        return list(self._servers)

    @property
    def port(self) -> int:
        return int(self._servers[0].sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting and close every plain HTTP connection (WebSockets are the
        connection host's, which says goodbye to them: with 1001, going away, since
        this is the server's shutdown, as Connection.close says for the client to
        reconnect)."""
        for server in self._servers:
            server.close()
        if self._pinger is not None:
            self._pinger.cancel()
        for conn in list(self._http):
            conn.close()

    async def _ping(self) -> None:
        """Ping every WebSocket now and then: proxies close connections that stay quiet."""
        while True:
            interval = self.config.web.ping_interval
            await asyncio.sleep(interval or 5.0)
            if interval:
                for conn in list(self._websockets):
                    if conn.ws is not None:
                        conn.ws.transport.ping()

    # -- connection limits -------------------------------------------------------------

    def opened(self, conn: HttpConnection) -> bool:
        """Count a new plain HTTP socket; False when its address (or the listener)
        has too many, lingering ones closed to make room."""
        limits = self.config.limits
        self._http.add(conn)
        # An IPv6 address counts with its network (limits.ipv6_prefix), as on the
        # other listeners; a trusted proxy, held to no limit, alone: its many
        # sockets must not fill its network's place for the clients beside it.
        proxied = conn.ip in self.config.web.trusted_proxies
        conn.client = conn.ip if proxied else address_key(conn.ip, limits.ipv6_prefix)
        self._per_ip[conn.client] += 1
        if not proxied and self._per_ip[conn.client] > limits.max_connections_per_ip:
            self._make_room(conn.client)
        if len(self._http) > limits.max_connections:
            self._make_room(conn.client)
        return len(self._http) <= limits.max_connections and \
            (proxied or self._per_ip[conn.client] <= limits.max_connections_per_ip)

    def lingering(self, conn: HttpConnection) -> None:
        """``conn`` was refused and only waits for its client's close (at most LINGER
        seconds): it is served no more, so a new socket may take its place."""
        if conn in self._http:
            self._lingering[conn] = None

    def _make_room(self, client: str) -> None:
        """Close the oldest lingering socket of ``client`` (an address, or an IPv6
        network), and uncount it now.

        A lingering socket still counts: it holds a descriptor, and were it not
        counted an address could hold any number of them (one per refused request,
        2 s each). But it is no longer served, so rather than refuse a new socket
        (a client that read its 413 and connects again, say), it gives way.

        Only to its own address, at the listener's limit too: closed while its client
        still sends (the body of a request refused 413), a socket is reset, and the
        refusal not yet read is lost with it. No wait is long enough to be sure a
        client has read it (one sending a large body reads after its last byte), so
        another address's new socket never costs a client its answer: at the
        listener's limit it is refused 503, for at most LINGER seconds, the longest
        a socket lingers. A client's own new socket may: it has moved on."""
        victim = next((c for c in self._lingering if c.client == client), None)
        if victim is not None:
            self._uncount(victim)
            victim.close()

    def upgraded(self, conn: HttpConnection) -> None:
        """``conn`` is a WebSocket now: a connection of the host, which counts it
        with the address's TCP and IRC connections, so it leaves the count here
        (one socket, one count against the address's limit)."""
        self._uncount(conn)
        self._websockets.add(conn)

    def closed(self, conn: HttpConnection) -> None:
        self._uncount(conn)
        self._websockets.discard(conn)

    def _uncount(self, conn: HttpConnection) -> None:
        self._lingering.pop(conn, None)
        if conn in self._http:
            self._http.discard(conn)
            self._per_ip[conn.client] -= 1
            if self._per_ip[conn.client] <= 0:
                del self._per_ip[conn.client]

    # -- requests ------------------------------------------------------------------------

    def origin_allowed(self, request: Request) -> bool:
        """No Origin (not a browser), the page's own origin, or one of allowed_origins."""
        origin = request.headers.get("origin")
        if origin is None:
            return True
        if origin in self.config.web.allowed_origins:
            return True
        split = urlsplit(origin)
        host = request.headers.get("host", "")
        return split.scheme in ("http", "https") and bool(host) and \
            split.netloc.lower() == host.lower()

    def client_ip(self, ip: str, request: Request) -> str:
        """The client's address: X-Forwarded-For's last hop when a trusted proxy sent it."""
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded and ip in self.config.web.trusted_proxies:
            candidate = forwarded.rsplit(",", 1)[-1].strip()
            with contextlib.suppress(ValueError):
                return str(ipaddress.ip_address(candidate))
        return ip

    def body_limit(self, request: Request) -> tuple[int, str]:
        """The largest body ``request`` may have, and what it is when it is a file
        (an upload: over files.max_size it is ``file-too-large``)."""
        found = self.routes.find(request.method, request.path)
        if found is not None and found[1]:
            route = found[0]
            return route.limit(self.config), "a file" if route.body == "binary" else ""
        return self.config.web.max_body, ""

    async def respond(self, request: Request, ip: str,
                      admitted: Admitted | None = None) -> Response:
        """The answer to one plain HTTP request (never raises); ``admitted`` when its
        head was accepted before its body was read (:meth:`admit`)."""
        try:
            response = await self._answer(request, ip, admitted)
        except Exception as exc:
            response = self._failure(exc, request)
        return self._cors(request, response)

    async def admit(self, request: Request, ip: str) -> Admitted | Response | None:
        """What the head of ``request`` alone decides, before its body is read: the
        refusal (404, 405, 403, 401, 429, 400 for the route's parameters; on a route
        that takes no token, what its path carries instead: Route.vouch), or
        :class:`Admitted` (its route, parameters and token's user), or None when the
        target is a page (which takes no token: nothing to decide before the body).

        So a client without a valid token cannot make the server read and hold a
        body of up to files.max_size: it is refused on its head."""
        if request.method == "HEAD":
            # Asked as a GET (HttpConnection._serve), so decided as one.
            request = dataclasses.replace(request, method="GET")
        try:
            return await self._admit(request, ip)
        except Exception as exc:
            return self._cors(request, self._failure(exc, request))

    async def _admit(self, request: Request, ip: str) -> Admitted | None:
        found = await self._target(request)
        if isinstance(found, Response):
            return None
        admitted = await self._admitted(found, request, ip)
        if found.vouch is not None:
            # (Only here: a request whose body came with its head has it checked once,
            # by its handler.)
            await found.vouch(Call(request, self.services, self.config, f"{ip}:0", None,
                                   admitted.params))
        return admitted

    def _failure(self, exc: Exception, request: Request) -> Response:
        """The answer to a request that failed with ``exc``."""
        if isinstance(exc, HttpError):
            return exc.response()
        if isinstance(exc, ChatError):
            return error_response(status_of(exc.code), exc.code, exc.message, **exc.details)
        if isinstance(exc, Unavailable):
            # A cluster's PostgreSQL away: busy, as the line protocol answers it.
            log.warning("web request refused: the database does not answer (%s)", exc,
                        extra={"fields": {"method": request.method, "path": request.path}})
            refusal = database_busy()
            return error_response(status_of(refusal.code), refusal.code, refusal.message,
                                  **refusal.details)
        log.error("web request failed", exc_info=exc, extra={"fields": {
            "method": request.method, "path": request.path}})
        return error_response(500, Code.INTERNAL_ERROR, "the server failed; it has been "
                              "logged.")

    def _cors(self, request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin in self.config.web.allowed_origins:
            response.headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return response

    async def _answer(self, request: Request, ip: str, admitted: Admitted | None) -> Response:
        if admitted is None:  # its body came with its head: decided now
            found = await self._target(request)
            if isinstance(found, Response):
                return found
            admitted = await self._admitted(found, request, ip)
        call = Call(request, self.services, self.config, f"{ip}:0", admitted.user,
                    admitted.params, admitted.token_id, admitted.scopes,
                    admitted.route.fields)
        return await admitted.route.handler(call)

    async def _target(self, request: Request) -> Response | Route:
        """The route ``request`` asks for, or the answer that needs none (a page, a
        preflight, OPTIONS *); refused when there is none, or not with its method."""
        path, method = request.path, request.method
        if path == "*":
            # OPTIONS * (the only method the reader lets ask for *): the server as a
            # whole, RFC 9110 9.3.7, with what it takes somewhere in Allow.
            return Response(204, b"", "text/plain", [("Allow", ", ".join(_methods(
                self.routes, None)))])
        if method == "GET":
            page = await self._page(path)
            if page is not None:
                return page
        elif await self._is_page(path):
            # The page is there, the method is wrong: a 405, as for the API's paths,
            # not a 404 saying there is nothing at a path that serves a page.
            raise HttpError(405, Code.METHOD_NOT_ALLOWED, f"{path} takes only GET.",
                            headers=[("Allow", "GET, HEAD")])
        if path == "/ws" or (path == "/irc" and self._irc_connection is not None):
            # RFC 9110 15.5.22: a 426 names the protocol to upgrade to. (Without the
            # IRC listener there is no /irc to upgrade to: its upgrade is a 404.)
            raise HttpError(426, Code.BAD_REQUEST, f"{path} is a WebSocket: open it with an "
                            "Upgrade request.", headers=[("Upgrade", "websocket")])
        found = self.routes.find(method, path)
        if found is None:
            raise HttpError(404, Code.NOT_FOUND, f"there is nothing at {path}.")
        route, same_method = found
        if not self.origin_allowed(request):
            raise HttpError(403, Code.BAD_ORIGIN, "requests from that origin are not allowed.")
        if method == "OPTIONS":
            return _preflight(request, self.routes, path)
        if not same_method:
            # The route's pattern, not the path: a webhook's path holds its secret.
            # RFC 9110 15.5.6: a 405 lists what the path does take.
            # (A HEAD is asked as a GET: it is refused as one, and named with it.)
            asked = "GET or HEAD" if method == "GET" else method
            raise HttpError(405, Code.METHOD_NOT_ALLOWED,
                            f"{route.path} does not take {asked}.",
                            headers=[("Allow", ", ".join(_methods(self.routes, path)))])
        return route

    async def _admitted(self, route: Route, request: Request, ip: str) -> Admitted:
        """``request`` to ``route``: its parameters checked (400), then its token's user
        (None for a route that takes no token)."""
        params = route.bind(request.path, request.query, request.repeated)
        assert params is not None  # (the route was found by its path)
        if not route.auth:
            return Admitted(route, params, None)
        grant = await self._authorize(route, request, ip)
        return Admitted(route, params, grant.user, grant.token_id, grant.scopes)

    async def _is_page(self, path: str) -> bool:
        """Whether ``GET path`` answers with a page (or a static file) of its own."""
        try:
            return await self._page(path) is not None
        except HttpError:
            return False

    async def _page(self, path: str) -> Response | None:
        if path == "/health":
            # Open now, as /stats and chatctl status count them; the total since start
            # under its own name.
            return json_response({"status": "ok", "version": __version__,
                                  "connections": self.host.connection_count,
                                  "connections_accepted": self.services.stats.connections_total})
        if path == "/":
            return await static_file(INDEX)
        if path == "/admin":
            return await static_file(ADMIN)
        if path.startswith("/static/"):
            return await static_file(path.removeprefix("/static/"))
        if path == API + "/openapi.json":
            return Response(200, self._openapi, "application/json")
        if path == API + "/docs":
            return Response(200, self._docs, "text/html; charset=utf-8")
        return None

    async def _authorize(self, route: Route, request: Request, ip: str) -> Grant:
        """The token's grant (its user, its id), when it grants the scopes ``route``
        needs."""
        grant = await self._authenticate(request, ip)
        for needed in route.scopes:
            if needed not in grant.scopes:
                raise HttpError(403, Code.SCOPE, f"this token does not grant the {needed.value} "
                                f"scope; {self._remedy(grant.user, route.scopes)}",
                                scope=needed.value)
        return grant

    def _remedy(self, user: User, scopes: tuple[Scope, ...]) -> str:
        """Who can make a token that grants ``scopes`` (every one the operation needs:
        a token made with the missing one alone would be refused for another), and
        how: a bot cannot make its own tokens (its owner does, with /bot token), a
        person can."""
        listed = ",".join(scope.value for scope in scopes)
        if not user.is_bot:
            return f"make one that does with /token create <name> {listed}."
        owner = self.services.accounts.get(user.owner_id) if user.owner_id else None
        who = f"its owner {owner.name}" if owner is not None else "a server admin"
        return f"{who} makes one that does with /bot token {user.name} {listed}."

    async def _authenticate(self, request: Request, ip: str) -> Grant:
        """The token's user; failures count against the address as failed logins do."""
        protection = self.services.protection
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HttpError(401, Code.NOT_LOGGED_IN, "send an API token: "
                            "Authorization: Bearer <token> (make one with /token create).")
        peer = f"{ip}:0"
        await protection.admit_login(peer, None)
        failed = False
        try:
            grant = await self.services.tokens.authenticate(secret.strip())
        except ChatError:
            failed = True  # any refused token counts, as a failed login does
            raise
        finally:
            protection.login_ended(peer, None, failed=failed)
        wait = protection.charge(Kind.COMMAND, ("api", grant.user.id))
        if wait:
            retry_ms = max(1, round(wait * 1000))
            raise ChatError(Code.RATE_LIMITED, f"too many requests; wait {retry_ms} ms and "
                            "try again.", retry_ms=retry_ms)
        return grant

    # -- WebSockets ---------------------------------------------------------------------

    def upgrade(self, conn: HttpConnection, request: Request) -> MessageReader | None:
        """Answer an upgrade request; the reader of the new WebSocket, or None when
        it was refused (the answer is written, and the socket closes)."""
        raw = conn.transport
        assert raw is not None
        offered: tuple[str, ...]
        if request.path == "/ws":
            offered, line_end, make = CHATD_PROTOCOLS, b"\n", self._chatd_connection
            max_size = self.config.listen.max_line * OVERSIZE_FACTOR
        elif request.path == "/irc" and self._irc_connection is not None:
            offered, line_end, make = IRC_PROTOCOLS, b"\r\n", self._irc_connection
            max_size = IRC_MAX_MESSAGE
        else:
            conn.refuse(HttpError(404, Code.NOT_FOUND, f"no WebSocket at {request.path}."))
            return None
        if not self.origin_allowed(request):
            conn.refuse(HttpError(403, Code.BAD_ORIGIN, "WebSockets from that origin are "
                                                        "not allowed."))
            return None
        try:
            protocol = handshake(request.head, offered, max_size)
        except HttpError as exc:
            conn.refuse(exc)
            return None
        transport = WsTransport(raw, protocol, binary=protocol.subprotocol == IRC_BINARY,
                                line_end=line_end,
                                peer=(self.client_ip(conn.ip, request), conn.port),
                                output_limit=lambda: self.config.limits.output_buffer)
        transport.send_pending()
        if transport.is_closing():
            return None
        chat = make()
        reader = MessageReader(chat, transport, line_end=line_end,
                               refuse_binary=line_end == b"\n")
        if request.query.get("format") == "json" and line_end == b"\n":
            # Before the banner: a browser's client reads JSON from its first line.
            session = chat.session
            session.set_style(dataclasses.replace(session.style, fmt="json"))
        chat.connection_made(transport)
        return reader

    def _chatd_connection(self) -> Connection:
        # Messages are lines, not a telnet stream: a 0xFF byte in one is bad UTF-8
        # (invalid-utf8), never a command that would swallow or join lines.
        framer = LineFramer.at_rest(self.config.listen.max_line, telnet=False)
        return Connection(self.host, framer)


def _methods(routes: RouteTable, path: str | None) -> list[str]:
    """The methods the routes of ``path`` take (HEAD wherever GET is: it is answered
    as GET without the body); with no path, those of the whole server (its pages'
    GET, and OPTIONS, which any route takes)."""
    if path is None:
        methods = {"GET", "OPTIONS", *(r.method for r in routes.routes)}
    else:
        methods = {r.method for r in routes.routes if r.pattern.match(path)}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _preflight(request: Request, routes: RouteTable, path: str) -> Response:
    return Response(204, b"", "text/plain", [
        ("Access-Control-Allow-Methods", ", ".join(_methods(routes, path))),
        ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
        ("Access-Control-Max-Age", "600")])


class HttpConnection(asyncio.Protocol):
    """One socket of the web listener: HTTP requests, or a WebSocket once upgraded."""

    def __init__(self, web: WebServer) -> None:
        self.web = web
        self.transport: asyncio.Transport | None = None
        self.ip = "-"
        self.port = 0
        # What the socket counts under against limits.max_connections_per_ip: its
        # address, or an IPv6 address's network (set when it is counted).
        self.client = "-"
        self.ws: MessageReader | None = None
        self._reader = RequestReader()
        self._busy = False
        self._paused = False  # reading paused by this connection (while _busy)
        self._timer: asyncio.TimerHandle | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._task: asyncio.Task[None] | None = None
        self._continued: Request | None = None  # the request told 100 Continue
        # The request whose head was accepted before its body was read (WebServer.admit).
        self._admitted: tuple[Request, Admitted | None] | None = None
        self._lingering = False  # refused: what arrives is dropped until the close

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.ip, self.port = str(peer[0]), int(peer[1])
        if not self.web.opened(self):
            # Closed at once: a socket over the limit holds nothing for long.
            self.refuse(HttpError(503, Code.TOO_MANY_CONNECTIONS,
                                  "too many connections; try again later."), linger=False)
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self.ws is not None:
            self.ws.feed(data)
            return
        self._reader.feed(data)
        if not self._busy:
            self._next()

    def eof_received(self) -> bool | None:
        if self.ws is not None:
            self.ws.eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._writable.set()
        self.web.closed(self)
        if self.ws is not None:
            self.ws.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- requests ----------------------------------------------------------------------

    def _next(self) -> None:
        """Start on the next complete request, if one has arrived."""
        try:
            head = self._reader.head()
            if head is None:
                return
            if head.is_upgrade:
                self._upgrade(head)
                return
            request = self._reader.body(*self.web.body_limit(head))
        except HttpError as exc:
            self.refuse(exc)
            return
        if request is None:
            if self._admitted is None or self._admitted[0] is not head:
                self._admit(head)
            else:
                self._continue(head)
            return
        admitted = self._admitted[1] if self._admitted is not None else None
        # The request is whole: nothing holds it but its answer's task (a body of up
        # to files.max_size must not stay until the next request, or the timeout).
        self._admitted = self._continued = None
        self._busy = True
        self._disarm()
        # One request at a time, so the limits of _next cannot check what arrives
        # meanwhile: it waits in the socket (the client's send blocks) instead of
        # in the reader, which then holds at most one read past the request.
        self._pause_reading()
        self._task = asyncio.ensure_future(self._serve(request, admitted))

    def _admit(self, head: Request) -> None:
        """Decide on the head alone before a body still to come is read: reading is
        paused meanwhile, so the body waits in the socket, not in the server."""
        self._busy = True
        self._pause_reading()
        self._task = asyncio.ensure_future(self._admission(head))

    async def _admission(self, head: Request) -> None:
        decided = await self.web.admit(head, self.web.client_ip(self.ip, head))
        if self._lingering or self.transport is None or self.transport.is_closing():
            return  # timed out meanwhile (refused), or gone
        self._busy = False
        if isinstance(decided, Response):
            # Refused with the body unread: answered, then closed (what the client
            # still sends is dropped while the answer reaches it, see refuse). Not
            # drained to read the next request: that would be reading the very body
            # of up to files.max_size the refusal spares, for a client that may
            # have no token at all; a client that is refused connects again.
            self.refuse(decided)
            return
        self._admitted = (head, decided)
        self._resume_reading()
        self._next()

    def _continue(self, head: Request) -> None:
        """Invite the body of a request whose head is accepted (its declared length
        within the limit), when the client waits to be asked: RFC 9110 10.1.1. curl
        asks so for a body over 1 MiB, and without the invitation waits a second
        before it sends the body anyway."""
        if head.expects_continue and self._continued is not head and \
                self.transport is not None and not self.transport.is_closing():
            self._continued = head
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _upgrade(self, head: Request) -> None:
        self._disarm()
        length = head.content_length
        if length:
            raise HttpError(413, Code.REQUEST_TOO_LARGE, "a WebSocket upgrade request has no "
                            f"body; this one declares {length} bytes: send none.",
                            max_size=0)
        self._reader.body(0)
        reader = self.web.upgrade(self, head)
        if reader is None:
            return
        self.ws = reader
        self.web.upgraded(self)
        rest = self._reader.rest()
        if rest:
            reader.feed(rest)

    async def _serve(self, request: Request, admitted: Admitted | None) -> None:
        ip = self.web.client_ip(self.ip, request)
        # HEAD is GET without the body: the same status and headers (RFC 9110 9.3.2).
        head_only = request.method == "HEAD"
        if head_only:
            request.method, request.head_only = "GET", True
        response = await self.web.respond(request, ip, admitted)
        keep = request.keep_alive and response.status < 500
        try:
            await self._send(response, keep, head_only)
            if keep:
                # The next request waits until this answer has mostly gone: a client
                # that pipelines requests and reads none of the answers would have them
                # all held here, one per request it sends (one 40 KiB app.js each).
                await self._drained()
        except (ChatError, ConnectionError, TimeoutError) as exc:
            log.info("web response cut short", extra={"fields": {
                "path": request.path, "error": str(exc)}})
            self.abort()
            return
        self._busy = False
        if not keep:
            self.close()
            return
        self._arm()
        # Before _next: a request it starts pauses again, and a WebSocket it opens
        # must be left to pause and resume the socket as its connection decides.
        self._resume_reading()
        if self._reader.buffered:
            self._next()

    async def _send(self, response: Response, keep: bool, head_only: bool = False) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(response.head(keep))
        if head_only:
            return
        if response.stream is None:
            transport.write(response.body)
            return
        async for chunk in response.stream:
            if transport.is_closing():
                return
            transport.write(chunk)
            await self._drained()

    async def _drained(self) -> None:
        """Wait while the socket's buffer is over its high-water mark (the client reads
        slower than it is answered). A client that reads nothing is cut off (TimeoutError)
        rather than waited on forever."""
        if not self._writable.is_set():
            async with asyncio.timeout(STALL_LIMIT):
                await self._writable.wait()

    def _pause_reading(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def refuse(self, error: HttpError | Response, *, linger: bool = True) -> None:
        """Answer ``error`` and close (the request cannot be read on from here).

        The close waits for the client's end (at most LINGER seconds), and what it
        sends meanwhile is dropped: a client that sends a whole body over the limit
        before it reads (most do, without Expect: 100-continue) gets the refusal
        instead of a reset. (Without ``linger``, it closes at once.)"""
        response = error.response() if isinstance(error, HttpError) else error
        self._admitted = self._continued = None
        transport = self.transport
        if transport is None or transport.is_closing():
            self.close()
            return
        transport.write(response.head(False) + response.body)
        if not linger or not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        self._lingering = True
        self.web.lingering(self)
        self._reader = RequestReader()
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(LINGER, self.close)
        self._resume_reading()

    def close(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    # -- the request timer ---------------------------------------------------------------

    def _arm(self) -> None:
        """A request must arrive whole within web.request_timeout (slow or idle clients)."""
        self._disarm()
        timeout = self.web.config.web.request_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._reader.buffered:
            self.refuse(HttpError(408, Code.BAD_REQUEST, "the request took too long to arrive."))
        else:
            self.close()  # an idle keep-alive connection

