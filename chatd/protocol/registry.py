"""The command table: each command is one declarative record.

A handler declares its name, parameters and what it needs (login state, a
server-admin account, a role in the room argument, the scope a token must
grant), and the error codes of its own it may answer. The dispatcher enforces
all of that, so handlers only do their job. Usage lines are generated from the
parameters and the one-line help from the handler's docstring, and /schema
(chatd.protocol.schema) describes the same records, so neither can drift.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chatd.domain.room import Role
from chatd.domain.scopes import Scope
from chatd.errors import Code
from chatd.protocol.params import Param
from chatd.protocol.results import Deferred, Ok


class Need(Enum):
    """The session state a command accepts."""

    ANY = "any"
    ANONYMOUS = "anonymous"  # only before login (register, login)
    LOGIN = "login"


Handler = Callable[..., Awaitable[Ok | Deferred | None] | Ok | Deferred | None]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Handler
    params: tuple[Param, ...]
    summary: str
    need: Need = Need.LOGIN
    role: Role | None = None  # least room role needed in the "room" argument
    server_admin: bool = False
    aliases: tuple[str, ...] = ()
    group: str = "general"
    # For the rare command whose forms the parameters cannot express alone.
    usage_override: str | None = None
    # Followed by data lines up to "." (an upload): a refusal reads them first.
    data_lines: bool = False
    # What a token login must grant to run it (a password login grants everything).
    scope: Scope = Scope.POST
    # The error codes of its own it may answer; those of the checks every
    # command passes (login, role, arguments, rate) are added by /schema.
    errors: tuple[Code, ...] = ()
    # The parameters as /schema describes them, when the handler parses its own
    # (an upload reads its data lines even when its arguments are refused).
    described: tuple[Param, ...] | None = None
    # What it needs, when more than its login state and room role say (a member of
    # the room, a rule of its own): /help's "Needs:" line and PROTOCOL.md's column.
    needs: str | None = None
    # Its news is a room event (a kick, a topic ...): when that event reached the
    # issuing connection, a text-mode ok says nothing more (PROTOCOL.md §4).
    told_by_event: bool = False
    # How it is written (see usage): made once, as every command line carries it.
    _usage: str = field(init=False, default="", repr=False, compare=False)
    # How each of its sub-commands is written, by the sub-command's word (see usage_for).
    _forms: dict[str, str] = field(init=False, default_factory=dict, repr=False,
                                   compare=False)

    def __post_init__(self) -> None:
        written = self.usage_override or " ".join(
            [f"/{self.name}", *(p.usage for p in self.params)])
        object.__setattr__(self, "_usage", written)
        object.__setattr__(self, "_forms", _sub_command_forms(written))

    @property
    def described_params(self) -> tuple[Param, ...]:
        return self.described if self.described is not None else self.params

    @property
    def usage(self) -> str:
        return self._usage

    @property
    def sub_command_forms(self) -> dict[str, str]:
        """The usage's forms by the sub-command word they begin with (see usage_for)."""
        return dict(self._forms)

    def usage_for(self, args: str) -> str:
        """How the command is written as ``args`` begins: the form (or forms) of the
        sub-command its first word names (``/token revoke <name>`` for ``revoke a b``),
        else the whole usage. A refusal of a sub-command's arguments then names the
        sub-command's own usage, not every other's beside it."""
        first = args.split(maxsplit=1)[:1]
        return self._forms.get(first[0].lower(), self._usage) if first else self._usage

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    @property
    def needs_text(self) -> str:
        """The 'Needs:' line of /help, which PROTOCOL.md's Needs column repeats: the
        declared sentence, else the one the login state, server-admin flag and room
        role make."""
        if self.needs is not None:
            return f"{self.needs}."
        if self.server_admin:
            return "a server admin account."
        if self.role is not None:
            who = "the owner" if self.role is Role.OWNER else "an admin or the owner"
            return f"{who} of the room, or a server admin."
        return {Need.ANY: "nothing.", Need.ANONYMOUS: "not logged in.",
                Need.LOGIN: "logged in."}[self.need]


