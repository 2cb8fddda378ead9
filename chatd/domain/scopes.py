"""What a token lets its holder do: scopes, and the one a command needs.

A login with a password may do everything the account may. A login with an
API token (or a resume token made from one) may do only what the token's
scopes grant; each command declares the scope it needs, and the dispatcher
checks it before the command runs. Scopes are a set, not a ladder: a
moderation bot may have ``read moderate`` and still not post.
"""

from __future__ import annotations

import functools
from enum import StrEnum

from chatd.errors import ChatError, Code


class Scope(StrEnum):
    """One thing a token may be allowed to do."""

    READ = "read"  # see: lists, history, who, whois, help, the messages of its rooms
    POST = "post"  # speak and act for itself: messages, joining, leaving, uploads
    MODERATE = "moderate"  # room governance: kick, ban, mute, invite, topic, mode
    ADMIN = "admin"  # the account itself and the server: tokens, bots, useradd


ALL_SCOPES = frozenset(Scope)
_NAMES = frozenset(scope.value for scope in Scope)
# What a token grants when its maker names no scopes: enough to talk, no power.
DEFAULT_SCOPES = frozenset({Scope.READ, Scope.POST})
# How scopes are written on the command line: "read,post" (or "all").
SEPARATOR = ","


def grants(scopes: frozenset[Scope] | None, scope: Scope) -> bool:
    """Whether a session holding ``scopes`` may do what ``scope`` covers (None: it
    logged in with a password, which grants every scope)."""
    return scopes is None or scope in scopes


def require_scope(scopes: frozenset[Scope] | None, scope: Scope, what: str) -> None:
    """Refuse (:func:`missing_scope`) ``what`` to a session whose ``scopes`` lack ``scope``."""
    if not grants(scopes, scope):
        raise missing_scope(scope, what)


def missing_scope(scope: Scope, what: str) -> ChatError:
    """``scope``: the token this session logged in with does not grant what ``what``
    needs (a line-protocol command, a plain line, an IRC command)."""
    return ChatError(Code.SCOPE, f"the token you logged in with does not grant the "
                                 f"{scope.value} scope, which {what} needs.", scope=scope.value)


def looks_like_scopes(word: str) -> bool:
    """Whether ``word`` is meant as a list of scopes (every part a scope name, or "all")."""
    parts = word.lower().split(SEPARATOR)
    return word.lower() == "all" or all(part in _NAMES for part in parts)


def parse_scopes(word: str) -> frozenset[Scope]:
    """``read,post`` as a set of scopes; ``all`` is every scope. ``bad-arguments`` otherwise."""
    lowered = word.lower()
    if lowered == "all":
        return ALL_SCOPES
    try:
        return frozenset(Scope(part) for part in lowered.split(SEPARATOR))
    except ValueError:
        known = ", ".join(scope.value for scope in Scope)
        raise ChatError(Code.BAD_ARGUMENTS, f'scopes are a comma-separated list of {known} '
                        f'(or all), not "{word}".') from None


def stored(scopes: frozenset[Scope]) -> str:
    """As storage keeps them: space-separated, in a fixed order."""
    return " ".join(scope.value for scope in Scope if scope in scopes)


@functools.lru_cache(maxsize=64)
def loaded(text: str) -> frozenset[Scope]:
    """Read back from storage (an unknown word is ignored: it grants nothing).

    Every token log-in reads its token's scopes: the few texts there are are
    read once (the result is immutable)."""
    return frozenset(Scope(word) for word in text.split() if word in _NAMES)


def shown(scopes: frozenset[Scope]) -> str:
    """For people: ``read,post``."""
    return SEPARATOR.join(scope.value for scope in Scope if scope in scopes)



def listed(scopes: frozenset[Scope]) -> list[str]:
    """For programs: ``["read", "post"]``, in a fixed order."""
    return list(_listed(scopes))


@functools.lru_cache(maxsize=64)
def _listed(scopes: frozenset[Scope]) -> tuple[str, ...]:
    # Every log-in's reply lists its scopes; there are few sets of them.
    return tuple(scope.value for scope in Scope if scope in scopes)
