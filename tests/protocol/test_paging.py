"""Long lists a page at a time: /files, /myfiles and /requests (as /rooms and /who, whose tests
are with the rooms'), and the sums every paged list shares."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.domain.clock import ManualClock
from chatd.protocol.paging import page_of
from tests.content import text_file, upload
from tests.helpers import Clients, error_of, text_client, text_run


async def test_files_of_a_room_are_listed_a_page_at_a_time(paged: Clients) -> None:
    alice = await paged.user("alice")
    await alice.command("/create general")
    for name in ("a.txt", "b.txt", "c.txt"):
        assert (await upload(alice, name, text_file())).ok
    first = await alice.command("/files")
    assert [f["name"] for f in first["files"]] == ["a.txt", "b.txt"]
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 3)
    assert first["message"] == ("3 files in #general; /download <id> gets one; page 1 of 2; "
                                "/files general 2 for more.")
    second = await alice.command("/files general 2")
    assert [f["name"] for f in second["files"]] == ["c.txt"]
    assert second["message"].endswith("page 2 of 2.")
    beyond = await alice.command("/files general 3")
    assert beyond["files"] == [] and beyond["message"].endswith(
        "there are only 2 pages; /files general 1 starts over.")
    text = await paged.raw()
    await text.line()
    await text_run(text, "/login alice secret-pw")
    *rows, summary = await text_run(text, "/files general 2")
    assert [row.split()[1] for row in rows] == ["name", "c.txt"]
    assert summary == "* 3 files in #general; /download <id> gets one; page 2 of 2."


async def test_your_files_are_listed_a_page_at_a_time(paged: Clients) -> None:
    alice = await paged.user("alice")
    await alice.command("/create general")
    for name in ("a.txt", "b.txt", "c.txt"):
        assert (await upload(alice, name, text_file())).ok
    first = await alice.command("/myfiles")
    assert [f["name"] for f in first["files"]] == ["a.txt", "b.txt"]
    assert first["message"].endswith("/rmfile <id> removes one; page 1 of 2; /myfiles 2 for more.")
    second = await alice.command("/myfiles 2")
    assert [f["name"] for f in second["files"]] == ["c.txt"]
    assert (second["page"], second["pages"], second["total"]) == (2, 2, 3)


async def test_join_requests_are_listed_a_page_at_a_time(paged: Clients) -> None:
    alice = await paged.user("alice")
    await alice.command("/create club request")
    for name in ("bob", "carol", "dave"):
        assert (await (await paged.user(name)).command("/join club"))["requested"] is True
    first = await alice.command("/requests club")
    assert [r["user"] for r in first["requests"]] == ["bob", "carol"]
    assert first["message"] == ("3 pending requests for #club; page 1 of 2; "
                                "/requests club 2 for more.")
    second = await alice.command("/requests club 2")
    assert [r["user"] for r in second["requests"]] == ["dave"]
    assert (second["page"], second["pages"], second["total"]) == (2, 2, 3)
    await alice.command("/accept bob club")
    await alice.command("/accept carol club")
    only = await alice.command("/requests club")
    assert only["message"] == "1 pending request for #club."  # one page: no words of pages


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=7))
def test_the_pages_of_a_list_are_the_list(length: int, size: int) -> None:
    items = list(range(length))
    first = page_of(items, 1, size)
    walked = [item for number in range(1, first.pages + 1)
              for item in page_of(items, number, size).items]
    assert walked == items and first.total == length
    assert all(min(1, length) <= len(page_of(items, n, size).items) <= size
               for n in range(1, first.pages + 1))
    past = page_of(items, first.pages + 1, size)
    assert past.items == [] and past.pages == first.pages
    for number in range(1, first.pages + 1):
        said = page_of(items, number, size).said("/list")
        assert (f"/list {number + 1} for more" in said) == (number < first.pages)
    assert ("starts over" in past.said("/list")) == (length > 0)


async def test_a_page_out_of_range_is_called_a_page_not_a_room_id(paged: Clients) -> None:
    # A number before nothing else is the page (a room by id is never taken there):
    # "/who 0" was refused as "there is no room with id 0", while "/who 7", with a
    # room of id 7, is page 7 of the current room, as the docs say.
    alice = await paged.user("alice")
    await alice.command("/create general request")
    text = await paged.raw()
    await text.line()
    await text_run(text, "/login alice secret-pw")
    asked = [(command, word) for command in ("/who", "/files", "/requests")
             for word in ("0", "1000001")]
    for command, word in [*asked, ("/history", "0")]:
        [error] = await text_run(text, f"{command} {word}")
        what = "n" if command == "/history" else "page"
        assert error.startswith(f"! bad-arguments: {what} must be a whole number "), error
        assert f'not "{word}"' in error, error
    # A word that is no number may still be a mistyped room.
    assert (await text_run(text, "/who nosuchroom 2")) == [
        '! no-such-room: there is no room "nosuchroom". /rooms lists the rooms you can join.']


async def test_a_room_by_its_id_is_followed_by_the_page(paged: Clients) -> None:
    # /who <id> listed the room of that id until /who took a page; since then a lone
    # number is the page, and "/who 7 1" was too many arguments: no room could be
    # named by its id. Two numbers are the room's id and the page, as /audit 7 50.
    alice = await paged.user("alice")
    await alice.command("/create club request")
    room = (await alice.command("/create general"))["id"]
    assert (await alice.command("/switch club"))["room"] == "club"
    for name in ("bob", "carol"):
        await (await paged.user(name)).command("/join general")
    assert (await upload(alice, "a.txt", text_file(), room="general")).ok
    who = await alice.command(f"/who {room} 2")
    assert (who["room"], [m["user"] for m in who["members"]]) == ("general", ["carol"])
    assert (await alice.command(f"/files {room} 1"))["room"] == "general"
    assert (await alice.command(f"/requests {room} 1"))["room"] == "general"
    # A lone number is still the page, of the current room.
    alone = await alice.command(f"/who {room}")
    assert (alone["room"], alone["page"]) == ("club", room)
    assert [m["user"] for m in await alice.members(str(room))] == ["alice", "bob", "carol"]
    assert (await error_of(alice, "/who 999 1"))["message"].startswith(
        "there is no room with id 999.")


async def test_your_files_name_a_live_room_you_left_long_ago(paged: Clients) -> None:
    # /myfiles named rooms from what you joined, which housekeeping forgets 30 days
    # after you left (association_retention): a file in a room that lives on,
    # counting against your quota, was shown in no room ("-", room null).
    alice = await paged.user("alice")
    bob = await paged.user("bob")
    await alice.command("/create general")
    await bob.command("/join general")
    assert (await upload(bob, "b.txt", text_file(), room="general")).ok
    await bob.command("/leave general")
    server = paged.server
    clock = server.services.clock
    assert isinstance(clock, ManualClock)
    clock.advance(31 * 86400)
    assert (await server.housekeeping.run_once())["associations_deleted"] == 1
    [listed] = (await bob.command("/myfiles"))["files"]
    assert (listed["name"], listed["room"], listed["room_ended"]) == ("b.txt", "general", False)


async def test_your_rooms_are_listed_a_page_at_a_time(paged: Clients) -> None:
    # The rooms you are in come first, then those you were in: a page may hold both.
    alice = await paged.user("alice")
    for room in ("r1", "r2", "r3"):
        await alice.command(f"/create {room}")
    await alice.command("/leave r3")
    first = await alice.command("/myrooms")
    assert [r["name"] for r in first["rooms"]] == ["r1", "r2"] and first["past"] == []
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 3)
    assert first["message"] == "2 rooms now, 1 before; page 1 of 2; /myrooms 2 for more."
    second = await alice.command("/myrooms 2")
    assert second["rooms"] == [] and [r["name"] for r in second["past"]] == ["r3"]
    assert second["message"] == "2 rooms now, 1 before; page 2 of 2."
    text = await text_client(paged, "alice")
    *rows, summary = await text_run(text, "/myrooms 2")
    assert [row.split()[:2] for row in rows] == [["id", "room"], ["3", "r3"]]
    assert summary == "* 2 rooms now, 1 before; page 2 of 2."


async def test_conversations_are_listed_a_page_at_a_time(paged: Clients) -> None:
    alice = await paged.user("alice")
    for name in ("bob", "carol", "dave"):
        await paged.user(name)
        await alice.command(f"/msg {name} hi")
    first = await alice.command("/conversations")
    assert [c["user"] for c in first["conversations"]] == ["dave", "carol"]
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 3)
    assert first["message"] == "3 conversations; page 1 of 2; /conversations 2 for more."
    second = await alice.command("/conversations 2")
    assert [c["user"] for c in second["conversations"]] == ["bob"]
    assert second["message"] == "3 conversations; page 2 of 2."


async def test_stickers_are_listed_a_page_at_a_time(paged: Clients) -> None:
    alice = await paged.user("alice")
    offered = sorted(s.name for s in paged.server.services.stickers.all())
    first = await alice.command("/stickers")
    pages = (len(offered) + 1) // 2
    assert (first["page"], first["pages"], first["total"]) == (1, pages, len(offered))
    assert first["message"] == (f"{len(offered)} stickers; /sticker <name> [room] posts one; "
                                f"page 1 of {pages}; /stickers 2 for more.")
    walked = [s["name"] for page in range(1, pages + 1)
              for s in (await alice.command(f"/stickers {page}"))["stickers"]]
    assert sorted(walked) == offered
    beyond = await alice.command(f"/stickers {pages + 1}")
    assert beyond["stickers"] == [] and beyond["message"].endswith(
        f"there are only {pages} pages; /stickers 1 starts over.")


async def test_notifications_are_listed_a_page_at_a_time_the_newest_first(
        paged: Clients) -> None:
    # Page 1 holds the newest; each page reads oldest first, as a transcript does.
    bob = await paged.user("bob")
    services = paged.server.services
    for n in range(5):
        await services.notifier.notify(services.accounts.require("bob"), "test", f"note {n}")
    first = await bob.command("/notifications")
    assert [n["text"] for n in first["notifications"]] == ["note 3", "note 4"]
    assert (first["page"], first["pages"], first["total"]) == (1, 3, 5)
    assert first["message"] == ("5 notifications; /notifications clear clears them; "
                                "page 1 of 3; /notifications 2 for more.")
    assert [n["text"] for n in (await bob.command("/notifications 2"))["notifications"]] == [
        "note 1", "note 2"]
    last = await bob.command("/notifications 3")
    assert [n["text"] for n in last["notifications"]] == ["note 0"]
    assert last["message"].endswith("page 3 of 3.")
    assert (await error_of(bob, "/notifications clear 2"))["code"] == "bad-arguments"
    assert (await bob.command("/notifications clear"))["cleared"] == 5
    assert (await bob.command("/notifications"))["message"] == "No notifications."


async def test_a_page_out_of_range_of_the_newly_paged_lists_is_refused_as_a_page(
        paged: Clients) -> None:
    # The page is refused as /who's and /files' are, with the usage, never as an
    # argument too many (and /notifications' number is no mistyped "clear").
    alice = await paged.user("alice")
    text = await text_client(paged, "alice")
    for command in ("/myrooms", "/conversations", "/stickers", "/notifications"):
        for word in ("0", "1000001"):
            [error] = await text_run(text, f"{command} {word}")
            assert error.startswith(f"! bad-arguments: page must be a whole number from 1 to "
                                    f'1,000,000, not "{word}". Usage: {command} '), error
        assert (await error_of(alice, f"{command} 0"))["code"] == "bad-arguments"


KEY = "A" * 43 + "="


async def test_a_rooms_keys_are_listed_a_page_at_a_time(paged: Clients) -> None:
    # /keys room lists the members by name, with a key or without, as /who pages them.
    alice = await paged.user("alice")
    room = (await alice.command("/create dev"))["id"]
    for name in ("bob", "carol", "dave"):
        await (await paged.user(name)).command("/join dev")
    await alice.command(f"/keys publish {KEY}")
    await (await paged.user("carol")).command(f"/keys publish {KEY}")
    first = await alice.command("/keys room")
    assert ([k["user"] for k in first["keys"]], first["missing"]) == (["alice"], ["bob"])
    assert (first["page"], first["pages"], first["total"], first["room"]) == (1, 2, 4, "dev")
    assert first["message"] == ("#dev: 2 keys, 2 members without one (on this page: bob); "
                                "page 1 of 2; /keys room dev 2 for more.")
    second = await alice.command(f"/keys room {room} 2")
    assert ([k["user"] for k in second["keys"]], second["missing"]) == (["carol"], ["dave"])
    assert second["message"].endswith("page 2 of 2.")
    beyond = await alice.command("/keys room 3")  # a lone number is the page
    assert (beyond["keys"], beyond["missing"]) == ([], [])
    assert beyond["message"].endswith("there are only 2 pages; /keys room dev 1 starts over.")
    walked = await alice.walk("/keys room dev", keys="user", missing="user")
    assert ([k["user"] for k in walked["keys"]], walked["missing"]) == (
        ["alice", "carol"], ["bob", "dave"])
    text = await text_client(paged, "alice")
    *rows, summary = await text_run(text, "/keys room dev 2")
    assert [row.split()[0] for row in rows] == ["user", "carol"]
    assert summary == "* #dev: 2 keys, 2 members without one (on this page: dave); page 2 of 2."
    [refused] = await text_run(text, "/keys room dev 0")
    assert refused.startswith('! bad-arguments: page must be a whole number from 1 to '
                              '1,000,000, not "0". Usage: /keys room [room] [page]'), refused


async def test_a_room_of_one_page_lists_its_keys_as_before(paged: Clients) -> None:
    alice = await paged.user("alice")
    await alice.command("/create dev")
    await (await paged.user("bob")).command("/join dev")
    await alice.command(f"/keys publish {KEY}")
    listed = await alice.command("/keys room dev")
    assert listed["message"] == "#dev: 1 key; without a key: bob."
    assert (listed["page"], listed["pages"], listed["total"]) == (1, 1, 2)


async def test_a_server_admins_bots_are_listed_a_page_at_a_time(paged: Clients) -> None:
    services = paged.server.services
    await services.accounts.create("root", "secret-pw", is_admin=True)
    root = await paged.user("root")
    for name in ("bot-c", "bot-a"):
        await root.command(f"/bot create {name}")
    await (await paged.user("alice")).command("/bot create bot-b")
    first = await root.command("/bot list")
    assert [b["user"] for b in first["bots"]] == ["bot-a", "bot-b"]
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 3)
    assert first["message"] == "3 bots; page 1 of 2; /bot list 2 for more."
    second = await root.command("/bot list 2")
    assert [(b["user"], b["owner"]) for b in second["bots"]] == [("bot-c", "root")]
    assert second["message"] == "3 bots; page 2 of 2."
    text = await text_client(paged, "root")
    [refused] = await text_run(text, "/bot list 0")
    assert refused.startswith('! bad-arguments: page must be a whole number from 1 to '
                              '1,000,000, not "0". Usage: /bot list [page]'), refused
