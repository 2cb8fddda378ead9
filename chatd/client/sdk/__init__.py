"""chatd's bot SDK: a public, typed asyncio API for bots (see docs/SDK.md).

    from chatd.client.sdk import Bot, Message

:class:`Bot` (connection, login, reconnection, handlers, requests), the typed
events of :mod:`chatd.client.sdk.events`, :class:`Backoff`, and the clocks
bots wait on (:class:`SystemClock`, and :class:`ManualClock` for tests).
The lower-level :class:`chatd.client.ChatClient` is re-exported as well.
"""

from chatd.client.api import ChatClient, ClientError, Notifications, Reply
from chatd.client.sdk import cli
from chatd.client.sdk.backoff import Backoff
from chatd.client.sdk.bot import (
    Bot,
    FileResumeTokens,
    LoginRefused,
    MemoryResumeTokens,
    ResumeTokens,
)
from chatd.client.sdk.clock import Clock, ManualClock, SystemClock
from chatd.client.sdk.events import (
    Event,
    Invite,
    Join,
    Leave,
    Message,
    Notice,
    RoomEvent,
    ServerError,
    Typing,
)

__all__ = [
    "Backoff",
    "Bot",
    "ChatClient",
    "ClientError",
    "Clock",
    "Event",
    "FileResumeTokens",
    "Invite",
    "Join",
    "Leave",
    "LoginRefused",
    "ManualClock",
    "MemoryResumeTokens",
    "Message",
    "Notice",
    "Notifications",
    "Reply",
    "ResumeTokens",
    "RoomEvent",
    "ServerError",
    "SystemClock",
    "Typing",
    "cli",
]
