"""A room-moderation helper: mutes flooders for a while, answers ``!rules``.

    CHATD_TOKEN=... python examples/bots/moderate.py --user modbot --room general \
        --rules "Be kind. No spam. English please." --limit 6 --window 10 --mute 5m

To mute, the bot must be an admin of the room (``/promote modbot general``)
and its token must grant the ``moderate`` scope: a token has only
``read,post`` unless asked for more, so make it with
``/bot create modbot read,post,moderate`` (or, for a bot made already, its
owner makes it another: ``/bot token modbot read,post,moderate``; the bot
itself cannot, with no password and a token without ``admin``). Without
either, it says in
the room that it cannot mute (``not-permitted`` or ``scope``).
When one person sends more than ``limit`` messages within ``window`` seconds
in a room, the bot mutes them there for ``mute`` and says why. ``!rules``
answers with the room's rules (one text for every room, or ``--rules`` per
room as ``room=text``). The counting waits on a :class:`Clock`, so tests
control time.
"""

from __future__ import annotations

import argparse
import re
from collections import deque
from dataclasses import dataclass

from chatd.client.sdk import Bot, ClientError, Clock, Message, SystemClock, cli

# A chatd duration (90s, 5m, 1h30m, 7d), as /mute takes it.
_DURATION = re.compile(r"(?:\d+[smhd])+")


def mute_duration(word: str) -> str:
    """``--mute`` as /mute takes it: a chatd duration, or a bare number of seconds
    (as ``--window`` is) written with its ``s``. Checked at the start: /mute would
    refuse anything else (``bad-arguments``) only at the first flood."""
    written = word.strip().lower()
    if written.isdigit():
        written += "s"
    if not _DURATION.fullmatch(written) or not any(c in "123456789" for c in written):
        raise argparse.ArgumentTypeError(
            f"a duration like 90s, 5m or 1h30m (a bare number is seconds), not {word!r}")
    return written


@dataclass(frozen=True)
class Policy:
    limit: int = 6  # messages ...
    window: float = 10.0  # ... within this many seconds; one more is a flood
    mute: str = "5m"  # how long a flooder is muted (a chatd duration)
    rules: str = "Be kind, stay on topic, no flooding."


class Moderator:
    """Counts each person's recent messages per room; mutes past the limit."""

    def __init__(self, bot: Bot, policy: Policy | None = None, clock: Clock | None = None,
                 room_rules: dict[str, str] | None = None) -> None:
        self.bot = bot
        self.policy = policy or Policy()
        self.clock = clock or SystemClock()
        self.room_rules = room_rules or {}
        self._recent: dict[tuple[str, str], deque[float]] = {}
        bot.on_message(self.watch)
        bot.command("rules")(self.rules)

    async def watch(self, message: Message) -> None:
        if message.room is None or message.replayed:
            return
        key = (message.room, message.sender.casefold())
        now = self.clock.time()
        times = self._recent.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self.policy.window:
            times.popleft()
        if len(times) > self.policy.limit:
            times.clear()
            await self._mute(message.room, message.sender)

    async def _mute(self, room: str, user: str) -> None:
        try:
            await self.bot.request(f"/mute {user} {room} {self.policy.mute}")
        except ClientError as exc:  # not an admin here, or they are muted already
            await self.bot.say(room, f"{user} is flooding, but I cannot mute them ({exc.code}).")
            return
        await self.bot.say(room, f"{user} was muted for {self.policy.mute}: more than "
                                 f"{self.policy.limit} messages in {self.policy.window:g} s.")

    async def rules(self, message: Message, args: str) -> None:
        text = self.room_rules.get(message.room or "", self.policy.rules)
        await self.bot.reply(message, f"rules of #{message.room}: {text}" if message.room
                             else text)


def main(argv: list[str] | None = None) -> None:
    made = cli.parser(__doc__ or "")
    made.add_argument("--rules", action="append", default=[],
                      help="the rules (ROOM=TEXT for one room's)")
    made.add_argument("--limit", type=int, default=Policy.limit)
    made.add_argument("--window", type=float, default=Policy.window)
    made.add_argument("--mute", type=mute_duration, default=Policy.mute,
                      help="how long a flooder is muted: 90s, 5m, 1h30m, or seconds")
    args = cli.parse(made, argv)
    bot = cli.bot_from(args)
    everywhere, per_room = _rules(args)
    Moderator(bot, Policy(args.limit, args.window, args.mute, everywhere), room_rules=per_room)
    cli.run(bot)


def _rules(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    everywhere, per_room = Policy.rules, {}
    for given in args.rules:
        room, sep, text = given.partition("=")
        if sep and room and " " not in room:
            per_room[room.lstrip("#").lower()] = text
        else:
            everywhere = given
    return everywhere, per_room


if __name__ == "__main__":
    main()
