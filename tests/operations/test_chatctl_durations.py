"""chatctl's duration options (ban and mute --duration, bot-create --ttl): a negative
one is refused with a message saying so, written "--duration -5m" as well as
"--duration=-5m", and nothing reaches the daemon. The real ``chatctl`` console script,
against an in-process daemon."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from chatd.app.app import App
from chatd.ops.control_client import ControlClient, ControlError
from tests.helpers import Clients
from tests.operations import CHATCTL

TIMEOUT = 30




async def chatctl(daemon: App, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [str(CHATCTL), "--socket", daemon.control.path, *args],
        capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize(("args", "option", "value", "without"), [
    (["ban", "bob", "lounge", "--duration", "-5m", "spam"], "--duration", "-5m",
     "a permanent ban"),
    (["ban", "--duration", "-1h30m", "bob", "lounge"], "--duration", "-1h30m",
     "a permanent ban"),
    (["ban", "bob", "lounge", "--duration=-5m"], "--duration", "-5m", "a permanent ban"),
    # An abbreviation argparse takes for --duration, as it does any option's.
    (["ban", "bob", "lounge", "--dur", "-5m"], "--duration", "-5m", "a permanent ban"),
    (["mute", "bob", "lounge", "--duration", "-10m"], "--duration", "-10m",
     "a permanent mute"),
    (["mute", "bob", "lounge", "--duration", "-5"], "--duration", "-5", "a permanent mute"),
    (["mute", "--duration=-10m", "bob", "lounge"], "--duration", "-10m", "a permanent mute"),
    (["bot-create", "helper", "--ttl", "-1d"], "--ttl", "-1d", "a token that never expires"),
    (["bot-create", "helper", "--ttl=-1d"], "--ttl", "-1d", "a token that never expires"),
])
async def test_a_negative_duration_is_refused_with_a_clear_message(
        daemon: App, clients: Clients, args: list[str], option: str, value: str,
        without: str) -> None:
    owner = await clients.user("alice")
    await owner.command("/create lounge")
    await (await clients.user("bob")).command("/join lounge")
    done = await chatctl(daemon, *args)
    assert done.returncode == 2, done
    assert "expected one argument" not in done.stderr
    said = done.stderr.strip().splitlines()[-1]
    assert said == (f"chatctl {args[0]}: error: argument {option}: \"{value}\" is negative: "
                    f"a duration says how long, like 30m or 7d (leave {option} out for "
                    f"{without})"), done.stderr
    # Refused before the daemon was asked: nobody banned or muted, no bot made.
    audit = await ControlClient(daemon.control.path).call("audit", n=50)
    assert not {entry["action"] for entry in audit} & {"ban", "mute"}, audit
    assert daemon.services.accounts.find("helper") is None


async def test_a_duration_is_taken_as_before_with_or_without_the_equals_sign(
        daemon: App, clients: Clients) -> None:
    owner = await clients.user("alice")
    await owner.command("/create lounge")
    await (await clients.user("bob")).command("/join lounge")
    muted = await chatctl(daemon, "--json", "mute", "bob", "lounge", "--duration=10m")
    assert muted.returncode == 0, muted.stderr
    assert json.loads(muted.stdout)["until"]
    banned = await chatctl(daemon, "--json", "ban", "bob", "lounge", "--duration", "1h", "spam")
    assert banned.returncode == 0, banned.stderr
    assert json.loads(banned.stdout)["until"]
    made = await chatctl(daemon, "--json", "bot-create", "helper", "--ttl=30d")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["expires"] is not None
    # What is not a duration the daemon refuses, as it did.
    wrong = await chatctl(daemon, "ban", "bob", "lounge", "--duration=1x")
    assert wrong.returncode == 1 and "invalid duration" in wrong.stderr, wrong.stderr



@pytest.mark.parametrize(("args", "said"), [
    (["ban", "bob", "lounge", "--duration", "-m5"],
     '"-m5" starts with "-": a duration says how long'),
    (["ban", "bob", "lounge", "--duration="], "it is empty: a duration says how long"),
    (["mute", "bob", "lounge", "--duration", ""], "it is empty: a duration says how long"),
])
async def test_an_empty_or_dashed_duration_is_refused_not_taken_for_none(
        daemon: App, clients: Clients, args: list[str], said: str) -> None:
    # An unset shell variable (--duration "$D") must not make a ban permanent.
    owner = await clients.user("alice")
    await owner.command("/create lounge")
    await (await clients.user("bob")).command("/join lounge")
    done = await chatctl(daemon, *args)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "expected one argument" not in done.stderr
    # The daemon refuses an empty one too, whoever asks.
    control = ControlClient(daemon.control.path)
    with pytest.raises(ControlError, match="invalid duration"):
        await control.call("ban", user="bob", room="lounge", duration="")
    assert not daemon.services.rooms.require("lounge").bans
    with pytest.raises(ControlError, match="invalid duration"):  # nor an eternal token
        await control.call("bot-create", name="helper", ttl="")
    assert daemon.services.accounts.find("helper") is None
