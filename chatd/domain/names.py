"""Validation of user and room names, and parsing and formatting of durations.

Pure: no I/O and no import from the rest of chatd.
"""

from __future__ import annotations

import json
import math
import re
from typing import Final

__all__ = [
    "CONSOLE",
    "MAX_DIGITS",
    "MAX_DURATION",
    "MAX_NUMBER",
    "InvalidName",
    "capped_number",
    "format_duration",
    "is_decimal",
    "is_number",
    "looks_like_duration",
    "meant_as_duration",
    "name_key",
    "new_user_name",
    "not_a_duration",
    "parse_duration",
    "reserved",
    "room_name",
    "user_name",
    "why_reserved",
]

# The largest whole number chatd takes: ids and counts go to 64-bit signed
# columns (SQLite's INTEGER, PostgreSQL's bigint), and a larger value makes the
# database driver raise OverflowError, an internal error, instead of a refusal.
MAX_NUMBER: Final = 2**63 - 1
# Bounds the string int() reads (its cost grows with the length; leading zeros
# aside, MAX_NUMBER has 19 digits).
MAX_DIGITS: Final = 30


def is_number(word: str) -> bool:
    """Whether ``word`` is a whole number chatd takes: ASCII digits only, at most
    MAX_DIGITS of them, of a value at most MAX_NUMBER. (Not ``str.isdigit``: it
    takes "²" and "٣" too; nor ``int()``, which takes "٣", "1_0", "+1" and " 1".)
    Every parser of a number from users goes through this, so what one takes,
    the others take, and none hands storage a value it cannot hold."""
    return (len(word) <= MAX_DIGITS and word.isascii() and word.isdigit()
            and int(word) <= MAX_NUMBER)


def capped_number(word: str, most: int) -> int | None:
    """The value of ``word``, ASCII digits of any length, or ``most`` when it is
    larger (a count past any cap means the cap); None when ``word`` is no whole
    number. ``int()`` reads at most as many digits as ``most`` has: its cost grows
    with the length."""
    if not (word.isascii() and word.isdigit()):
        return None
    digits = word.lstrip("0") or "0"
    if len(digits) > len(str(most)):
        return most
    return min(int(digits), most)


# A decimal as people write one: digits with at most one decimal point ("2",
# "0.5", ".5", "5."). float() alone takes far more: "٣", "1_0", "1e3", "inf",
# "nan", signs and surrounding spaces.
_DECIMAL_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def is_decimal(word: str) -> bool:
    """Whether ``word`` is a decimal number chatd takes (then ``float(word)`` is
    its finite value): ASCII digits with at most one decimal point, at most
    MAX_DIGITS characters. Every whole number (:func:`is_number`) is one."""
    return len(word) <= MAX_DIGITS and _DECIMAL_RE.fullmatch(word) is not None


USER_NAME_MAX: Final = 24
ROOM_NAME_MAX: Final = 32

# Character classes are spelled out (not \w) so that only ASCII is allowed:
# non-ASCII letters would open the door to look-alike names.
_USER_RE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{USER_NAME_MAX}}}")
# Room names are checked before lower-casing: str.lower() maps some non-ASCII
# characters to ASCII (the Kelvin sign U+212A becomes "k"), which would let
# look-alikes through.
_ROOM_RE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{ROOM_NAME_MAX}}}")
_C1_CONTROL: Final = re.compile("[\x7f-\x9f]")


def quoted(text: str) -> str:
    """What a user typed, as error sentences quote it: in double quotes, any control
    character written out (``"al!ce"``, ``"a\\u001b"``)."""
    # JSON escapes only the C0 controls; DEL and the C1 ones (CSI, NEL) would reach
    # a text-mode terminal as they are, so they are written out the same way.
    return _C1_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}",
                           json.dumps(text, ensure_ascii=False))


class InvalidName(ValueError):
    """A user or room name that breaks the naming rules; the message says which."""


