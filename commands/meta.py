"""The connection itself: help, ping, format, set."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from chatd.domain.scopes import Scope
from chatd.errors import ChatError, Code
from chatd.protocol.context import Context
from chatd.protocol.dispatch import QUOTE, unknown_command
from chatd.protocol.params import Choice, Text, Word
from chatd.protocol.registry import Command, Need, command
from chatd.protocol.results import Ok, ok
from chatd.protocol.schema import SCHEMA_VERSION, describe, schema
from chatd.protocol.style import ACCOUNT_SETTINGS, change

GROUP = "connection"
GROUP_ORDER = ("account", "rooms", "messages", "files", "moderation", "crypto", "bots",
               "connection", "admin")


@command("help", Word("command", optional=True), need=Need.ANY, group=GROUP,
         scope=Scope.READ, errors=(Code.UNKNOWN_COMMAND,))
def help_(ctx: Context, command: str | None) -> Ok:
    """List the commands, or show one command's usage and what it needs."""
    table = ctx.services.commands
    if command is None:
        return _overview(ctx)
    name = command.lower().lstrip("/")
    cmd = table.get(name)
    if cmd is None:
        raise unknown_command(table, name)
    also = [f"  Also: {_aliases(cmd)}"] if cmd.aliases else []
    ctx.text([f"  {cmd.usage}   {cmd.summary}", f"  Needs: {cmd.needs_text}", *also])
    return ok(name=cmd.name, usage=cmd.usage, help=cmd.summary, needs=cmd.needs_text,
              aliases=list(cmd.aliases))


@command("schema", Word("command", optional=True), need=Need.ANY, group=GROUP,
         scope=Scope.READ, errors=(Code.UNKNOWN_COMMAND,))
def schema_(ctx: Context, command: str | None) -> Ok:
    """Describe every command (or one) for programs: parameters, types, limits, errors."""
    table = ctx.services.commands
    if command is None:
        described = schema(table)
        ctx.text([f"  {c['usage']}   scope {c['scope']}; errors: {', '.join(c['errors'])}"
                  for c in described["commands"]])
        return ok(f"{len(described['commands'])} commands; in JSON (/format json) each "
                  "comes with its parameters, types and limits.", **described)
    cmd = table.get(command.lower().lstrip("/"))
    if cmd is None:
        raise unknown_command(table, command.lower().lstrip("/"))
    entry = describe(cmd)
    ctx.text([f"  {entry['usage']}", *(f"  {p['name']}: {_param_line(p)}"
                                       for p in entry["params"]),
              f"  scope: {entry['scope']}; errors: {', '.join(entry['errors'])}"])
    return ok(cmd.summary, version=SCHEMA_VERSION, schema=entry)


def _param_line(param: dict[str, Any]) -> str:
    """One parameter of /schema <command> in text mode: its type and limits."""
    limits = [f"{key} {value}" for key, value in param.items()
              if key not in ("name", "type", "optional", "rest")]
    words = [param["type"], "optional" if param["optional"] else "required", *limits]
    return ", ".join(str(w) for w in words)


def _aliases(cmd: Command) -> str:
    """``/part`` for /leave: the other names a command answers to."""
    return ", ".join(f"/{alias}" for alias in cmd.aliases)


def _overview(ctx: Context) -> Ok:
    commands = ctx.services.commands.all()
    groups: dict[str, list[Command]] = {}
    for cmd in commands:
        groups.setdefault(cmd.group, []).append(cmd)
    order = sorted(groups, key=lambda g: GROUP_ORDER.index(g) if g in GROUP_ORDER else 99)
    lines = []
    for group in order:
        lines.append(f"{group}:")
        for cmd in groups[group]:
            also = f" Also {_aliases(cmd)}." if cmd.aliases else ""
            lines += help_rows(cmd.usage, cmd.summary + also)
    # One line of the terminal: a wrapped note's end, alone at the margin, read as
    # a line of its own.
    lines += textwrap.wrap("Plain lines go to your current room; start one with // to send "
                           "a leading /.", HELP_WIDTH)
    ctx.text(lines)
    return ok("/help <command> shows one command.",
              commands=[{"name": c.name, "usage": c.usage, "help": c.summary, "group": c.group,
                         "aliases": list(c.aliases)} for c in commands])