# A sub-command's word in a usage's form: a plain lower-case word (not <a-value>,
# [optional] or a --flag) right after the command's name.
_SUB_COMMAND = re.compile(r"[a-z][a-z0-9-]*")
# What separates the forms of a command written several ways.
FORMS_SEPARATOR = "  |  "


def _sub_command_forms(usage: str) -> dict[str, str]:
    """The forms of ``usage`` by the sub-command word each begins with (the forms
    that share a word, joined); empty for a usage with a single form."""
    forms = usage.split(FORMS_SEPARATOR)
    by_word: dict[str, list[str]] = {}
    for form in forms if len(forms) > 1 else ():
        words = form.split()
        if len(words) > 1 and _SUB_COMMAND.fullmatch(words[1]):
            by_word.setdefault(words[1], []).append(form)
    return {word: FORMS_SEPARATOR.join(shown) for word, shown in by_word.items()}


# The "Needs:" sentences several commands share (``needs=`` of :func:`command`).
NEEDS_MEMBER = "logged in; member of the room"
NEEDS_SENDER = ("logged in; member of the room (or anyone, in a room that takes messages "
                "from outside, /mode -n)")
NEEDS_READER = "logged in; member of the room (server admins: any room)"
NEEDS_ROOM_ADMIN = "an admin or the owner of the room, or a server admin"


class CommandTable:
    """Commands by name and alias."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._names: dict[str, Command] = {}
        self.on_message: MessageHandler | None = None

    def add(self, cmd: Command) -> None:
        for name in (cmd.name, *cmd.aliases):
            if name in self._names:
                raise ValueError(f"command /{name} is declared twice")
            self._names[name] = cmd
        self._commands[cmd.name] = cmd

    def get(self, name: str) -> Command | None:
        return self._names.get(name)

    def closest(self, name: str) -> str | None:
        """The command name or alias most like ``name`` (a typo's likely meaning)."""
        if len(name) > _LONGEST_TYPO:
            return None
        matches = difflib.get_close_matches(name, self._names, n=1, cutoff=0.6)
        return matches[0] if matches else None

    def all(self) -> list[Command]:
        return sorted(self._commands.values(), key=lambda c: c.name)


COMMANDS = CommandTable()

# Longer unknown names are not typos of a command: no suggestion, no comparing.
_LONGEST_TYPO = 32


def command(name: str, *params: Param, need: Need = Need.LOGIN, role: Role | None = None,
            server_admin: bool = False, aliases: tuple[str, ...] = (),
            group: str = "general", usage: str | None = None, data_lines: bool = False,
            scope: Scope | None = None, errors: tuple[Code, ...] = (),
            described: tuple[Param, ...] | None = None, needs: str | None = None,
            told_by_event: bool = False,
            table: CommandTable = COMMANDS) -> Callable[[Handler], Handler]:
    """Declare a command handler; its docstring's first line is its help.

    ``needs`` is /help's "Needs:" sentence (without its full stop) when the login
    state and room role do not say it all (see :attr:`Command.needs_text`).

    Without a ``scope``: ``admin`` for a server-admin command, ``moderate`` for one
    that needs a room role, else ``post`` (a command that only reads says so)."""

    def register(handler: Handler) -> Handler:
        doc = inspect.getdoc(handler) or ""
        # The summary is the docstring's first paragraph, however many lines it takes.
        summary = " ".join(doc.split("\n\n")[0].split())
        table.add(Command(name, handler, params, summary, need, role,
                          server_admin, aliases, group, usage, data_lines,
                          scope or _default_scope(server_admin, role), errors, described,
                          needs, told_by_event))
        return handler

    return register


def _default_scope(server_admin: bool, role: Role | None) -> Scope:
    if server_admin:
        return Scope.ADMIN
    return Scope.MODERATE if role is not None else Scope.POST


# What a plain line does, given the invocation context and the line. The
# context is not named here: it needs the services, which need this table.
# A plain line's handler: an awaitable when the message waits for its id.
MessageHandler = Callable[[Any, str], Awaitable[Any] | None]


def message_handler(handler: MessageHandler,
                    table: CommandTable = COMMANDS) -> MessageHandler:
    """Declare what a plain (non-command) line does."""
    table.on_message = handler
    return handler
