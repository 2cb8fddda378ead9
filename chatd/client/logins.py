"""The login lines a client sends, and the resume token a login's ``ok`` carries.

A login may ask for a resume token (``--resume``); presenting it later
(``/login --resume <token>``) logs the same account in again with no
password check, and the ``ok`` carries the next one: each works once. The
bot SDK and chatd-client both reconnect this way (PROTOCOL.md, "Resume
tokens"), so the syntax lives here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESUME_FLAG = "--resume"


def password_login(user: str, password: str, resume: bool = True) -> str:
    """``/login <user> <password>``, asking for a resume token unless told not to."""
    return _asking(f"/login {user} {password}", resume)


def token_login(user: str, token: str, resume: bool = True) -> str:
    """``/login <user> --token <token>``, asking for a resume token unless told not to."""
    return _asking(f"/login {user} --token {token}", resume)


def resume_login(resume_token: str) -> str:
    """The login that presents a resume token instead of a password or API token."""
    return f"/login {RESUME_FLAG} {resume_token}"


def resume_token_of(final: Mapping[str, Any]) -> str | None:
    """The resume token a login's ``ok`` carries (None when it carries none)."""
    token = final.get("resume")
    return token if isinstance(token, str) and token else None


def _asking(line: str, resume: bool) -> str:
    return f"{line} {RESUME_FLAG}" if resume else line
