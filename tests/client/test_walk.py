"""Lists read whole are read every page: ChatClient.walk (and what uses it) asks for
each page of /myrooms, /notifications, /rooms ... as ChatClient.members does of /who."""

from __future__ import annotations

from pathlib import Path

from chatd.client import ChatClient
from chatd.client.sdk import Backoff
from chatd.client.tui.complete import Vocabulary
from chatd.client.tui.controller import Controller
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.session import ClientSession
from chatd.client.tui.state import ChatState
from tests.client.test_members import after_first_page
from tests.helpers import PASSWORD, Clients, start_server


async def rooms_of(clients: Clients, name: str, *rooms: str) -> ChatClient:
    client = await clients.user(name)
    for room in rooms:
        await client.command(f"/create {room}")
    return client


async def test_my_rooms_are_every_page_of_myrooms(paged: Clients) -> None:
    alice = await rooms_of(paged, "alice", "r1", "r2", "r3", "gone")
    await alice.command("/leave gone")
    assert (await alice.command("/myrooms"))["pages"] == 2
    now, before = await alice.my_rooms()
    assert [r["name"] for r in now] == ["r1", "r2", "r3"]
    assert [r["name"] for r in before] == ["gone"]


async def test_stickers_walked_are_every_sticker_once(paged: Clients) -> None:
    alice = await paged.user("alice")
    walked = (await alice.walk("/stickers", stickers="name"))["stickers"]
    assert [s["name"] for s in walked] == [s.name for s in paged.server.services.stickers.all()]


async def test_notifications_are_every_page_the_oldest_first(paged: Clients) -> None:
    # A notification that comes between two pages moves the others one page on: the
    # walk saw one twice and counted one fewer than the total, and walks again.
    bob = await paged.user("bob")
    services = paged.server.services
    account = services.accounts.require("bob")
    for n in range(5):
        await services.notifier.notify(account, "test", f"note {n}")

    async def another() -> None:
        await services.notifier.notify(account, "test", "note 5")

    after_first_page(bob, another, "/notifications")
    listed = await bob.notifications()
    assert [n["text"] for n in listed] == [f"note {n}" for n in range(6)]


async def test_the_full_screen_client_opens_the_rooms_of_every_page(
        paged: Clients, tmp_path: Path) -> None:
    # /myrooms' first page only: a room on its second page was closed as one left,
    # and the rooms on the second page of /rooms were never completed.
    await rooms_of(paged, "bob", "b1", "b2", "b3")
    await rooms_of(paged, "alice", "r1", "r2", "r3")
    keyring, _ = Keyring.open(tmp_path / "alice", f"test:{paged.server.port}")
    client = await ChatClient.connect("127.0.0.1", paged.server.port)
    session = ClientSession(client, keyring)
    await session.login("alice", PASSWORD, register=False)
    state = ChatState("alice")
    vocabulary = Vocabulary()
    control = Controller(session, state, vocabulary, None, Backoff(first=0.01, ceiling=0.05))
    await control.start()
    assert {"r1", "r2", "r3"} <= set(state.conversations)
    assert {"r1", "r2", "r3", "b1", "b2", "b3"} <= vocabulary.rooms
    # After a /join or /leave only /myrooms is read again: /rooms, every page of it,
    # once a connection (a room made since is not yet a name to complete).
    await rooms_of(paged, "cat", "c1")
    await control.refresh_rooms()
    assert "c1" not in vocabulary.rooms
    await client.close()


async def test_my_rooms_walked_while_a_room_is_left_are_the_rooms_after(
        paged: Clients) -> None:
    # r1, left after the first page, became a room before on the second: the count came
    # out right, so the walk stood, with r1 both now and before and r3 nowhere (the
    # full-screen client closed r3 as a room left, the page listed it as one).
    await rooms_of(paged, "alice", "r1", "r2", "r3")
    bob = await paged.user("bob")
    for room in ("r1", "r2", "r3"):
        await bob.command(f"/join {room}")
    asked = bob.command
    after_first_page(bob, lambda: asked("/leave r1"), "/myrooms")
    now, before = await bob.my_rooms()
    assert [r["name"] for r in now] == ["r2", "r3"]
    assert [r["name"] for r in before] == ["r1"]


async def test_notifications_say_how_many_were_dropped_once(tmp_path: Path) -> None:
    # The walk read the newest page's dropped, which the server tells once, and kept
    # it from its caller: nobody heard that notifications were lost.
    server = await start_server(tmp_path / "bounded.db", rooms__page_size=2,
                                limits__max_notifications=5)
    clients = Clients(server)
    try:
        bob = await clients.user("bob")
        services = server.services
        account = services.accounts.require("bob")
        for n in range(8):  # three past the bound
            await services.notifier.notify(account, "test", f"note {n}")

        async def another() -> None:  # one more dropped, after the first page took 3
            await services.notifier.notify(account, "test", "note 8")

        # The walk is walked again (a notification moved the pages): the count its
        # first walk took is kept, and the second walk's is added.
        after_first_page(bob, another, "/notifications")
        listed = await bob.notifications()
        assert [n["text"] for n in listed] == [f"note {n}" for n in range(4, 9)]
        assert listed.dropped == 4
        again = await bob.notifications()  # told once
        assert (len(again), again.dropped) == (5, 0)
    finally:
        await clients.close()
        await server.stop()