def user_name(raw: str) -> str:
    """Validate a user name: 1-24 of ``A-Za-z0-9_-``. Returned unchanged (case kept)."""
    if _USER_RE.fullmatch(raw) is None:
        raise InvalidName(
            f"invalid user name {quoted(raw)}: use 1-{USER_NAME_MAX} characters,"
            " letters A-Z a-z, digits 0-9, '_' or '-'."
        )
    return raw


# What starts an option of a command (/login's --resume and --token, /token
# create's --session): a name read where an option may stand is taken for it.
OPTION_PREFIX: Final = "--"


def new_user_name(raw: str) -> str:
    """Validate the name of an account about to be made: a user name, and not one
    that reads as an option. An account named ``--resume`` could never log in with
    its password (``/login --resume <pw>`` is a resume login), nor one named
    ``--token`` be told from the token form. Accounts made before this rule keep
    their names, which :func:`user_name` still takes."""
    name = user_name(raw)
    if name.startswith(OPTION_PREFIX):
        raise InvalidName(f"invalid user name {quoted(raw)}: a name starting with "
                          f"{OPTION_PREFIX} reads as an option (/login --resume, --token); "
                          "choose another.")
    return name


def room_name(raw: str) -> str:
    """Validate a room name and return its canonical form.

    One leading ``#`` is removed and the rest lower-cased; it must then be
    1-32 of ``a-z0-9_-``, and not only digits (a number names a room by id).
    """
    bare = raw[1:] if raw.startswith("#") else raw
    if _ROOM_RE.fullmatch(bare) is None:
        raise InvalidName(
            f"invalid room name {quoted(raw)}: use an optional '#' then 1-{ROOM_NAME_MAX}"
            " characters, letters a-z, digits 0-9, '_' or '-'."
        )
    if bare.isdigit():
        raise InvalidName(f"invalid room name {quoted(raw)}: a number alone is a room id; "
                          "add a letter.")
    return bare.lower()


# The name the operator's actions through the control socket (chatctl) are shown
# under: an actor of events and audit entries, and on IRC the server itself. No
# account or guest may take it, or its own actions would pass for the operator's.
CONSOLE: Final = "console"


# The nicks of IRC services. chatd runs none, but IRC users send their passwords
# to NickServ out of habit (clients and scripts identify on connecting): whoever
# held one of these names, a guest above all, would collect them.
SERVICES: Final = frozenset({"nickserv", "chanserv", "memoserv", "operserv",
                             "hostserv", "botserv", "saslserv"})


def why_reserved(name: str) -> str | None:
    """Why no account or guest may take ``name`` (in any case); None when one may."""
    key = name_key(name)
    if key == CONSOLE:
        return "the operator's console acts under it"
    if key in SERVICES:
        return "it is an IRC services name, to which IRC clients send passwords"
    return None


def reserved(name: str) -> bool:
    """Whether ``name`` is one no account or guest may take (in any case)."""
    return why_reserved(name) is not None


def name_key(name: str) -> str:
    """The case-insensitive key under which a name is looked up and kept unique."""
    key = name.casefold()
    # The name itself when it is its own key (most are): a key kept for every
    # connection (nicks, identities) then costs no second string.
    return name if key == name else key


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY
MAX_DURATION: Final = 3650 * DAY  # "10 years", counting 365-day years

_UNITS: Final = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}
# Units used when formatting, largest first. Weeks are left out on purpose:
# "7d" and "10d" read more naturally than "1w" and "1w 3d".
_FORMAT_UNITS: Final = (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1))

# Bounded so that a hostile argument cannot make int() or the regex expensive.
_MAX_DURATION_TEXT: Final = 40
# Any count of digits (the text's length bounds them): a number too large is then
# refused as longer than the bound, not as something other than a duration.
_DURATION_RE: Final = re.compile(r"(?:[0-9]+[smhdw])+")
_PART_RE: Final = re.compile(r"([0-9]+)([smhdw])")

_DURATION_HELP: Final = (
    "use a number and a unit (s, m, h, d or w), for example 30s, 10m, 2h, 7d, 1w or 1h30m"
)

# The names people give units when they mistype a duration ("10min", "2hrs").
_UNIT_WORDS: Final = ("sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes",
                      "hr", "hrs", "hour", "hours", "day", "days", "wk", "wks", "week", "weeks",
                      "mon", "month", "months", "yr", "yrs", "year", "years")
