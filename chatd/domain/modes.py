"""A room's modes beyond who may join: key, member limit, moderation, secrecy, n and t.

IRC calls every channel setting a mode, and both front ends speak of them in
IRC's letters (``/mode +kl secret 10``, ``MODE #dev +kl secret 10``):

| letter | meaning |
|---|---|
| ``k`` | a key (password) is needed to join |
| ``l`` | at most this many members |
| ``m`` | moderated: only members with voice, admins and the owner speak |
| ``s`` | secret: hidden from lists and from ``/whois`` for non-members |
| ``n`` | no external messages: only members send (on by default) |
| ``t`` | only admins set the topic (on by default) |

The join policy (open, request, private: IRC's ``i`` and ``R``) is the room's
:class:`chatd.domain.room.Mode` and has its own command and event. This module
is pure: it parses mode strings and works out what a list of changes does to
a :class:`RoomModes`; the moderation service applies it under the room's lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from chatd.domain.names import is_number
from chatd.errors import ChatError, Code

# The letters of RoomModes, in the order a mode string lists them.
LETTERS: Final = "ntklms"
KEY_MAX: Final = 32
LIMIT_MAX: Final = 100_000


class Takes(StrEnum):
    """When a letter of a mode string takes an argument."""

    ALWAYS = "always"  # on both + and - (IRC's k, b, o, v)
    ON_SET = "on-set"  # only on + (l)


@dataclass(frozen=True, slots=True)
class RoomModes:
    """A room's key, member limit and switches (``None``: no key, no limit)."""

    key: str | None = None
    limit: int | None = None
    moderated: bool = False
    secret: bool = False
    no_external: bool = True
    topic_lock: bool = True

    def letters(self) -> str:
        """The letters in force, as ``+`` and the letters in :data:`LETTERS` order."""
        on = {"n": self.no_external, "t": self.topic_lock, "k": self.key is not None,
              "l": self.limit is not None, "m": self.moderated, "s": self.secret}
        return "".join(letter for letter in LETTERS if on[letter])

    def arguments(self, show_key: bool = True) -> list[str]:
        """The arguments of :meth:`letters`: the key (or a placeholder), the limit."""
        shown = []
        if self.key is not None:
            shown.append(self.key if show_key else "<key>")
        if self.limit is not None:
            shown.append(str(self.limit))
        return shown


@dataclass(frozen=True, slots=True)
class ModeChange:
    """One letter of a mode string: set (``on``) or unset, with its argument if any."""

    on: bool
    letter: str
    argument: str | None = None

    @property
    def signed(self) -> str:
        return ("+" if self.on else "-") + self.letter


def parse_mode_string(spec: str, arguments: Sequence[str],
                      takes: Mapping[str, Takes]) -> tuple[list[ModeChange], list[str]]:
    """Split a mode string into changes, handing each letter its argument as ``takes``
    says; return the changes and the arguments left over.

    ``"+kl-m", ["pw", "10"]`` gives ``+k pw``, ``+l 10``, ``-m``. A letter that
    should take an argument when none is left gets ``None``: the caller says
    whether that is wrong (``+b`` alone lists bans on IRC).
    """
    on, left = True, list(arguments)
    changes: list[ModeChange] = []
    for letter in spec:
        if letter in "+-":
            on = letter == "+"
            continue
        rule = takes.get(letter)
        wants = rule is Takes.ALWAYS or (rule is Takes.ON_SET and on)
        argument = left.pop(0) if wants and left else None
        changes.append(ModeChange(on, letter, argument))
    return changes, left


def format_changes(changes: Iterable[ModeChange]) -> tuple[str, list[str]]:
    """The mode string and arguments of ``changes``: ``("+kl-m", ["pw", "10"])``."""
    spec, sign, arguments = "", "", []
    for change in changes:
        wanted = "+" if change.on else "-"
        if wanted != sign:
            spec += wanted
            sign = wanted
        spec += change.letter
        if change.argument is not None:
            arguments.append(change.argument)
    return spec, arguments


def apply_changes(modes: RoomModes, changes: Iterable[ModeChange]
                  ) -> tuple[RoomModes, list[ModeChange]]:
    """``modes`` after ``changes`` (letters of :data:`LETTERS` only), and the changes
    that made a difference, each with the argument it stands for (``-k`` and ``-l``
    with none): one per letter whose setting differs in the end (``+k-k`` changes
    nothing; ``+kk a b`` sets the key ``b``), in the order of their last change.
    A bad key or limit is ``bad-arguments`` and changes nothing."""
    current = modes
    last: dict[str, ModeChange] = {}
    for change in changes:
        after = _apply(current, change)
        if after != current:
            last.pop(change.letter, None)  # re-inserted: the order of the last changes
            last[change.letter] = change
            current = after
    effective = [_as_applied(change, current) for letter, change in last.items()
                 if _setting(modes, letter) != _setting(current, letter)]
    return current, effective


# The field of RoomModes each letter sets.
_FIELDS: Final = {"k": "key", "l": "limit", "m": "moderated", "s": "secret",
                  "n": "no_external", "t": "topic_lock"}


def _setting(modes: RoomModes, letter: str) -> object:
    """What one letter's mode is in ``modes``: its key or limit, or on or off."""
    return getattr(modes, _FIELDS[letter])


def _apply(modes: RoomModes, change: ModeChange) -> RoomModes:
    letter, on = change.letter, change.on
    if letter == "m":
        return dataclasses.replace(modes, moderated=on)
    if letter == "s":
        return dataclasses.replace(modes, secret=on)
    if letter == "n":
        return dataclasses.replace(modes, no_external=on)
    if letter == "t":
        return dataclasses.replace(modes, topic_lock=on)
    if letter == "k":
        return dataclasses.replace(modes, key=valid_key(change.argument) if change.on else None)
    if letter == "l":
        return dataclasses.replace(modes, limit=valid_limit(change.argument) if change.on
                                   else None)
    raise ValueError(f"not a letter of RoomModes: {letter!r}")


def _as_applied(change: ModeChange, after: RoomModes) -> ModeChange:
    if not change.on:
        return ModeChange(False, change.letter)
    if change.letter == "k":
        return ModeChange(True, "k", after.key)
    if change.letter == "l":
        return ModeChange(True, "l", str(after.limit))
    return change


def valid_key(key: str | None) -> str:
    """A room key: one word of 1 to 32 printable characters, no comma, no leading ``:``
    (IRC lists keys with commas and could not send one that starts with a colon)."""
    if not key:
        raise ChatError(Code.BAD_ARGUMENTS, "+k needs the key: one word, like +k hunter2.")
    if (len(key) > KEY_MAX or not key.isprintable() or any(c.isspace() for c in key)
            or "," in key or key.startswith(":")):
        raise ChatError(Code.BAD_ARGUMENTS, f"a key is one word of 1 to {KEY_MAX} printable "
                        "characters, without commas, not starting with ':'.")
    return key


def valid_limit(limit: str | None) -> int:
    """A member limit: a whole number from 1 to :data:`LIMIT_MAX`."""
    if (limit is None or len(limit) > len(str(LIMIT_MAX)) or not limit.isascii()
            or not is_number(limit) or not 1 <= int(limit) <= LIMIT_MAX):
        raise ChatError(Code.BAD_ARGUMENTS, f"+l needs the member limit: a whole number from "
                        f"1 to {LIMIT_MAX}, like +l 50.")
    return int(limit)