# The overview fits a terminal of 80 columns: usages up to USAGE_COLUMN wide
# share their line with the summary; longer ones (and each alternative of
# "a  |  b") stand on lines of their own, the summary below them.
HELP_WIDTH = 79
USAGE_COLUMN = 30
_SUMMARY_INDENT = " " * (2 + USAGE_COLUMN + 2)
_ALTERNATIVES = re.compile(r" {2}\| {2}")


def help_rows(usage: str, summary: str) -> list[str]:
    """One command's lines in the /help overview."""
    summary_lines = textwrap.wrap(summary, HELP_WIDTH - len(_SUMMARY_INDENT)) or [""]
    if len(usage) <= USAGE_COLUMN:
        first = f"  {usage.ljust(USAGE_COLUMN)}  {summary_lines[0]}"
        return [first, *(_SUMMARY_INDENT + line for line in summary_lines[1:])]
    usage_lines = [line for part in _ALTERNATIVES.split(usage)
                   for line in textwrap.wrap(part, HELP_WIDTH - 2, subsequent_indent="    ",
                                             break_long_words=False)]
    return [*(f"  {line}" for line in usage_lines),
            *(_SUMMARY_INDENT + line for line in summary_lines)]


QUOTE_USAGE = "/quote <line>"


# The line is required (usage, /schema); declared optional only so that a bare
# /quote reaches the handler, which says what /quote is for.
@command(QUOTE, Text("line", optional=True, default=""), need=Need.ANY, group=GROUP,
         scope=Scope.READ, usage=QUOTE_USAGE, described=(Text("line"),),
         errors=tuple(Code))  # whatever the command it runs answers
def quote(ctx: Context, line: str) -> Ok:
    """Run the rest of the line as a command, as IRC's /quote: /quote join general."""
    # The dispatcher runs "/quote <line>" as the line itself; only a bare /quote (or
    # one of a message, /quote //text) is left.
    raise ChatError(Code.BAD_ARGUMENTS, "missing <line>, a command to run: /quote join "
                                        "general is /join general.")


@command("ping", need=Need.ANY, group=GROUP, scope=Scope.READ)
def ping(ctx: Context) -> Ok:
    """Check that the server answers."""
    return ok("pong", time=ctx.services.clock.time())


@command("format", Choice("format", choices=("text", "json")), need=Need.ANY, group=GROUP,
         scope=Scope.READ)
async def format_(ctx: Context, format: str) -> Ok:
    """Choose the output format: text for people, json for programs."""
    return await _apply(ctx, "format", format)


@command("set", Choice("setting", choices=("format", "color", "timestamps", "theme"),
                       aliases=(("colour", "color"),)),
         Word("value"), need=Need.ANY, group=GROUP, scope=Scope.READ)
async def set_(ctx: Context, setting: str, value: str) -> Ok:
    """Change a setting of your output: format, color, timestamps or theme."""
    return await _apply(ctx, setting, value)


async def _apply(ctx: Context, key: str, value: str) -> Ok:
    stored = change(ctx.session, key, value)
    user = ctx.session.user
    # The format belongs to the connection (a person and their bot share an
    # account); colours, timestamps and theme follow the account.
    if user is not None and key in ACCOUNT_SETTINGS:
        await ctx.services.accounts.save_settings(user, stored)
    if key == "format":
        # What a program learns as it asks for JSON: the longest line it may send
        # (the banner says it too, but in text before this ok).
        return ok(f"{key} is now {value.lower()}.", setting=key, value=value.lower(),
                  max_line=ctx.services.config.listen.max_line)
    return ok(f"{key} is now {value.lower()}.", setting=key, value=value.lower())
