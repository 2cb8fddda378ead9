"""Typed command parameters: how each argument is parsed and shown in usage.

Parsing is left to right over whitespace-separated words. An optional
parameter may *decline* a word (for example ``[room]`` declines ``10m`` when a
room of that name does not exist), which leaves the word for the next
parameter; this is how ``/ban bob 10m spam`` and ``/ban bob #dev 10m`` both work.
A command's flags (``--resume``) are the exception: they may stand anywhere among
the words before a rest-of-line parameter's text, and are taken out where they stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatd.domain import names, scopes
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import Accounts, User
    from chatd.domain.moderation import Moderation
    from chatd.domain.room import Room
    from chatd.domain.rooms import Rooms


class _Lookups(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def rooms(self) -> Rooms: ...

    @property
    def moderation(self) -> Moderation: ...


class _Where(Protocol):
    @property
    def current_room(self) -> Room | None: ...

    @property
    def user(self) -> User | None: ...


class Context(Protocol):
    """What parsing needs of a command's invocation: the settings, the accounts
    and rooms to resolve names against, the session's current room (the
    default room) and the command's name (said in a refusal).
    A protocol, so that the invocation context can import this module and not
    the other way round."""

    @property
    def services(self) -> _Lookups: ...

    @property
    def session(self) -> _Where: ...

    @property
    def command(self) -> str: ...


class Decline(Exception):
    """An optional parameter does not take this word; try the next one."""


def expected(choices: Sequence[str], word: str) -> str:
    """The sentence refusing ``word`` where one of ``choices`` must stand."""
    *most, last = choices
    listed = f"{', '.join(most)} or {last}" if most else last
    return f"expected {listed}, not \"{word}\"."


@dataclass(frozen=True, slots=True)
class Param:
    """A word-valued parameter (the base: any non-empty word)."""

    name: str
    optional: bool = False
    default: Any = None
    rest: bool = False  # takes the rest of the line
    # Taken only when the first parameter (a sub-command's choice) is one of these;
    # empty: always. A sub-command's own word (/bot revoke <bot> <token-name>) so is
    # never read as a surplus word of the others, whose errors stay their own.
    sub_commands: tuple[str, ...] = ()
    # Not taken when the first parameter is one of these words (any case): the
    # /ratelimit burst after "off", so that "/ratelimit off 7" reads 7 as the room.
    not_after: tuple[str, ...] = ()
    # The word in this place is taken as itself even when it is written as one of
    # the command's flags: it names a form of the command (/login --resume
    # <resume-token>), which the flag anywhere else does not.
    names_form: bool = False

    # The parameter's type as /schema names it.
    kind = "word"

    @property
    def spoken(self) -> str:
        """The name a person reads in a usage and a refusal: ``last-id``, as the
        commands' usages write it (``name`` stays the handler's, and /schema's)."""
        return self.name.replace("_", "-")

    @property
    def usage(self) -> str:
        # As usages write a name of two words (<token-name>), whatever the handler calls it.
        return f"[{self.spoken}]" if self.optional else f"<{self.spoken}>"

    def describe(self) -> dict[str, Any]:
        """What /schema says of this parameter: name, type, optionality and limits."""
        described: dict[str, Any] = {"name": self.name, "type": self.kind,
                                     "optional": self.optional, "rest": self.rest}
        if self.sub_commands:
            described["sub_commands"] = list(self.sub_commands)
        if self.not_after:
            described["not_after"] = list(self.not_after)
        return described | self.limits()

    def limits(self) -> dict[str, Any]:
        """The type's own limits (ranges, choices, ...) for /schema."""
        return {}

    def errors(self) -> tuple[Code, ...]:
        """The codes parsing this parameter may raise besides ``bad-arguments``."""
        return ()

    def takes(self) -> str | None:
        """What an optional parameter that may pass a word over takes, in words
        ("a duration (like ...)"): a word several of them passed is named as neither."""
        return None

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        return word

    def absent(self, ctx: Context) -> Any:
        return self.default

    def refusal(self, ctx: Context, word: str) -> ChatError | None:
        """Why this parameter, having declined ``word`` that nothing else took,
        does not take it: the error a user should see (None: it says nothing)."""
        try:
            self.convert(ctx, word, False)
        except ChatError as exc:
            return exc
        except Decline:
            return None
        return None  # pragma: no cover - a parameter that declined takes it now


@dataclass(frozen=True, slots=True)
class Word(Param):
    pass


@dataclass(frozen=True, slots=True)
class Text(Param):
    """The rest of the line, spaces included."""

    kind = "text"
    rest: bool = True


