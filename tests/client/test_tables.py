"""chatd-client draws a list reply as the server's text mode draws it: the same
columns, cells and alignment, from the JSON reply (only times are local there)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chatd.client import ChatClient
from chatd.client.tui.lines import from_ok
from chatd.client.tui.paint import fragments
from tests.content import text_file, upload
from tests.helpers import PASSWORD, Clients, text_client, text_run

LISTS = ("/rooms", "/who", "/myrooms", "/files", "/myfiles", "/conversations",
         "/requests club", "/stickers", "/notifications", "/keys room", "/token list",
         "/bot list", "/bot tokens helper", "/webhook list", "/audit", "/blocks")
KEY = "A" * 43 + "="


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC: the client's dates read as the server's."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def something_in_every_list(clients: Clients) -> ChatClient:
    """root, a server admin, with a row in each of LISTS."""
    services = clients.server.services
    await services.accounts.create("root", PASSWORD, is_admin=True)
    root, bob = await clients.user("root"), await clients.user("bob")
    await root.command("/create club request")
    await bob.command("/join club")
    await root.command("/create ended")
    await root.command("/leave ended")
    await root.command("/create general")
    await bob.command("/join general")
    await root.command("/msg bob hi")
    await clients.user("carol")
    await root.command("/block carol")
    assert (await upload(root, "a.txt", text_file(), room="general")).ok
    await root.command("/token create t1")
    await root.command("/bot create helper")
    await root.command("/webhook create hook general")
    await root.command(f"/keys publish {KEY}")
    await services.notifier.notify(services.accounts.require("root"), "test", "a note")
    return root


async def test_every_list_is_the_table_text_mode_draws(clients: Clients, utc: None) -> None:
    root = await something_in_every_list(clients)
    text = await text_client(clients, "root")
    await text_run(text, "/switch general")
    for line in LISTS:
        drawn = [row for row in await text_run(text, line) if not row.startswith("* ")]
        [table] = [shown for shown in from_ok((await root.command(line)).final)
                   if shown.kind == "table"]
        # The server's time columns say (UTC); the client's, in local time, do not.
        heads = [head for head in drawn[0].split("  ") if head.strip()]
        said = {head.strip().removesuffix(" (UTC)"): head.strip() for head in heads}
        rows = (tuple(said[head] for head in table.rows[0]), *table.rows[1:])
        [(_, painted)] = fragments(type(table)("table", "", rows=rows, right=table.right), None)
        assert painted.split("\n") == drawn, line


async def test_myrooms_is_one_table_of_the_rooms_now_and_before(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create ended")
    await alice.command("/leave ended")
    await alice.command("/create general")
    [table, said] = from_ok((await alice.command("/myrooms")).final)
    assert table.rows[0] == ("id", "room", "role", "state")
    assert [row[1:] for row in table.rows[1:]] == [("general", "owner", "member now"),
                                                   ("ended", "", "terminated")]
    assert table.right == (0,) and said.text == "1 room now, 1 before."
