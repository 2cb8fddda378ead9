"""A flag written before the words it goes with, over a real socket: ``/auth
--resume <token>`` and ``/token create --session <name>`` do what the same line
with the flag last does."""

from __future__ import annotations

from tests.helpers import Clients


async def test_auth_with_the_resume_flag_first_logs_in_and_issues_a_resume_token(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    token = (await alice.command("/token create bot read,post"))["token"]
    bot = await clients.anonymous()
    welcome = await bot.command(f"/auth --resume {token}")
    assert welcome["user"] == "alice" and welcome["resume"].startswith("chatdr_")
    again = await clients.anonymous()
    assert (await again.command(f"/login --resume {welcome['resume']}"))["user"] == "alice"


async def test_token_create_with_the_session_flag_first_makes_a_named_session_token(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    made = await alice.command("/token create --session web read 7d")
    assert (made["name"], made["kind"], made["scopes"]) == ("web", "session", ["read"])
    listed = (await alice.command("/token list"))["tokens"]
    assert [(t["name"], t["kind"]) for t in listed] == [("web", "session")]
