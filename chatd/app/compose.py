"""The composition root: the one module that knows the core, the commands and storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import commands
from chatd.app.server import ChatServer

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.clock import Clock
    from storage.api import Storage


def build_server(config: Config, clock: Clock | None = None,
                 storage: Storage | None = None) -> ChatServer:
    """A server with every command of the ``commands`` package."""
    return ChatServer(config, commands.load(), clock=clock, storage=storage)