# One or more numbers, each followed by one letter or a unit's name: "10x", "5M", "1.5h",
# "10min", "1h30mins". Not "2nd", "4chan" or "1v1", which a room or a reason may be.
# A sign, or a number written ".5" or "5.", is a mistyped duration too.
_ATTEMPT_RE: Final = re.compile(
    rf"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:{'|'.join(_UNIT_WORDS)}|[a-z]))+",
    re.IGNORECASE | re.ASCII)
# A word too long to be checked by _ATTEMPT_RE (its nested repetition must stay
# cheap on a hostile word) is one all the same when it reads as one: a digit
# first, a letter last, only digits, letters and points between.
_LONG_ATTEMPT_RE: Final = re.compile(r"[0-9][0-9a-z.]*[a-z]", re.IGNORECASE | re.ASCII)


def looks_like_duration(raw: str) -> bool:
    """True when ``raw`` has the syntax of a duration, such as ``10m`` or ``1h30m``.

    Only the syntax is checked: ``0s`` looks like a duration (and
    ``parse_duration`` then rejects it with a clear message), which is what
    commands taking an optional duration argument want.
    """
    return len(raw) <= _MAX_DURATION_TEXT and _DURATION_RE.fullmatch(raw) is not None


def meant_as_duration(raw: str) -> bool:
    """True when ``raw`` was meant as a duration, well formed or not (``10m``, ``1x``,
    ``10min``, ``1.5h``): numbers each followed by one letter or a unit's name.

    Where an optional duration may stand, such a word is a duration or an error,
    never a room or the start of a reason: ``/mute bob 1x`` is a mistyped
    duration, not a room named "1x" (unless that room exists, which a room
    parameter before the duration takes first).
    """
    if len(raw) > _MAX_DURATION_TEXT:
        # Too long to be any duration ("1s" forty times, "0000...7d"): never a room
        # or a reason's first word for that (a ban that lasted for ever).
        return _LONG_ATTEMPT_RE.fullmatch(raw) is not None
    return _ATTEMPT_RE.fullmatch(raw) is not None


def not_a_duration(raw: str) -> str:
    """The sentence refusing ``raw``, meant as a duration, with the forms taken."""
    return f"{quoted(raw)} is not a duration: {_DURATION_HELP}."


def parse_duration(raw: str) -> float:
    """Parse a duration such as ``30s``, ``10m``, ``2h``, ``7d``, ``1w`` or ``1h30m``.

    Surrounding whitespace is ignored. Returns seconds. Raises ``ValueError``
    unless the duration is well formed, positive and at most 10 years (3650
    days).
    """
    text = raw.strip()
    if not looks_like_duration(text):
        raise ValueError(f"invalid duration {quoted(raw)}: {_DURATION_HELP}.")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in _PART_RE.findall(text))
    if seconds <= 0:
        raise ValueError(f"invalid duration {quoted(raw)}: it must be longer than zero.")
    if seconds > MAX_DURATION:
        raise ValueError(f"invalid duration {quoted(raw)}: at most 10 years (3650d).")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """Format a duration for people: ``45s``, ``10m``, ``2h 5m``, ``7d``, ``1d 3h``.

    The time is first rounded up to a whole second (so a ban with 0.2 s left
    shows as ``1s``, not ``0s``). Then at most two units are shown: the
    largest one and, when not zero, the next smaller one; smaller units are
    dropped, so the result may be short by less than one of the second unit
    (``1d 3h`` may mean up to 1d 3h 59m 59s). Negative times show as ``0s``.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a duration of {seconds} seconds")
    remaining = max(0, math.ceil(seconds))
    for index, (unit, size) in enumerate(_FORMAT_UNITS):
        if remaining >= size:
            major = f"{remaining // size}{unit}"
            if index + 1 == len(_FORMAT_UNITS):
                return major
            minor_unit, minor_size = _FORMAT_UNITS[index + 1]
            minor = remaining % size // minor_size
            return f"{major} {minor}{minor_unit}" if minor else major
    return "0s"
