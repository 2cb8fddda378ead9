"""End to end with a real terminal IRC client: Debian's irssi, driven in tmux.

irssi connects as a guest and, with ``rooms.creation: everyone``, joins a
channel that does not exist: the room is made and irssi shows its user as
the channel's operator. It syncs the channel (its MODE, WHO and ban-list
queries), talks with a line-protocol user both ways, sets a key and a member
limit (the line-protocol user sees the modes, and a join without the key is
refused), gives that user operator, kicks another member, and after
reconnecting (refused without the key, then let in with it) fills the gap
with CHATHISTORY. A second test joins a room a line-protocol user made and
changes the guest's nick.

irssi paces its own commands (``cmd_queue_speed``, 2.2 s by default, after a
burst of five), which is most of the "Join to #lobby was synced in N secs"
an irssi user sees on any server; the tests turn that pacing off so the time
irssi reports is the server's.

irssi and tmux come from Debian (scripts/test installs them). Where they are
missing the tests are skipped, except in CI (``CI=true``), where a missing
program is a failure: CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.helpers import ChatServer, Clients, error_of
from tests.services import unavailable

pytestmark = pytest.mark.server(accounts__guests=True)

WAIT = 15.0  # seconds for any one step
PROGRAMS = ("irssi", "tmux")
# irssi sends its three channel queries one at a time, each on a tick of the
# 500 ms timer that drains its command queue, so even with every answer at
# once a sync takes 1-1.5 s, which it reports in whole seconds: 1 or 2.
SYNC_SECS = 2


def require_programs(programs: tuple[str, ...] = PROGRAMS) -> None:
    """Skip the test when a program is missing; in CI, fail it instead."""
    missing = [program for program in programs if shutil.which(program) is None]
    if not missing:
        return
    unavailable(f"{' and '.join(missing)} (Debian packages)")


class Irssi:
    """One irssi in a tmux session of its own tmux server."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket = f"chatd-irssi-{os.getpid()}-{id(self)}"
        self.env = {**os.environ, "TERM": "xterm", "HOME": str(home)}

    async def tmux(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(process.communicate(), WAIT)
        return out.decode(errors="replace")

    async def start(self) -> None:
        await self.tmux("new-session", "-d", "-s", "irssi", "-x", "200", "-y", "50",
                        f"irssi --home={self.home / 'irssi'} -n visitor")

    async def type(self, line: str) -> None:
        await self.tmux("send-keys", "-t", "irssi", "-l", line)
        await self.tmux("send-keys", "-t", "irssi", "Enter")

    async def screen(self) -> str:
        """Everything irssi has shown in its current window (with its scrollback)."""
        return await self.tmux("capture-pane", "-p", "-J", "-t", "irssi", "-S", "-500")

    async def shows(self, pattern: str) -> re.Match[str]:
        """Wait until the screen matches ``pattern``."""
        async with asyncio.timeout(WAIT):
            while True:
                found = re.search(pattern, await self.screen())
                if found is not None:
                    return found
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self.tmux("kill-server")


@pytest.fixture
async def irssi(tmp_path: Path) -> AsyncIterator[Irssi]:
    require_programs()
    client = Irssi(tmp_path)
    await client.start()
    yield client
    await client.stop()


async def _until(check: Callable[[], bool]) -> None:
    """Poll the server's state (it changes on irssi's time, with no event to await)."""
    async with asyncio.timeout(WAIT):
        while True:
            if check():
                return
            await asyncio.sleep(0.1)


async def _connect(server: ChatServer, irssi: Irssi, nick: str = "visitor") -> None:
    assert server.irc is not None
    guests = server.irc.front.guests
    await irssi.type(f"/connect 127.0.0.1 {server.irc.port}")
    await _until(lambda: guests.find(nick) is not None)


@pytest.mark.server(accounts__guests=True, rooms__creation="everyone")
async def test_irssi_makes_a_channel_keys_it_kicks_and_catches_up(
        server: ChatServer, clients: Clients, irssi: Irssi) -> None:
    assert server.irc is not None
    guests, rooms = server.irc.front.guests, server.services.rooms
    alice = await clients.user("alice")
    await irssi.type("/set cmd_queue_speed 0")
    await _connect(server, irssi)

    # A new channel: the room is made, and its maker is shown as an operator.
    await irssi.type("/join #newroom")
    synced = await irssi.shows(r"Join to #newroom was synced in (\d+) secs")
    assert int(synced.group(1)) <= SYNC_SECS
    # irssi asks for multi-prefix: the owner's ~ shows, and irssi counts it an operator.
    await irssi.shows(r"\[~visitor\]")
    await irssi.shows(r"#newroom: Total of 1 nicks \[1 ops, 0 halfops, 0 voices, 0 normal\]")
    room = rooms.find("newroom")
    visitor = guests.find("visitor")
    assert room is not None and visitor is not None
    owner = room.owner
    assert owner is not None and owner.user_id == visitor.id

    await alice.command("/join newroom")
    await irssi.shows(r"alice \[alice@chatd\.local\] has joined #newroom")
    await irssi.type("hello from irssi")
    said = await alice.next_event(lambda e: e.get("type") == "message")
    assert (said["from"], said["room"], said["text"]) == ("visitor", "newroom",
                                                          "hello from irssi")
    await alice.command("/switch newroom")
    await alice.say("hi irssi, alice here")
    await irssi.shows(r"<.?alice> hi irssi, alice here")

    # A key and a member limit, seen by the line-protocol member.
    await irssi.type("/mode #newroom +kl sesame 5")
    modes = await alice.next_event(lambda e: e.get("event") == "modes")
    assert (modes["actor"], modes["changes"], modes["key"], modes["limit"]) == (
        "visitor", "+kl", "sesame", 5)
    await irssi.shows(r"mode/#newroom \[\+kl sesame 5\] by visitor")
    bob = await clients.user("bob")
    refused = await error_of(bob, "/join newroom")
    assert refused["code"] == "bad-room-key"
    await bob.command("/join newroom sesame")
    await irssi.shows(r"bob \[bob@chatd\.local\] has joined #newroom")

    # Operator for alice (so the room outlives the guest), and a kick.
    await irssi.type("/op alice")
    promoted = await alice.next_event(lambda e: e.get("event") == "promote")
    assert promoted["user"] == "alice"
    await irssi.type("/kick bob enough")
    kicked = await bob.next_event(lambda e: e.get("event") == "kick")
    assert (kicked["user"], kicked["actor"], kicked["reason"]) == ("bob", "visitor", "enough")
    await irssi.shows(r"bob was kicked from #newroom by visitor \[enough\]")
    assert not room.is_member(server.services.accounts.require("bob").id)

    # Gone, a message meanwhile, back: refused without the key, in with it, and
    # the gap comes from CHATHISTORY.
    await irssi.type("/disconnect")
    await _until(lambda: guests.find("visitor") is None)
    assert rooms.find("newroom") is room
    await alice.say("you missed this")
    await _connect(server, irssi)
    await irssi.type("/join #newroom")
    await irssi.shows(r"Cannot join to channel #newroom \(Bad channel key\)")
    await irssi.type("/join #newroom sesame")
    await irssi.shows(r"Join to #newroom was synced")
    await irssi.type("/quote CHATHISTORY LATEST #newroom * 5")
    await irssi.shows(r"<.?alice> you missed this")


async def test_irssi_as_a_guest(server: ChatServer, clients: Clients, irssi: Irssi) -> None:
    assert server.irc is not None
    alice = await clients.user("alice")
    await alice.command("/create lobby")
    await alice.command("/topic lobby welcome, irssi")
    guests = server.irc.front.guests
    await irssi.type("/set cmd_queue_speed 0")
    await irssi.type(f"/connect 127.0.0.1 {server.irc.port}")
    await _until(lambda: guests.find("visitor") is not None)

    await irssi.type("/join #lobby")
    joined = await alice.next_event(lambda e: e.get("event") == "join")
    assert joined["user"] == "visitor"
    synced = await irssi.shows(r"Join to #lobby was synced in (\d+) secs")
    assert int(synced.group(1)) <= SYNC_SECS
    await irssi.shows(r"welcome, irssi")

    await irssi.type("hello from irssi")
    said = await alice.next_event(lambda e: e.get("type") == "message")
    assert (said["from"], said["text"]) == ("visitor", "hello from irssi")
    await alice.say("hi irssi, alice here")
    await irssi.shows(r"<.?alice> hi irssi, alice here")

    await irssi.type("/nick wanderer")
    renamed = await alice.next_event(lambda e: e.get("event") == "rename")
    assert renamed["name"] == "wanderer"
    await irssi.shows(r"You're now known as wanderer")

    # Gone, a message meanwhile, back: the gap comes from CHATHISTORY.
    await irssi.type("/disconnect")
    await _until(lambda: guests.find("wanderer") is None)
    await alice.say("you missed this")
    await irssi.type(f"/connect 127.0.0.1 {server.irc.port}")
    await _until(lambda: guests.find("visitor") is not None)
    await irssi.type("/join #lobby")
    await irssi.shows(r"Join to #lobby was synced")
    await irssi.type("/quote CHATHISTORY LATEST #lobby * 5")
    await irssi.shows(r"<.?alice> you missed this")


@pytest.mark.server(accounts__guests=True, rooms__creation="everyone")
async def test_irssi_bans_with_its_own_ban_command(
        server: ChatServer, clients: Clients, irssi: Irssi) -> None:
    """irssi's /ban nick sends MODE +b *!*user@host (its ban_type "normal"), made
    from the mask the member joined with: chatd bans that member, and irssi shows
    the ban as chatd keeps it. (A guest owner's ban of an account, too: its row
    once named the guest, an id no account has, and was refused.)"""
    alice = await clients.user("alice")
    await irssi.type("/set cmd_queue_speed 0")
    await _connect(server, irssi)
    await irssi.type("/join #banroom")
    await irssi.shows(r"Join to #banroom was synced")
    await alice.command("/join banroom")
    await irssi.shows(r"alice \[alice@chatd\.local\] has joined #banroom")
    await irssi.type("/ban alice")
    banned = await alice.next_event(lambda e: e.get("event") == "ban")
    assert (banned["user"], banned["actor"]) == ("alice", "visitor")
    await irssi.shows(r"mode/#banroom \[\+b alice!\*@\*\] by visitor")
    await irssi.shows(r"alice was kicked from #banroom by visitor")


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_program_fails_in_ci_and_is_skipped_elsewhere(
        monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(shutil, "which", lambda program: None if program == "tmux" else "/x")
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="needs tmux"):
        require_programs()
    monkeypatch.setattr(shutil, "which", lambda program: f"/usr/bin/{program}")
    require_programs()  # nothing missing: nothing happens
