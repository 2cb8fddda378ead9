"""The slash commands. Each module holds one group; each handler is declared once.

To find a command's handler, grep for ``@command("name"`` in this package.
"""

from __future__ import annotations

import importlib

from chatd.protocol.registry import COMMANDS, CommandTable

MODULES = ("account", "rooms", "messages", "moderation", "meta", "admin", "notify", "bots",
           "files", "stickers", "crypto", "people")


def load() -> CommandTable:
    """Import every command module (registering its commands) and return the table."""
    for name in MODULES:
        importlib.import_module(f"commands.{name}")
    return COMMANDS