@dataclass(frozen=True, slots=True)
class Secret(Param):
    """A password or a token: one word. An optional one leaves a ``--flag`` to the
    parameters after it, so ``/login alice pw --resume`` is no token named "--resume"."""

    kind = "secret"

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        if self.optional and word.startswith(names.OPTION_PREFIX):
            raise Decline
        return word


@dataclass(frozen=True, slots=True)
class Flag(Param):
    """``--name``, present or not (True or False)."""

    kind = "flag"
    optional: bool = True
    default: Any = False

    @property
    def spelled(self) -> str:
        """The flag as it is written: ``--name``."""
        return names.OPTION_PREFIX + self.name

    @property
    def usage(self) -> str:
        return f"[{self.spelled}]"

    def written(self, word: str) -> bool:
        """Whether ``word`` is this flag (``--name``, in any case)."""
        return word.lower() == self.spelled

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        if self.written(word):
            return True
        # A word that is no flag at all passes by: the optional parameters before the
        # flag that passed it too say what it is not (/token create x nosuchscope:
        # neither a scope nor a lifetime), or it is one too many.
        if more_follow or not word.startswith(names.OPTION_PREFIX):
            raise Decline
        raise ChatError(Code.BAD_ARGUMENTS, expected([self.spelled], word))


@dataclass(frozen=True, slots=True)
class Scopes(Param):
    """What a token may do: ``read,post`` (see chatd.domain.scopes), or ``all``.
    An optional one takes only a word made of scope names."""

    kind = "scopes"

    def takes(self) -> str:
        return f"a scope ({', '.join(scope.value for scope in scopes.Scope)}, all)"

    def limits(self) -> dict[str, Any]:
        return {"choices": [scope.value for scope in scopes.Scope], "separator": scopes.SEPARATOR}

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        # A word with the separator is meant as scopes (read,bogus): parsing it says
        # which is unknown, rather than another parameter refusing it.
        if self.optional and not scopes.looks_like_scopes(word) \
                and scopes.SEPARATOR not in word:
            raise Decline
        return scopes.parse_scopes(word)


@dataclass(frozen=True, slots=True)
class Int(Param):
    kind = "integer"
    low: int = 1
    high: int = 1_000_000

    def limits(self) -> dict[str, Any]:
        return {"min": self.low, "max": self.high}

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        if names.is_number(word) and self.low <= int(word) <= self.high:
            return int(word)
        if self.optional:
            raise Decline
        raise self.refusal(ctx, word)

    def refusal(self, ctx: Context, word: str) -> ChatError:
        # Ids go up to 2**62: "from 1 to 4611686018427387904" would tell nobody anything.
        bounds = f"from {self.low} to {self.high:,}" if self.high < 10**9 else \
            f"of {self.low} or more"
        return ChatError(Code.BAD_ARGUMENTS, f"{self.spoken} must be a whole number {bounds}, "
                                             f"not \"{word}\".")


@dataclass(frozen=True, slots=True)
class Number(Param):
    """A decimal number from ``low`` to ``high``, in ASCII (``names.is_decimal``)."""

    kind = "number"
    low: float = 0.0
    high: float = 1e9

    def limits(self) -> dict[str, Any]:
        return {"min": self.low, "max": self.high}

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        # The decimal rule of names, not float()'s, which takes "٣" and "1_0" that
        # every whole-number parameter refuses.
        if not names.is_decimal(word):
            if self.optional:
                raise Decline
            raise self.refusal(ctx, word)
        value = float(word)
        if not self.low <= value <= self.high:
            raise ChatError(Code.BAD_ARGUMENTS, f"{self.spoken} must be from "
                            f"{_readable(self.low)} to {_readable(self.high)}.")
        return value

    def refusal(self, ctx: Context, word: str) -> ChatError:
        return ChatError(Code.BAD_ARGUMENTS, f"{self.spoken} must be a number, not \"{word}\".")


def _readable(number: float) -> str:
    """A bound as a person reads it: ``1,000,000``, not ``1e+06``; ``0.5``."""
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"


@dataclass(frozen=True, slots=True)
class Choice(Param):
    kind = "choice"
    choices: tuple[str, ...] = ()
    # Other spellings taken for a choice, as (spelling, choice): "colour" for "color".
    aliases: tuple[tuple[str, str], ...] = ()

    def limits(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}

    @property
    def usage(self) -> str:
        inner = "|".join(self.choices)
        return f"[{inner}]" if self.optional else f"<{inner}>"

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        lowered = word.lower()
        if lowered in self.choices:
            return lowered
        for spelling, choice in self.aliases:
            if lowered == spelling:
                return choice
        if self.optional and more_follow:
            raise Decline
        raise self.refusal(ctx, word)

    def refusal(self, ctx: Context, word: str) -> ChatError:
        return ChatError(Code.BAD_ARGUMENTS, expected(self.choices, word))


