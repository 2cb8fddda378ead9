"""IRC masks: the one matcher of ``WHO``, ``LIST`` and ``MODE +b``.

A mask (RFC 2812 §2.5, "Wildcard expressions" of the modern IRC client
protocol) has two wildcards: ``*`` matches any run of characters, none
included, and ``?`` exactly one. A ``\\`` before ``*``, ``?`` or ``\\`` makes
that character itself; every other character (a lone ``\\``, ``[`` and ``]`` too) is
only itself (a mask is not a shell's glob, where ``[abc]`` is a class).

Case is compared as ISUPPORT ``CASEMAPPING=ascii`` says: ``A``-``Z`` and
``a``-``z`` alone are the same letters (the Kelvin sign is not ``k``, as
Unicode's lower-casing would make it).

Matching is greedy with one step back to the last ``*``: at most the mask's
length times the name's, never the exponential backtracking a regular
expression of many ``*`` can take.
"""

from __future__ import annotations

import string
from typing import Final

# The wildcards, as tokens of a parsed mask (a literal character is a str).
_ANY: Final = 0
_ONE: Final = 1
Token = int | str

_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ESCAPED: Final = ("*", "?", "\\")


def irc_lower(text: str) -> str:
    """``text`` in lower case by ``CASEMAPPING=ascii``: A-Z become a-z, nothing else."""
    return text.translate(_ASCII_LOWER)


def has_wildcards(mask: str) -> bool:
    """Whether ``mask`` has a ``*`` or ``?`` that is a wildcard (not escaped)."""
    return any(not isinstance(token, str) for token in _tokens(mask))


def _tokens(mask: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    lowered = irc_lower(mask)
    index = 0
    while index < len(lowered):
        char = lowered[index]
        if char == "\\" and lowered[index + 1:index + 2] in _ESCAPED:
            tokens.append(lowered[index + 1])  # escaped: itself
            index += 2
            continue
        tokens.append(_ANY if char == "*" else _ONE if char == "?" else char)
        index += 1
    return tuple(tokens)


class Mask:
    """A mask parsed once, to match many names against: ``Mask("bob*").matches("Bobby")``."""

    __slots__ = ("_tokens", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = _tokens(text)

    def matches(self, name: str) -> bool:
        """Whether ``name`` (a nick, a channel, a ``nick!user@host``) matches, in any
        ASCII case."""
        return _matches(self._tokens, irc_lower(name))


def matches(mask: str, name: str) -> bool:
    """Whether ``name`` matches ``mask``; :class:`Mask` for one mask and many names."""
    return Mask(mask).matches(name)


def _matches(tokens: tuple[Token, ...], text: str) -> bool:
    """Greedy matching: on a mismatch, the last ``*`` takes one character more."""
    at = step = 0
    star, resume = -1, 0
    while at < len(text):
        token = tokens[step] if step < len(tokens) else None
        if token == _ANY:
            star, resume, step = step, at, step + 1
        elif token == _ONE or token == text[at]:
            at, step = at + 1, step + 1
        elif star >= 0:
            resume += 1
            at, step = resume, star + 1
        else:
            return False
    return all(token == _ANY for token in tokens[step:])
