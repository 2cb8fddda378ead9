"""The real chatd-client program in a real terminal (tmux), against a real server.

The test types with ``tmux send-keys`` and reads the screen with
``tmux capture-pane``, as a person at the keyboard would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.client.helpers import said
from tests.helpers import PASSWORD, ChatServer, Clients
from tests.services import needed

# Skipped without tmux, except in CI, where scripts/test installs it and its absence fails.
pytestmark = needed(shutil.which("tmux") is not None, "tmux (scripts/test installs it)")
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class Tmux:
    """One tmux server of our own (its own socket), one window running the client."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)

    async def tmux(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-S", self.socket, *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    async def start(self, command: list[str], env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        line = f"env {exports} {' '.join(command)}; echo EXITED $?; sleep 60"
        await self.tmux("new-session", "-d", "-x", "100", "-y", "24", line)

    async def keys(self, *keys: str) -> None:
        await self.tmux("send-keys", *keys)

    async def type(self, text: str) -> None:
        await self.tmux("send-keys", "-l", text)

    async def screen(self) -> str:
        return await self.tmux("capture-pane", "-p")

    async def shows(self, text: str) -> str:
        shown = ""

        async def look() -> bool:
            nonlocal shown
            shown = await self.screen()
            return text in shown

        for _ in range(200):  # ten seconds
            if await look():
                return shown
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} never shown; the screen:\n{shown}")

    async def input_line(self) -> str:
        return [row for row in (await self.screen()).splitlines() if row.strip()][-1]

    async def close(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-S", self.socket, "kill-server", stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()


@pytest.fixture
async def terminal(tmp_path: Path) -> AsyncIterator[Tmux]:
    # A short socket path: Unix socket paths are limited to about 100 bytes.
    made = Tmux(Path("/tmp") / f"chatd-test-{uuid.uuid4().hex[:12]}.sock")
    yield made
    await made.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(made.socket)


async def test_a_person_chats_in_the_full_screen_client(
        server: ChatServer, clients: Clients, terminal: Tmux, tmp_path: Path) -> None:
    bob = await clients.user("bob")
    await bob.command("/create general")
    await bob.command("/create dev")
    env = {"HOME": str(tmp_path), "CHATD_PASSWORD": PASSWORD, "PYTHONPATH": PROJECT_ROOT,
           "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "")}
    await terminal.start([sys.executable, "-m", "chatd.client.tui.app", "127.0.0.1",
                          str(server.port), "--user", "alice", "--register"], env)
    await terminal.shows("alice · connected")
    await terminal.type("/join dev")
    await terminal.keys("Enter")
    await terminal.shows("#dev>")
    await terminal.type("/jo")  # Tab completes the command from the server's /help
    await terminal.keys("Tab")
    # The completion itself, not "/join dev" still on the input line. Keys typed
    # before it is drawn are typed over it: prompt_toolkit drops a completion whose
    # line changed while it was being made, and the line stays "/jogene".
    await terminal.shows("#dev> /join")
    await terminal.type("gene")
    await terminal.keys("Tab")
    await terminal.shows("/join general")
    await terminal.keys("Enter")
    await terminal.shows("#general>")

    await terminal.type("abc")  # Left, Left, X edits the line
    await terminal.keys("Left", "Left")
    await terminal.type("X")
    await terminal.shows("#general> aXbc")
    await bob.command("/say general hello from bob")  # arrives while alice types
    await terminal.shows("<bob> hello from bob")
    assert (await terminal.input_line()).endswith("#general> aXbc")  # not overwritten
    await terminal.keys("Enter")
    assert (await said(bob, "aXbc"))["text"] == "aXbc"  # no escape codes reached the room
    await terminal.keys("Up")  # Up recalls it
    await terminal.shows("#general> aXbc")
    await terminal.keys("C-u")

    await bob.command("/say dev alice: a question for you")  # the room list counts it
    screen = await terminal.shows("#dev (1!)")
    assert "<bob> alice: a question" not in screen  # #general is on screen, not #dev
    await terminal.keys("M-2")
    await terminal.shows("<bob> alice: a question for you")

    await terminal.type("/quit")
    await terminal.keys("Enter")
    await terminal.shows("EXITED 0")