@dataclass(frozen=True, slots=True)
class Duration(Param):
    """A duration like ``30s``, ``10m``, ``1h30m`` or ``7d``, in seconds."""

    kind = "duration"
    # What it is, in the sentence naming a word that is neither this nor the
    # parameter beside it ("a lifetime" for a token's ttl).
    meaning: str = "a duration"

    def takes(self) -> str:
        return f"{self.meaning} (like 30s, 10m, 2h, 7d)"

    def limits(self) -> dict[str, Any]:
        return {"min": 1, "max": names.MAX_DURATION, "unit": "seconds"}

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        if names.looks_like_duration(word):
            try:
                return names.parse_duration(word)
            except ValueError as exc:  # well-formed but out of range (0s, 20y)
                raise ChatError(Code.BAD_ARGUMENTS, f"{self.name}: {exc}") from None
        if names.meant_as_duration(word):
            # A mistyped duration (1x, 10min) passed on would be read as a room that
            # does not exist, or as the reason of a ban that then lasts for ever.
            raise ChatError(Code.BAD_ARGUMENTS, f"{self.name}: {names.not_a_duration(word)}")
        if self.optional:
            raise Decline
        raise self.refusal(ctx, word)

    def refusal(self, ctx: Context, word: str) -> ChatError:
        return ChatError(Code.BAD_ARGUMENTS,
                         f"{self.name} is a duration like 30s, 10m, 2h or 7d, not \"{word}\".")


@dataclass(frozen=True, slots=True)
class UserRef(Param):
    """An existing account, by case-insensitive name. The name of an IRC guest
    online is refused as such (``not-permitted``): the guest is visibly in rooms
    and /who, so "no such user" would be untrue."""

    kind = "user"

    def errors(self) -> tuple[Code, ...]:
        return (Code.NO_SUCH_USER, Code.NOT_PERMITTED)

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        return ctx.services.accounts.account(word, f"/{ctx.command} takes accounts only.")


@dataclass(frozen=True, slots=True)
class Recipient(UserRef):
    """The account a direct message goes to (an IRC guest's name is refused saying
    how guests are reached)."""

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        room = ctx.services.rooms.find(word) if word.startswith("#") else None
        if room is not None:
            # IRC's habit (PRIVMSG #room): say where a room's messages go.
            raise ChatError(Code.NO_SUCH_USER, f"#{room.name} is a room, not a user: "
                            f"/say {room.name} <text> posts to it.")
        return ctx.services.accounts.recipient(word)


@dataclass(frozen=True, slots=True)
class UserOrGuest(UserRef):
    """An account, or an IRC guest online (a user without one), by name: for the
    commands that act on guests too, as IRC's do (/whois, /kick, /ban ...). With
    ``banned``, also the nick of a guest gone since whose ban a room still keeps
    (/unban, as IRC's ``MODE -b``): then the name itself."""

    banned: bool = False

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        accounts = ctx.services.accounts
        user = accounts.find(word) or accounts.guest(word)
        if user is not None:
            return user
        if self.banned and ctx.services.moderation.guest_banned(word):
            return word
        return accounts.require(word)


