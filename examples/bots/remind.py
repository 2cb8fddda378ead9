"""A reminder bot: ``!remind 10m stretch your legs``.

    CHATD_TOKEN=... python examples/bots/remind.py --user remindbot --room general

- ``!remind <duration> <text>`` (durations as chatd writes them: ``90s``,
  ``10m``, ``1h30m``, ``2d``; at most 30 days): the bot says
  ``NAME: reminder: TEXT`` where it was asked (a room, or a direct message)
  when the time comes.
- ``!reminders``: how many of yours are pending.

Reminders live in memory: a restart of the bot forgets them. Each person may
have ``MAX_PER_USER`` pending. The bot waits on a :class:`Clock`, so a test
moves a :class:`ManualClock` instead of waiting ten minutes.
"""

from __future__ import annotations

import re
from collections import Counter

from chatd.client.sdk import Bot, Clock, Message, SystemClock, cli

MAX_SECONDS = 30 * 86400
MAX_PER_USER = 20
# How many times a due reminder is tried, each once the bot is connected again.
ATTEMPTS = 5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+[smhd])+")
USAGE = "usage: !remind <duration> <text>, for example !remind 10m stretch"


def parse_duration(word: str) -> int | None:
    """Seconds in ``10m`` or ``1h30m``; None when it is not a duration."""
    if not _DURATION.fullmatch(word.lower()):
        return None
    return sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([smhd])", word.lower()))


class Reminders:
    """The reminder bot's state and handlers."""

    def __init__(self, bot: Bot, clock: Clock | None = None) -> None:
        self.bot = bot
        self.clock = clock or SystemClock()
        self.pending: Counter[str] = Counter()
        bot.command("remind")(self.remind)
        bot.command("reminders")(self.count)

    async def remind(self, message: Message, args: str) -> None:
        when, _, text = args.partition(" ")
        seconds = parse_duration(when)
        if seconds is None or not text.strip():
            await self.bot.reply(message, USAGE)
            return
        if not 0 < seconds <= MAX_SECONDS:
            await self.bot.reply(message, "a reminder is for 1 second to 30 days from now.")
            return
        who = message.sender.casefold()
        if self.pending[who] >= MAX_PER_USER:
            await self.bot.reply(message, f"you have {MAX_PER_USER} reminders pending already.")
            return
        self.pending[who] += 1
        self.bot.spawn(self._later(message, seconds, text.strip()))
        await self.bot.reply(message, f"{message.sender}: I will remind you in {when}.")

    async def _later(self, message: Message, seconds: int, text: str) -> None:
        try:
            await self.clock.sleep(seconds)
            await self._tell(message, f"{message.sender}: reminder: {text}")
        finally:
            self.pending[message.sender.casefold()] -= 1

    async def _tell(self, message: Message, text: str) -> None:
        """Say it once the bot is connected: a reminder that comes due while the bot
        reconnects waits for it (a few tries, should the connection drop again)."""
        for _ in range(ATTEMPTS):
            await self.bot.connected.wait()
            try:
                await self.bot.reply(message, text)
                return
            except ConnectionError:
                continue

    async def count(self, message: Message, args: str) -> None:
        pending = self.pending[message.sender.casefold()]
        await self.bot.reply(message, f"{message.sender}: {pending} reminder"
                                      f"{'s' if pending != 1 else ''} pending.")


def main(argv: list[str] | None = None) -> None:
    args = cli.parse(cli.parser(__doc__ or ""), argv)
    bot = cli.bot_from(args)
    Reminders(bot)
    cli.run(bot)


if __name__ == "__main__":
    main()
