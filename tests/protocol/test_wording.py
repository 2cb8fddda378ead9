"""Wording a person on telnet reads: one sentence per situation, true and complete."""

from __future__ import annotations

import re

from tests.helpers import PASSWORD, Clients, text_client, text_run


async def test_a_text_mode_login_with_resume_shows_the_resume_token(clients: Clients) -> None:
    await clients.user("alice")
    person = await text_client(clients)
    [welcome] = await text_run(person, f"/login alice {PASSWORD} --resume")
    token = re.search(r"chatdr_\S+", welcome)
    assert welcome.startswith("* Welcome back, alice.") and token, welcome
    assert "(shown only now;" in welcome
    # The token shown is the one that works, and its use shows the next one.
    again = await text_client(clients)
    [resumed] = await text_run(again, f"/login --resume {token.group()}")
    following = re.search(r"chatdr_\S+", resumed)
    assert resumed.startswith("* Welcome back, alice.") and following
    assert following.group() != token.group()
