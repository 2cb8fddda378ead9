"""The IRC front end's shared state: its command table and dispatcher, its
renderer and its guests, over the domain services.

It knows nothing of sockets: :mod:`chatd.irc.listener` binds the ports and
makes the connections, which receive this front. IRC sessions and command
contexts see it as their ``listener``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

from chatd.irc.commands import IRC_COMMANDS, IrcCommandTable, IrcDispatcher
from chatd.irc.guests import Guests
from chatd.irc.people import People
from chatd.irc.render import IrcRenderer

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatd.config import Config
    from chatd.protocol.services import Services

# The modules that declare IRC commands (importing one registers its commands).
MODULES: Final = ("registration", "auth", "welcome", "channels", "listing", "modes",
                  "queries", "messages", "operators", "monitor", "history")


def load() -> IrcCommandTable:
    """Import every IRC command module and return the table."""
    for name in MODULES:
        importlib.import_module(f"chatd.irc.{name}")
    return IRC_COMMANDS


class IrcFront:
    """What is IRC-wide for one chatd: renderer, guests, people, dispatcher."""

    def __init__(self, config: Callable[[], Config], services: Services) -> None:
        self.services = services
        self.renderer = IrcRenderer(lambda: config().irc.server_name, services.clock.time)
        self.guests = Guests(services)
        # No account is made with the name of a guest online.
        services.accounts.name_holders.append(self.guests)
        # Guests' bans are theirs too, whichever listener's command bans them; a
        # room's go when it ends.
        services.moderation.guest_bans = self.guests
        services.rooms.ended.append(self.guests.room_ended)
        self.people = People(services, self.renderer)
        self.renderer.directory = self.people
        services.presence.watchers.append(self.people)
        self.dispatcher = IrcDispatcher(self, load())
