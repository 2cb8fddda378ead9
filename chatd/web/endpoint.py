"""An API request as the domain sees a connection: an Endpoint that lives for one request.

The domain's services take an endpoint (who acts, where the reply goes); an
HTTP request has no connection, so it brings this one. What the domain sends
it (the sender's own copy of a direct message) is kept, not shown anywhere:
the API's answer is built from the call's result instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatd.domain.accounts import User
    from chatd.domain.events import Event
    from chatd.domain.room import Room

# Far above any connection's session id, so the two never share a bucket or a log id.
_ids = itertools.count(1 << 40)


class ApiEndpoint:
    """One API request acting as ``user`` from ``peer``."""

    __slots__ = ("id", "peer", "sent", "token_id", "user")

    def __init__(self, user: User, peer: str) -> None:
        self.id = next(_ids)
        self.peer = peer
        self.user: User | None = user
        # (Its token is checked at each request: no session outlives it.)
        self.token_id: int | None = None
        self.sent: list[Mapping[str, Any] | Event] = []

    @property
    def closing(self) -> bool:
        return False

    @property
    def congested(self) -> bool:
        return False

    def signed_in(self, user: User, room: Room | None) -> None:
        self.user = user

    def signed_out(self, now: float) -> None:
        self.user = None
        self.token_id = None

    def gone(self) -> None:
        """Nothing to drop: the request ends with its answer."""

    def left_room(self, room: Room) -> None:
        """An API request has no current room."""

    def send(self, record: Mapping[str, Any] | Event, label: str | None = None) -> None:
        self.sent.append(record)

    def close(self, reason: str, going_away: bool = False) -> None:
        """A flood disconnect: the request is refused by the error that follows."""
