"""Clients of chatd: the asyncio JSON-mode client for bots, tests and tools
(``api``, re-exported here: ``from chatd.client import ChatClient``) and the
terminal client chatd-client (``tui``). A client talks to the daemon over a
socket only: it may use ``crypto`` and ``protocol``'s pure parts, nothing else."""

from chatd.client.api import (
    DEFAULT_TIMEOUT,
    ChatClient,
    ClientError,
    LineClient,
    Notifications,
    Reply,
)

__all__ = ["DEFAULT_TIMEOUT", "ChatClient", "ClientError", "LineClient", "Notifications",
           "Reply"]
