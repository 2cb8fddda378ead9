"""chatctl for bots and scoped tokens, against a live in-process daemon."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from chatd.app.app import App
from chatd.ops.chatctl import main
from chatd.ops.control_client import ControlClient, ControlError
from tests.helpers import Clients


async def _run(daemon: App, capsys: pytest.CaptureFixture[str],
               *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--socket", daemon.control.path, *args])
    out, err = capsys.readouterr()
    return code, out, err


async def _json(daemon: App, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = await _run(daemon, capsys, "--json", *args)
    assert code == 0, err
    return json.loads(out)


async def test_tokens_show_scopes_expiry_and_last_use(
        daemon: App, clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    alice = await clients.user("alice")
    made = await alice.command("/token create ci read 7d")
    listed = await _json(daemon, capsys, "tokens", "alice")
    assert [(t["name"], t["scopes"], t["last_used"]) for t in listed] == [
        ("ci", ["read"], None)]
    bot = await clients.anonymous()
    await bot.command(f"/auth {made.final['token']}")
    [used] = await _json(daemon, capsys, "tokens")
    assert used["last_used"] is not None and used["last_used"] >= used["created"]
    code, out, _ = await _run(daemon, capsys, "tokens")
    assert code == 0 and "last_used" in out and "read" in out and " UTC" in out


async def test_bot_create_list_and_delete(daemon: App, clients: Clients,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    await clients.user("alice")
    made = await _json(daemon, capsys, "bot-create", "helper", "--owner", "alice",
                       "--scopes", "read,moderate", "--ttl", "30d")
    assert (made["name"], made["owner"], made["scopes"]) == (
        "helper", "alice", ["read", "moderate"])
    assert made["token"].startswith("chatd_") and made["expires"] is not None
    orphan = await _json(daemon, capsys, "bot-create", "lonely")
    assert orphan["owner"] is None and orphan["scopes"] == ["read", "post"]
    code, out, _ = await _run(daemon, capsys, "bot-create", "alone")
    assert code == 0 and "name: alone, owner: -, " in out  # not a blank "owner: ,"
    await _json(daemon, capsys, "bot-delete", "alone")

    bot = await clients.anonymous()
    login = await bot.command(f"/login helper --token {made['token']}")
    assert login["bot"] is True and login["scopes"] == ["read", "moderate"]
    listed = await _json(daemon, capsys, "bots")
    assert [(b["name"], b["owner"], b["online"], b["tokens"]) for b in listed] == [
        ("helper", "alice", True, 1), ("lonely", None, False, 1)]
    assert [b["name"] for b in await _json(daemon, capsys, "bots", "--owner", "alice")] == [
        "helper"]
    users = {u["name"]: u["bot"] for u in await _json(daemon, capsys, "users")}
    assert users == {"alice": False, "helper": True, "lonely": True}

    code, _, err = await _run(daemon, capsys, "bot-delete", "alice")
    assert code == 1 and "alice is not a bot" in err
    assert await _json(daemon, capsys, "bot-delete", "helper") == {"name": "helper"}
    assert [b["name"] for b in await _json(daemon, capsys, "bots")] == ["lonely"]
    code, out, _ = await _run(daemon, capsys, "bots")
    assert code == 0 and "lonely" in out


async def test_revoke_token_of_a_bot(daemon: App, clients: Clients,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    made = await _json(daemon, capsys, "bot-create", "helper")
    assert await _json(daemon, capsys, "revoke-token", "helper", "default") == {
        "user": "helper", "name": "default"}
    bot = await clients.anonymous()
    refused = await bot.command(f"/auth {made['token']}", check=False)
    assert refused.final["code"] == "auth-failed"
    code, _, err = await _run(daemon, capsys, "bot-create", "x", "--scopes", "nope")
    assert code == 1 and "scopes" in err
    # Shown as text, the secret stays whole on its line (copied from there).
    code, out, _ = await _run(daemon, capsys, "bot-create", "another")
    shown = re.search(r"token: ([^\s,]+)", out)
    assert code == 0 and shown is not None and len(shown.group(1)) == len(made["token"])


async def test_bot_create_refuses_a_bot_as_the_owner(
        daemon: App, clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    # A bot cannot make bots; nor can an operator hand it one to own, whose tokens it
    # could then make with /bot token as the owner.
    await _json(daemon, capsys, "bot-create", "helper")
    code, _, err = await _run(daemon, capsys, "bot-create", "minion", "--owner", "helper")
    assert code == 1 and "not-permitted" in err and "helper is a bot" in err
    assert [b["name"] for b in await _json(daemon, capsys, "bots")] == ["helper"]
    users = await clients.user("alice")
    made = await users.command("/bot create minion")
    assert made.final["owner"] == "alice"


async def test_an_empty_owner_scopes_or_user_is_refused_not_taken_for_none(
        daemon: App, clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    # An unset shell variable (--owner "$OWNER") must not make a bot nobody's, nor
    # give it the default scopes, nor list everyone's tokens or bots.
    await clients.user("alice")
    for args in (("bot-create", "helper", "--owner", ""), ("bot-create", "helper",
                                                           "--scopes", " "),
                 ("tokens", ""), ("bots", "--owner", ""), ("audit", "--room", "")):
        code, _, err = await _run(daemon, capsys, *args)
        assert code == 1 and "bad-arguments" in err and "is empty" in err, args
    assert await _json(daemon, capsys, "bots") == []


async def test_no_account_takes_the_name_the_console_acts_under(
        daemon: App, clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    # chatctl's kicks, bans and broadcasts show the actor "console" (on IRC, the
    # server itself): an account of that name would pass its own actions for them.
    newcomer = await clients.anonymous()
    refused = await newcomer.command("/register Console some-password", check=False)
    assert refused.final["code"] == "name-taken" and "reserved" in refused.final["message"]
    alice = await clients.user("alice")
    made = await alice.command("/bot create console", check=False)
    assert made.final["code"] == "name-taken"
    code, _, err = await _run(daemon, capsys, "bot-create", "console")
    assert code == 1 and "reserved" in err
    with pytest.raises(ControlError, match="reserved"):  # chatctl useradd's request
        await ControlClient(daemon.control.path).call("useradd", name="CONSOLE",
                                                      password="some-password")
    users = await _json(daemon, capsys, "users")
    assert [u["name"] for u in users] == ["alice"]
