"""The route table of the HTTP API: what each route takes, answers and needs.

One declaration per route serves three readers: the listener (matching a
request, its body limit, whether a token is needed), the OpenAPI document
(:mod:`chatd.web.openapi`) and the readable reference page, so the document
cannot drift from what the server does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from chatd.domain.names import MAX_NUMBER, capped_number, is_number
from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.protocol.services import Services
    from chatd.web.http import Request, Response

Schema = dict[str, Any]
Where = Literal["path", "query"]
_PARAM = re.compile(r"\{([a-z_]+)\}")
# The longest field name a refusal quotes whole.
_SHOWN = 40


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Where
    description: str
    integer: bool = False
    required: bool = True
    # A count of things (limit), where a number of any size means as many as
    # there may be: past MAX_NUMBER, it is MAX_NUMBER, capped by the handler.
    count: bool = False

    def value(self, raw: str) -> str | int:
        if not self.integer:
            return raw
        if self.count and (counted := capped_number(raw, MAX_NUMBER)) is not None:
            return counted
        if not is_number(raw):
            raise ChatError(Code.BAD_ARGUMENTS, f"{self.name} must be a positive number.")
        return int(raw)


@dataclass(slots=True)
class Call:
    """One request on its way through a route: who asks, with which parameters."""

    request: Request
    services: Services
    config: Config
    peer: str
    user: User | None
    params: dict[str, str | int]
    # The API token the request came with (None on a route that takes none), and
    # the scopes it grants.
    token_id: int | None = None
    scopes: frozenset[Scope] = frozenset()
    # The fields the operation's JSON body may hold (Route.fields); None: any, those
    # it does not take ignored.
    fields: frozenset[str] | None = frozenset()

    @property
    def me(self) -> User:
        assert self.user is not None, "an authenticated route has a user"
        return self.user

    def body(self) -> dict[str, Any]:
        """The request's JSON body, refused when it holds a field the operation does
        not take: ignored, a typo (``txt`` for ``text``, ``lable``) would leave the
        request meaning something else than its sender meant, and nothing said so."""
        body = self.request.json()
        for name in body:
            if self.fields is not None and name not in self.fields:
                taken = ", ".join(sorted(self.fields))
                raise ChatError(Code.BAD_ARGUMENTS, f"unknown field {_shown(name)}: this "
                                f"operation takes {taken}.", field=name)
        return body

    def text(self, name: str) -> str:
        value = self.params[name]
        assert isinstance(value, str)
        return value

    def number(self, name: str, default: int | None = None) -> int:
        value = self.params.get(name, default)
        if value is None:
            raise ChatError(Code.BAD_ARGUMENTS, f"{name} is missing.")
        assert isinstance(value, int)
        return value


def _shown(name: str) -> str:
    """A field's name as a refusal quotes it: in JSON's quotes, and cut short when long
    (the whole name is in the error's ``field``)."""
    quoted = json.dumps(name, ensure_ascii=False)
    return quoted if len(quoted) <= _SHOWN else quoted[:_SHOWN - 1] + "…"


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: ``path`` with ``{name}`` placeholders declared in ``params``."""

    method: str
    path: str
    handler: Callable[[Call], Awaitable[Response]]
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    # The JSON body's schema; "binary" for a raw upload; None for no body.
    body: Schema | Literal["binary"] | None = None
    # The 200 answer: a JSON schema, or a media type for bytes ("*/*").
    answer: Schema | str = field(default_factory=dict)
    auth: bool = True
    # What a route that takes no token checks on the request's head instead, before
    # its body is read (a webhook's secret, a download link's signature); the
    # handler decides again with the whole request (what the head's check read may be
    # stale by then: the body can take up to web.request_timeout to arrive).
    vouch: Callable[[Call], Awaitable[None]] | None = None
    # The largest body, when it is not web.max_body (an upload's is files.max_size).
    body_limit: Callable[[Config], int] | None = None
    errors: tuple[int, ...] = ()
    # Whether a JSON body's fields the operation does not take are ignored rather than
    # refused: an incoming webhook's senders are programs built for other chat
    # services too, whose payloads carry fields of their own (username, icon_emoji).
    open_body: bool = False
    # The token scope it needs; by default read for a GET, post for anything else.
    scope: Scope | None = None
    # Scopes it needs beside that one (a webhook's creation: moderate, and post, since
    # the webhook posts: a token that may not post must not make something that does).
    also: tuple[Scope, ...] = ()
    pattern: re.Pattern[str] = field(init=False)

    @property
    def needs(self) -> Scope:
        """The scope a token must grant to call this operation."""
        if self.scope is not None:
            return self.scope
        return Scope.READ if self.method == "GET" else Scope.POST

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """Every scope a token must grant to call this operation, ``needs`` first."""
        return (self.needs, *self.also)

    def __post_init__(self) -> None:
        regex = _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(self.path)
                           .replace(r"\{", "{").replace(r"\}", "}"))
        object.__setattr__(self, "pattern", re.compile(regex + "$"))

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def limit(self, config: Config) -> int:
        return self.body_limit(config) if self.body_limit else config.web.max_body

    @property
    def fields(self) -> frozenset[str] | None:
        """The fields its JSON body may hold (none when it takes no JSON body; None
        when any may be given, those it does not take ignored: ``open_body``)."""
        if self.open_body:
            return None
        if isinstance(self.body, dict):
            return frozenset(self.body.get("properties", {}))
        return frozenset()

    def bind(self, path: str, query: dict[str, str],
             repeated: Collection[str] = ()) -> dict[str, str | int] | None:
        """The route's parameters from ``path`` and ``query``; None if the path is another.
        One of its query parameters given more than once (``repeated``) is refused: which
        of the values its sender meant is not for the server to guess."""
        found = self.pattern.match(path)
        if found is None:
            return None
        raw = {**{k: v for k, v in query.items()}, **found.groupdict()}
        values: dict[str, str | int] = {}
        for param in self.params:
            if param.where == "query" and param.name in repeated:
                raise ChatError(Code.BAD_ARGUMENTS, f"{param.name} is given more than once: "
                                "give it once.", parameter=param.name)
            if param.name in raw:
                values[param.name] = param.value(raw[param.name])
            elif param.required:
                raise ChatError(Code.BAD_ARGUMENTS, f"{param.name} is missing.")
        return values


class RouteTable:
    """The routes, matched in order."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def find(self, method: str, path: str) -> tuple[Route, bool] | None:
        """The route for ``path``: (route, whether ``method`` is its method); None if no
        route has that path."""
        other: Route | None = None
        for route in self.routes:
            if route.pattern.match(path):
                if route.method == method:
                    return route, True
                other = other or route
        return (other, False) if other is not None else None