@dataclass(frozen=True, slots=True)
class RoomRef(Param):
    """A live room by name or id. Optional: defaults to the current room.

    When words follow, an optional room only takes a word that starts with
    ``#`` or names an existing room, so ``/topic Hello all`` sets a topic.
    ``first_word``: the first word, when there is one, is always the room
    (``/leave typo bye`` is a missing room, never a leave of the current one).
    """

    kind = "room"
    current_default: bool = True
    first_word: bool = False
    # A page or count follows (/who [room] [page]): a lone number is that, and two
    # numbers are a room's id and then it (/who 7 2), as /audit 7 50 reads them.
    id_before_number: bool = False

    @property
    def usage(self) -> str:
        return f"[{self.name}]" if self.optional else f"<{self.name}>"

    def limits(self) -> dict[str, Any]:
        # Absent, an optional room is the session's current room.
        if not (self.optional and self.current_default):
            return {}
        # first_word: a client may not leave the room out when words follow it.
        # id_before_number: a client names a room by its id with the page after it.
        return {"default": "current-room", **({"first_word": True} if self.first_word else {}),
                **({"id_before_number": True} if self.id_before_number else {})}

    def errors(self) -> tuple[Code, ...]:
        if self.optional and self.current_default:
            return (Code.NO_SUCH_ROOM, Code.NO_ROOM)
        return (Code.NO_SUCH_ROOM,)

    def convert(self, ctx: Context, word: str, more_follow: bool) -> Any:
        rooms = ctx.services.rooms
        if self.optional and more_follow and not word.startswith("#") and not self.first_word:
            room = None if names.is_number(word) else rooms.find(word)
            if room is None:
                raise Decline
            return room
        return rooms.require_as(ctx.session.user, word)

    def refusal(self, ctx: Context, word: str) -> ChatError | None:
        # A number it passed over is never a room here (see convert), whatever the
        # ids: "/who 0" is a page out of range, not a room with id 0, as "/who 7"
        # is page 7 even when a room has id 7. What took numbers says why.
        if names.is_number(word):
            return None
        return Param.refusal(self, ctx, word)

    def absent(self, ctx: Context) -> Any:
        if not self.current_default:
            return None
        room = ctx.session.current_room
        if room is None:
            raise no_room(ctx)
        return room


# The most of a user's rooms the no-room error names.
NO_ROOM_LISTED = 3


def no_room(ctx: Context) -> ChatError:
    """The one error of a line or command that needs a current room when there is none:
    true whether the user is in rooms (then /switch to one) or in none (/join, /create)."""
    user = ctx.session.user
    rooms = ctx.services.rooms.of_user(user) if user is not None else []
    if not rooms:
        return ChatError(Code.NO_ROOM, "you have no current room, and you are in no room: "
                                       "/join <room> or /create <room> first.")
    listed = ", ".join(f"#{room.name}" for room in rooms[:NO_ROOM_LISTED])
    if len(rooms) > NO_ROOM_LISTED:
        listed += f" and {len(rooms) - NO_ROOM_LISTED} more"
    return ChatError(Code.NO_ROOM, f"you have no current room: /switch <room> makes one of "
                                   f"yours ({listed}) current.")


def parse(params: tuple[Param, ...], ctx: Context, args: str, usage: str) -> dict[str, Any]:
    """Match ``args`` against ``params`` of the command written ``usage``. A
    ``bad-arguments`` refusal says what is wrong; the line protocol ends it with the
    usage (chatd.protocol.hints), as it does every command's."""
    words = args.split()
    if len(words) > len(params) and not any(p.rest for p in params):
        raise ChatError(Code.BAD_ARGUMENTS, "too many arguments.")
    values: dict[str, Any] = {}
    index = 0
    # (parameter, index of the word it passed over)
    declined: list[tuple[Param, int]] = []
    for position, param in enumerate(params):
        if not _applies(param, params, values):
            continue
        index = _flags_before(param, params, values, words, index)
        if param.name in values:
            continue  # the flag itself, written before its place
        if param.rest:
            values[param.name] = _rest(param, args, index)
            index = len(words)
            break
        if index >= len(words):
            if not param.optional:
                raise _missing(param)
            continue
        more_follow = _more_follow(params, position, values, words, index)
        _refuse_split_duration(param, words, index)
        try:
            values[param.name] = param.convert(ctx, words[index], more_follow)
            index += 1
        except Decline:
            declined.append((param, index))
    index = _take_flags(params, values, words, index)
    if index < len(words):
        # Only who passed over the first word left over can say why it is there.
        passed = [param for param, at in declined if at == index]
        raise (_room_too_late(ctx, declined, words, index, usage)
               or _leftover(ctx, passed, words[index]))
    return values | {param.name: param.absent(ctx) for param in params
                     if param.name not in values}


def _more_follow(params: tuple[Param, ...], position: int, values: dict[str, Any],
                 words: list[str], index: int) -> bool:
    """Whether words or parameters follow the word at ``index``, which the parameter
    at ``position`` is offered."""
    param = params[position]
    if isinstance(param, RoomRef) and param.id_before_number \
            and index + 2 == len(words) and names.is_number(words[index]) \
            and _digits(words[index + 1]):
        # The room by its id, the number after it its own (of any size: a count
        # past the cap is still a count, and a page out of range says so).
        return False
    return index + 1 < len(words) or any(
        _applies(later, params, values) for later in params[position + 1:])


def _digits(word: str) -> bool:
    """Whether ``word`` is written as a whole number, whatever its size."""
    return word.isascii() and word.isdigit()


