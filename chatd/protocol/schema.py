"""A machine-readable description of every command, from the command table itself.

``/schema`` answers with it; ``docs/PROTOCOL.md``'s command tables are checked
against it by a test. It reads the very records the dispatcher enforces
(chatd.protocol.registry, chatd.protocol.params), so what a bot learns here
is what the server does: the parameters with their types, optionality and
limits, the login state, room role and scope a command needs, and every
error code it may answer.
"""

from __future__ import annotations

from typing import Any

from chatd.domain.scopes import Scope
from chatd.errors import Code
from chatd.protocol.registry import Command, CommandTable, Need

# Bumped when the shape of a command's description changes (not when commands do).
SCHEMA_VERSION = 1

# Every command line may meet these (PROTOCOL.md §7's list): the command rate, words
# its parameters do not take (even a command without parameters refuses extra words),
# a server failure, and busy: the dispatcher answers it for any command when the
# database does not answer (chatd.protocol.dispatch.crashed), besides a message that
# could not be numbered. Added here for every command, so no list can lack one.
EVERY_COMMAND = (Code.RATE_LIMITED, Code.BAD_ARGUMENTS, Code.INTERNAL_ERROR, Code.BUSY)


def describe(cmd: Command) -> dict[str, Any]:
    """One command as /schema describes it."""
    return {
        "name": cmd.name,
        "aliases": list(cmd.aliases),
        "group": cmd.group,
        "summary": cmd.summary,
        "usage": cmd.usage,
        "params": [param.describe() for param in cmd.described_params],
        "needs": cmd.need.value,
        "server_admin": cmd.server_admin,
        "role": cmd.role.value if cmd.role is not None else None,
        "scope": cmd.scope.value,
        "data_lines": cmd.data_lines,
        "errors": [code.value for code in errors(cmd)],
    }


def errors(cmd: Command) -> list[Code]:
    """Every code ``cmd`` may answer: the dispatcher's checks it passes, its
    parameters', and its own; in the order of Code (the wire contract's first)."""
    codes: set[Code] = {*EVERY_COMMAND, *cmd.errors}
    if cmd.need is Need.LOGIN:
        codes.add(Code.NOT_LOGGED_IN)
    if cmd.need is Need.ANONYMOUS:
        codes.add(Code.ALREADY_LOGGED_IN)
    else:
        codes.add(Code.SCOPE)  # a logged-in session's token may not grant the scope
    if cmd.server_admin or cmd.role is not None:
        codes.add(Code.NOT_PERMITTED)
    for param in cmd.described_params:
        codes.update(param.errors())
    return [code for code in Code if code in codes]


def schema(table: CommandTable) -> dict[str, Any]:
    """Every command, by name, with the scopes there are."""
    return {"version": SCHEMA_VERSION, "scopes": [scope.value for scope in Scope],
            "commands": [describe(cmd) for cmd in table.all()]}
