"""Register, login and the account commands, over in-memory connections."""

from __future__ import annotations

from tests.commands.conftest import Chat
from tests.helpers import PASSWORD


async def test_register_welcomes_and_logs_in(chat: Chat) -> None:
    peer = await chat.anonymous()
    assert await peer.say(f"/register alice {PASSWORD}") == [
        "* Welcome, alice. You are logged in. Try /rooms, or /create <room>."]
    assert (await peer.say("/whoami"))[-1].startswith("* You are alice")


async def test_register_is_audited_once(chat: Chat) -> None:
    peer = await chat.anonymous()
    await peer.say(f"/register alice {PASSWORD}")
    entries = await chat.server.services.audit.entries(10)
    assert [(e.actor, e.target) for e in entries if e.action == "account-created"] == [
        ("alice", "alice")]


async def test_login_after_logout_and_a_wrong_password(chat: Chat) -> None:
    await chat.user("alice")
    peer = await chat.anonymous()
    assert await peer.say("/login alice wrong-password") == [
        "! auth-failed: wrong name or password."]
    assert (await peer.say(f"/login alice {PASSWORD}"))[-1].startswith("* Welcome back, alice")


async def test_register_twice_is_refused_with_a_label_in_json(chat: Chat) -> None:
    await chat.user("alice")
    peer = await chat.anonymous()
    await peer.say("/format json")
    assert await peer.final(f"@r1 /register alice {PASSWORD}") == {
        "type": "error", "code": "name-taken", "command": "register", "label": "r1",
        "message": 'the name "alice" is taken; choose another.'}


async def test_useradd_audits_the_admin_as_actor(chat: Chat) -> None:
    await chat.server.services.accounts.create("root", PASSWORD, is_admin=True)
    root = await chat.user("root")
    assert await root.say(f"/useradd dave {PASSWORD}") == ["* Account dave created."]
    entries = await chat.server.services.audit.entries(10)
    # root was made without an actor, as "chatd useradd" makes one offline.
    assert {(e.actor, e.target) for e in entries if e.action == "account-created"} == {
        ("root", "dave"), (None, "root")}


async def test_login_says_which_account_settings_it_applied(chat: Chat) -> None:
    alice = await chat.user("alice")
    await alice.say("/set theme dark")
    await alice.say("/set color on")
    peer = await chat.anonymous()
    await peer.say("/format json")
    final = await peer.final(f"/login alice {PASSWORD}")
    assert final["settings"] == {"color": True, "timestamps": False, "theme": "dark"}


async def test_an_account_without_saved_settings_gets_the_defaults_at_login(
        chat: Chat) -> None:
    ivan = await chat.user("ivan")
    await ivan.say("/set timestamps on")
    await ivan.say("/set theme dark")
    await chat.user("kim")
    client = await chat.anonymous()
    await client.say("/format json")
    # What was chosen before the login, and the account logged in before, carry over
    # to no account that saved nothing.
    await client.final("/set color on")
    await client.final(f"/login ivan {PASSWORD}")
    await client.final("/logout")
    final = await client.final(f"/login kim {PASSWORD}")
    assert final["settings"] == {"color": False, "timestamps": False, "theme": "default"}
