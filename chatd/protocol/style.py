"""Client-chosen output settings, kept with the account.

``/format``, ``/set color``, ``/set timestamps`` and ``/set theme`` change the
connection's :class:`~chatd.protocol.render.Style`. Colour, timestamps and theme are
saved with the account and applied at each login; the format is the
connection's own (a person and their bot may share an account).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatd.domain.names import quoted
from chatd.errors import ChatError, Code
from chatd.protocol.params import expected
from chatd.protocol.render import THEMES
from chatd.protocol.session import DEFAULT_STYLE

if TYPE_CHECKING:
    from chatd.protocol.session import Session

ON_OFF = {"on": True, "off": False}
SETTINGS = {
    "format": ("text", "json"),
    "color": ("on", "off"),
    "timestamps": ("on", "off"),
    "theme": tuple(THEMES),
}


def change(session: Session, key: str, value: str) -> dict[str, Any]:
    """Apply ``key`` = ``value`` to the session; returns the setting as stored."""
    key, value = key.lower(), value.lower()
    if key not in SETTINGS:
        raise ChatError(Code.BAD_ARGUMENTS,
                        f"there is no setting {quoted(key)}; settings: {', '.join(SETTINGS)}.")
    if value not in SETTINGS[key]:
        raise ChatError(Code.BAD_ARGUMENTS, f"{key}: {expected(SETTINGS[key], value)}")
    stored: dict[str, Any] = {key: ON_OFF.get(value, value)}
    apply_settings(session, stored)
    return stored


# Kept with the account; the format stays the connection's own choice.
ACCOUNT_SETTINGS = ("color", "timestamps", "theme")


# What an account that never saved a setting has: a fresh connection's.
_ACCOUNT_DEFAULTS: dict[str, Any] = {"color": DEFAULT_STYLE.color,
                                     "timestamps": DEFAULT_STYLE.timestamps,
                                     "theme": DEFAULT_STYLE.theme}


def apply_account_settings(session: Session, settings: dict[str, Any]) -> None:
    """At login: the account's colour, timestamps and theme, each replacing the
    connection's (the default where the account saved none: nothing carries
    over from before the login, or from the account logged in before)."""
    apply_settings(session, _ACCOUNT_DEFAULTS | {k: v for k, v in settings.items()
                                                 if k in ACCOUNT_SETTINGS})


def apply_settings(session: Session, settings: dict[str, Any]) -> None:
    """Apply stored settings (unknown or malformed keys are ignored)."""
    style = session.style
    changes: dict[str, Any] = {}
    if settings.get("format") in ("text", "json") and settings["format"] != style.fmt:
        changes["fmt"] = settings["format"]
    for key in ("color", "timestamps"):
        value = settings.get(key)
        if isinstance(value, bool) and value != getattr(style, key):
            changes[key] = value
    if settings.get("theme") in THEMES and settings["theme"] != style.theme:
        changes["theme"] = settings["theme"]
    # Nothing changes (most log-ins: an account with the default settings):
    # the session keeps its style, its cache keys and its lane renderers.
    if changes:
        session.set_style(replace(style, **changes))
