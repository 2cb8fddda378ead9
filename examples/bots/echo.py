"""The smallest useful bot: answers ``!ping`` and echoes what it is told.

    CHATD_TOKEN=... python examples/bots/echo.py --user echobot --room general

- ``!ping`` in a room it is in: ``pong`` (with the round trip to the server).
- a message that mentions it (``echobot: hello``) or a direct message: the
  text comes back, without the mention.
- an invitation: it joins the room.
"""

from __future__ import annotations

import re
import time

from chatd.client.sdk import Bot, Invite, Message, cli


def install(bot: Bot) -> None:
    """Register the echo bot's handlers on ``bot``."""

    @bot.command("ping")
    async def ping(message: Message, args: str) -> None:
        started = time.perf_counter()
        await bot.request("/ping")
        await bot.reply(message, f"pong ({(time.perf_counter() - started) * 1000:.0f} ms)")

    @bot.on_mention
    async def echo(message: Message) -> None:
        if message.encrypted or message.text.startswith(bot.prefix):
            return  # an envelope it cannot read; a command this bot does not know
        text = without_mention(message.text, bot.user)
        if text:
            await bot.reply(message, text)

    @bot.on_invite
    async def accept(invite: Invite) -> None:
        await bot.join(invite.room)


def without_mention(text: str, name: str) -> str:
    """``echobot: hi`` and ``@echobot hi`` become ``hi``."""
    return re.sub(rf"^\s*@?{re.escape(name)}\b[:,]?\s*", "", text, flags=re.IGNORECASE).strip()


def main(argv: list[str] | None = None) -> None:
    args = cli.parse(cli.parser(__doc__ or ""), argv)
    bot = cli.bot_from(args)
    install(bot)
    cli.run(bot)


if __name__ == "__main__":
    main()
