"""An IRC connection: chatd's :class:`~chatd.net.connection.Connection` with IRC at both ends.

Everything that makes a connection robust is inherited unchanged: ordered
line processing with backpressure, output flushed once per loop turn,
slow consumers cut off, connection limits and timeouts. Only the ends
differ: the framer (IRC's 512/8191-byte limits, no telnet), the session
(:class:`IrcSession`), the handler of lines (the IRC dispatcher) and the
``ERROR`` line IRC sends before a server closes a connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chatd.errors import Code
from chatd.irc import numerics as n
from chatd.irc.codec import IrcFramer, format_line
from chatd.irc.session import IrcSession
from chatd.net.connection import Connection
from chatd.protocol.codec import BadLine

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from chatd.irc.front import IrcFront
    from chatd.net.connection import ConnectionHost


# The framer of IRC connections between lines (see SharedAtRest).
_FRAMER_AT_REST: Final = IrcFramer()


class IrcConnection(Connection):
    """The transport side of an IRC session."""

    __slots__ = ("_irc",)
    session: IrcSession  # (what _new_session made)

    def __init__(self, host: ConnectionHost, front: IrcFront) -> None:
        self._irc = front  # before Connection's set-up, which makes the session
        super().__init__(host, _FRAMER_AT_REST)

    def _new_session(self, now: float) -> IrcSession:
        return IrcSession(self, None, now, self._irc)

    def _handle(self, item: str | BadLine) -> Awaitable[None] | None:
        if isinstance(item, BadLine):
            self._framing_error(item.code)
            return None
        return self._irc.dispatcher.handle(self.session, item)

    def _framing_error(self, code: str) -> None:
        session = self.session
        server = self._irc.renderer.server
        if code == Code.LINE_TOO_LONG:
            line = format_line(n.ERR_INPUTTOOLONG, session.nick, "Input line was too long",
                               source=server)
        else:
            line = format_line("FAIL", "*", "INVALID_UTF8",
                               "that line was not valid UTF-8 and was dropped", source=server)
        session.write_lines([line])

    def connection_lost(self, exc: Exception | None) -> None:
        self._irc.guests.disconnected(self.session)
        self._irc.people.ended(self.session)
        super().connection_lost(exc)

    def close(self, reason: str, going_away: bool = False) -> None:
        """Say ``ERROR`` (as IRC servers do before closing a link), then close."""
        session = self.session
        if not self._closing_or_gone():
            session.write_lines([format_line("ERROR", f"Closing Link: {session.nick} "
                                                      f"({reason})")])
        super().close(reason, going_away)

    def _closing_or_gone(self) -> bool:
        return self._closing or self._transport is None or self._transport.is_closing()
