"""Who may list, download and remove a room's files."""

from __future__ import annotations

from tests.content import blob_paths, member_of, text_file, upload
from tests.governance import error_of, server_admin, users
from tests.helpers import ChatServer, Clients


async def test_only_members_list_and_download(server: ChatServer, clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await member_of(alice, "dev", bob)
    file_id = (await upload(alice, "a.txt", text_file(), "dev"))["file_id"]
    assert (await error_of(carol, "/files dev"))["code"] == "not-in-room"
    assert (await error_of(carol, f"/download {file_id}"))["code"] == "not-in-room"
    assert (await error_of(carol, "/download 999"))["code"] == "no-such-file"
    assert (await bob.command("/files dev"))["files"][0]["id"] == file_id
    await bob.command("/leave dev")
    assert (await error_of(bob, f"/download {file_id}"))["code"] == "not-in-room"
    root = await server_admin(server, clients)
    assert (await root.command(f"/download {file_id}")).ok


async def test_rmfile_by_uploader_room_admin_or_server_admin(server: ChatServer,
                                                             clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await member_of(alice, "dev", bob, carol)
    first = (await upload(bob, "a.txt", text_file(3), "dev"))["file_id"]
    second = (await upload(bob, "b.txt", text_file(4), "dev"))["file_id"]
    third = (await upload(carol, "c.txt", text_file(5), "dev"))["file_id"]
    assert (await error_of(carol, f"/rmfile {first}"))["code"] == "not-permitted"
    assert (await error_of(carol, "/rmfile 999"))["code"] == "no-such-file"
    assert (await bob.command(f"/rmfile {first}"))["file_id"] == first      # the uploader
    assert (await alice.command(f"/rmfile {second}"))["file_id"] == second  # the room owner
    root = await server_admin(server, clients)
    assert (await root.command(f"/rmfile {third}")).ok                      # a server admin
    assert (await alice.command("/files dev"))["files"] == []
    assert blob_paths(server) == []


async def test_a_promoted_admin_may_remove_files(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await member_of(alice, "dev", bob, carol)
    await alice.command("/promote bob dev")
    file_id = (await upload(carol, "c.txt", text_file(), "dev"))["file_id"]
    assert (await bob.command(f"/rmfile {file_id}")).ok
    assert (await error_of(bob, f"/download {file_id}"))["code"] == "no-such-file"


async def test_a_post_token_removes_its_own_files_and_only_a_moderate_one_others(
        clients: Clients) -> None:
    # Removing someone else's file is governing the room (the owner's right), which
    # a token grants with the moderate scope only: post is acting for oneself.
    alice, bob = await users(clients, "alice", "bob")
    await member_of(alice, "dev", bob)
    theirs = (await upload(bob, "b.txt", text_file(3), "dev"))["file_id"]
    mine = (await upload(alice, "a.txt", text_file(4), "dev"))["file_id"]

    poster = await clients.anonymous()
    await poster.command(f"/auth {(await alice.command('/token create p read,post'))['token']}")
    refused = await error_of(poster, f"/rmfile {theirs}")
    assert refused["code"] == "scope" and refused["scope"] == "moderate"
    assert {f["id"] for f in (await alice.command("/files dev"))["files"]} == {theirs, mine}
    assert (await poster.command(f"/rmfile {mine}"))["file_id"] == mine

    moderator = await clients.anonymous()
    await moderator.command(
        f"/auth {(await alice.command('/token create m read,post,moderate'))['token']}")
    assert (await moderator.command(f"/rmfile {theirs}"))["file_id"] == theirs
    assert (await alice.command("/files dev"))["files"] == []


async def test_a_secret_rooms_files_are_no_files_to_strangers(clients: Clients) -> None:
    # File ids count up from 1: a refusal naming the file's room would tell a stranger
    # trying each id the name of every secret room, which its own id hides.
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await member_of(alice, "den", bob)
    await alice.command("/mode +s den")
    file_id = (await upload(alice, "a.txt", text_file(), "den"))["file_id"]
    missing = await error_of(carol, "/download 999")
    for line in (f"/download {file_id}", f"/rmfile {file_id}"):
        refused = await error_of(carol, line)
        assert refused["code"] == "no-such-file"
        assert refused["message"] == missing["message"].replace("999", str(file_id))
        assert "den" not in refused["message"]
    assert (await bob.command(f"/download {file_id}")).ok  # members still have it
    await alice.command("/mode -s den")
    assert (await error_of(carol, f"/download {file_id}"))["code"] == "not-in-room"
