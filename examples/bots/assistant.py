"""An assistant bot: forwards mentions to an OpenAI-compatible chat-completions endpoint.

    ASSISTANT_API_KEY=... CHATD_TOKEN=... python examples/bots/assistant.py \
        --user helper --room general --api-url http://127.0.0.1:8080/v1 --model local

Any server that speaks the chat-completions protocol works: a local model
server, a gateway, a hosted API. The bot only answers in rooms that opted
in: a room's owner or admin says ``!assistant on`` (``off`` to stop); the
bot never reads a room that did not. There, a message that mentions it
(``helper: what is a mutex?``) is sent, with the room's last few lines as
context, to ``{api-url}/chat/completions``; the answer comes back in the room.
Direct messages are answered for anyone.

Limits: per room ``--room-rate`` questions a minute and per person
``--user-rate`` (token buckets on the bot's clock), one question at a time
per room, ``--timeout`` seconds per HTTP call, and at most ``MAX_LINES``
lines of answer. The HTTP call runs in a thread, so the bot keeps serving
other rooms meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chatd.client.sdk import Bot, ClientError, Clock, Message, SystemClock, cli

MAX_LINES = 6
MAX_LINE = 400  # characters per line of answer; chatd's line limit is in bytes, 4096
CONTEXT = 8  # lines of the room sent along with a question
SYSTEM = ("You are a helpful assistant in a chat room. Answer briefly, in plain text, "
          "in a few short lines.")
KEY_ENV = "ASSISTANT_API_KEY"


@dataclass
class Bucket:
    """A token bucket: ``rate`` tokens a minute, at most ``burst``."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate / 60)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Endpoint:
    """Where the model is: a base URL (``.../v1``), a key, a model name."""

    url: str
    key: str | None = None
    model: str = "default"
    timeout: float = 60.0

    def complete(self, messages: list[dict[str, str]]) -> str:
        """One chat completion (blocking: run it in a thread)."""
        body = json.dumps({"model": self.model, "messages": messages}).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + "/chat/completions", data=body, method="POST",
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {self.key}"} if self.key else {})})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            answer = json.load(response)
        return str(answer["choices"][0]["message"]["content"])


@dataclass
class Limits:
    room_rate: float = 6.0  # questions a minute per room
    user_rate: float = 3.0  # questions a minute per person
    burst: float = 3.0


@dataclass
class Assistant:
    """The assistant's rooms, limits and handlers."""

    bot: Bot
    endpoint: Endpoint
    limits: Limits = field(default_factory=Limits)
    clock: Clock = field(default_factory=SystemClock)
    rooms: set[str] = field(default_factory=set)  # the rooms that opted in
    _context: dict[str, deque[str]] = field(default_factory=dict)
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _busy: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bot.command("assistant")(self.toggle)
        self.bot.on_message(self.remember)
        self.bot.on_mention(self.asked)

    async def toggle(self, message: Message, args: str) -> None:
        """``!assistant on|off``: a room's owner or admin opts the room in or out."""
        room, choice = message.room, args.strip().lower()
        if room is None or choice not in ("on", "off"):
            await self.bot.reply(message, "usage (in a room): !assistant on|off")
            return
        if not await self._may_manage(room, message.sender):
            await self.bot.reply(message, "only the room's owner or an admin can do that.")
            return
        if choice == "on":
            self.rooms.add(room)
        else:
            self.rooms.discard(room)
            self._context.pop(room, None)
        await self.bot.say(room, f"the assistant is now {choice} in #{room}.")

    async def _may_manage(self, room: str, user: str) -> bool:
        try:
            members = await self.bot.members(room)
        except ClientError:
            return False
        roles = {str(m["user"]).casefold(): m.get("role") for m in members}
        return roles.get(user.casefold()) in ("owner", "admin")

    async def remember(self, message: Message) -> None:
        if message.room in self.rooms and not message.encrypted:
            lines = self._context.setdefault(message.room, deque(maxlen=CONTEXT))
            lines.append(f"{message.sender}: {message.text}")

    async def asked(self, message: Message) -> None:
        if message.encrypted or message.text.startswith(self.bot.prefix):
            return
        place = message.room or f"@{message.sender}"
        if message.room is not None and message.room not in self.rooms:
            return  # this room did not opt in: the bot keeps quiet
        if place in self._busy:
            await self.bot.reply(message, f"{message.sender}: one moment, still on the last one.")
            return
        if not self._allowed(place, message.sender):
            await self.bot.reply(message, f"{message.sender}: too many questions; try again "
                                          "in a minute.")
            return
        self._busy.add(place)
        self.bot.spawn(self._answer(message, place))

    def _allowed(self, place: str, user: str) -> bool:
        now, limits = self.clock.time(), self.limits
        room = self._buckets.setdefault(place, Bucket(limits.room_rate, limits.burst))
        person = self._buckets.setdefault(f"user:{user.casefold()}",
                                          Bucket(limits.user_rate, limits.burst))
        return room.take(now) and person.take(now)

    async def _answer(self, message: Message, place: str) -> None:
        try:
            text = await asyncio.to_thread(self.endpoint.complete, self._prompt(message))
        except (urllib.error.URLError, TimeoutError, OSError, KeyError, IndexError,
                ValueError) as exc:
            text = f"the assistant is unavailable ({_reason(exc)})."
        finally:
            self._busy.discard(place)
        for line in _lines(text):
            await self.bot.reply(message, line)

    def _prompt(self, message: Message) -> list[dict[str, str]]:
        context = list(self._context.get(message.room or "", ()))
        if context and context[-1] == f"{message.sender}: {message.text}":
            context.pop()  # the question itself goes last, on its own
        prompt: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
        if context:
            prompt.append({"role": "user", "content": "The conversation so far:\n"
                           + "\n".join(context)})
        prompt.append({"role": "user", "content": f"{message.sender} asks: {message.text}"})
        return prompt


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, KeyError | IndexError | ValueError):
        return "an answer it could not read"
    return type(exc).__name__ if not str(exc) else str(exc)[:80]


def _lines(text: str) -> list[str]:
    """The answer as at most MAX_LINES chat lines of at most MAX_LINE characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["(no answer)"]
    cut = [line[:MAX_LINE] + ("…" if len(line) > MAX_LINE else "") for line in lines]
    return [*cut[:MAX_LINES - 1], "…"] if len(cut) > MAX_LINES else cut


def main(argv: list[str] | None = None) -> None:
    made = cli.parser(__doc__ or "")
    made.add_argument("--api-url", required=True, help="the endpoint's base URL, e.g. .../v1")
    made.add_argument("--model", default="default")
    made.add_argument("--opt-in", action="append", default=[], help="a room opted in at start")
    made.add_argument("--room-rate", type=float, default=Limits.room_rate)
    made.add_argument("--user-rate", type=float, default=Limits.user_rate)
    made.add_argument("--timeout", type=float, default=60.0)
    args = cli.parse(made, argv)
    bot = cli.bot_from(args)
    Assistant(bot, Endpoint(args.api_url, os.environ.get(KEY_ENV), args.model, args.timeout),
              Limits(args.room_rate, args.user_rate), rooms=set(args.opt_in))
    cli.run(bot)


if __name__ == "__main__":
    main()