def _refuse_split_duration(param: Param, words: list[str], index: int) -> None:
    """``/ban bob 1 week``: a number, then a unit, where a duration may stand. The
    number alone is no duration, so the optional one passed it by, and the ban
    lasted for ever with the reason "1 week"; refused as the duration it meant."""
    if not isinstance(param, Duration) or index + 1 >= len(words):
        return
    number, unit = words[index], words[index + 1]
    if names.is_number(number) and names.meant_as_duration(number + unit):
        refused = names.not_a_duration(f"{number} {unit}")
        raise ChatError(Code.BAD_ARGUMENTS, f"{param.name}: {refused} A duration is one word.")


def _flags_before(param: Param, params: tuple[Param, ...], values: dict[str, Any],
                  words: list[str], index: int) -> int:
    """The flags written from ``index`` on, before ``param`` takes its word (see
    _take_flags); none before a rest-of-line text or a word that names a form."""
    if param.rest or param.names_form:
        return index
    return _take_flags(params, values, words, index)


def _take_flags(params: tuple[Param, ...], values: dict[str, Any], words: list[str],
                index: int) -> int:
    """Take the words from ``index`` on that are the ``--name`` of a flag taking part
    in this line, and return the index of the first that is not: a flag may stand
    anywhere among the words, as ``/auth --resume <token>`` and ``/token create
    --session web`` write it, never read as a token or a name made without it. A flag
    written twice is the flag. The text of a rest-of-line parameter is never looked
    at (its caller stops before it): there ``--x`` is what the user wrote."""
    while index < len(words):
        flag = next((param for param in params if isinstance(param, Flag)
                     and param.written(words[index]) and _applies(param, params, values)),
                    None)
        if flag is None:
            return index
        values[flag.name] = True
        index += 1
    return index


def _room_too_late(ctx: Context, declined: list[tuple[Param, int]], words: list[str],
                   index: int, usage: str) -> ChatError | None:
    """The error of a room named last that goes first (``/history 5 general``,
    ``/who 2 dev``): the optional room passed over the number, which another
    parameter took, and the room is then left over; not too many arguments."""
    word = words[index]
    if any(at == index for _, at in declined):
        return None  # who passed over it says why (_leftover)
    if index != len(words) - 1 or not (word.startswith("#") or ctx.services.rooms.find(word)):
        return None
    rooms = [at for param, at in declined if isinstance(param, RoomRef) and at < index]
    if not rooms:
        return None
    at = rooms[0]
    command = usage.split(maxsplit=1)[0]
    fixed = " ".join([command, *words[:at], word, *words[at:index]])
    return ChatError(Code.BAD_ARGUMENTS, f"the room comes first: {fixed}.")


def _applies(param: Param, params: tuple[Param, ...], values: dict[str, Any]) -> bool:
    """Whether ``param`` takes part in this line: always, or, for a sub-command's
    own parameter, when the first parameter chose that sub-command; never after a
    first word it is ``not_after``."""
    first = values.get(params[0].name)
    if param.not_after and isinstance(first, str) and first.lower() in param.not_after:
        return False
    return not param.sub_commands or first in param.sub_commands


def _rest(param: Param, args: str, index: int) -> Any:
    text = _rest_of(args, index)
    if not text and not param.optional:
        raise _missing(param)
    return text or param.default


def _leftover(ctx: Context, passed: list[Param], word: str) -> ChatError:
    """The error for ``word``, which nobody took: the first of the parameters that
    passed over it to explain why (``/history nosuchroom`` is no-such-room,
    ``/rooms x`` is about the page), else too many arguments."""
    refusals = [(param, param.refusal(ctx, word)) for param in passed]
    taken = [what for param, _ in refusals if (what := param.takes()) is not None]
    if len(taken) > 1 and all(r is None or r.code is Code.BAD_ARGUMENTS for _, r in refusals):
        # Several could have taken it: the word is none of them (a mistyped scope is
        # no more a duration than a scope).
        listed = " nor ".join(taken)
        return ChatError(Code.BAD_ARGUMENTS, f"\"{word}\" is neither {listed}.")
    for _param, refusal in refusals:
        if refusal is not None:
            return refusal
    return ChatError(Code.BAD_ARGUMENTS, "too many arguments.")


def _rest_of(args: str, index: int) -> str:
    """The text from word ``index`` on, inner spacing kept."""
    parts = args.split(None, index)
    return parts[index].strip() if len(parts) > index else ""


def _missing(param: Param) -> ChatError:
    return ChatError(Code.BAD_ARGUMENTS, f"missing {param.usage}.")
