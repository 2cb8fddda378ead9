"""Room modes over the line protocol: keys, member limits, moderation with voice,
secret rooms, n and t as toggles; their events, audit entries and races."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatd.domain.clock import ManualClock
from tests.content import text_file, upload
from tests.governance import (
    code_of,
    drain,
    error_of,
    listed,
    members_of,
    room_with,
    server_admin,
    settle,
    users,
)
from tests.helpers import ChatServer, Clients, start_server, text_client, text_run

ROUNDS = 20


async def test_mode_shows_and_changes_the_modes(server: ChatServer, clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    shown = await alice.command("/mode")
    assert (shown["mode"], shown["modes"], shown["limit"]) == ("open", "+nt", None)
    assert shown.get("key") is None
    changed = await alice.command("/mode +kl-t hunter2 5 dev")
    assert (changed["changes"], changed["arguments"]) == ("+kl-t", ["hunter2", "5"])
    assert (changed["modes"], changed["key"], changed["limit"]) == ("+nkl", "hunter2", 5)
    event = (await bob.next_event(lambda e: e.get("event") == "modes"))
    assert (event["actor"], event["changes"], event["arguments"], event["key"]) == (
        "alice", "+kl-t", ["hunter2", "5"], "hunter2")
    assert event["summary"] == ("a key is needed to join, at most 5 members, any member "
                                "may set the topic")
    # Members see the key; nothing changes when nothing would.
    assert (await bob.command("/mode dev"))["key"] == "hunter2"
    again = await alice.command("/mode +k hunter2")
    assert again["changes"] == "" and again.final["message"] == "#dev: nothing changed."
    room = server.services.rooms.find("dev")
    assert room is not None and room.modes.limit == 5
    [stored] = [r for r in await server.services.storage.load_active_rooms()
                if r.name == "dev"]
    assert (stored.key, stored.member_limit, stored.topic_lock) == ("hunter2", 5, False)
    entries = [e for e in await server.services.audit.entries(20, room) if e.action == "modes"]
    assert [(e.actor, e.reason) for e in entries] == [("alice", "+kl-t * 5")]


async def test_mode_refusals_have_stable_codes(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    cases = [(bob, "/mode +m dev", "not-permitted"),
             (alice, "/mode +k", "bad-arguments"),
             (alice, "/mode +k a,b", "bad-arguments"),
             (alice, "/mode +l many", "bad-arguments"),
             (alice, "/mode +x", "bad-arguments"),
             (alice, "/mode +v", "bad-arguments"),
             (alice, "/mode +v nobody", "no-such-user"),
             (alice, "/mode +m dev extra", "bad-arguments"),
             (alice, "/mode nowhere", "no-such-room"),
             (bob, "/mode +i dev", "not-permitted")]
    for client, line, code in cases:
        assert await code_of(client, line) == code, line
    # A refused mode string changes nothing, not even its good letters.
    assert (await alice.command("/mode dev"))["modes"] == "+nt"
    lonely = await clients.user("carol")
    assert (await error_of(lonely, "/mode"))["code"] == "no-room"


async def test_the_room_may_come_first_as_irc_writes_it(clients: Clients) -> None:
    """``/mode dev +m`` (IRC's MODE #dev +m) is the same as ``/mode +m dev``; a first
    word that is itself a mode is never taken for the room."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/create other")  # the current room is no longer dev
    assert (await alice.command("/mode dev +m"))["modes"] == "+ntm"
    voiced = await alice.command("/mode #dev -m+v bob")
    assert (voiced["room"], voiced["changes"], voiced["arguments"]) == ("dev", "-m+v", ["bob"])
    assert (await alice.command("/mode dev private"))["room"] == "dev"
    assert (await alice.command("/mode dev"))["mode"] == "private"
    assert await code_of(alice, "/mode dev +m extra") == "bad-arguments"
    assert await code_of(alice, "/mode nowhere +m") == "no-such-room"


async def test_a_mode_string_with_a_bad_voice_changes_nothing(clients: Clients) -> None:
    """A +v or -v without a user, or naming nobody, refuses the whole string before
    any of it is applied: no +m, no voice for the user of the letter before."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    for line, code in (("/mode +mv nobody dev", "no-such-user"),
                       ("/mode +vv bob", "bad-arguments"),
                       ("/mode +v-v bob nobody dev", "no-such-user")):
        assert await code_of(alice, line) == code, line
        assert (await alice.command("/mode dev"))["modes"] == "+nt", line
        assert (await members_of(alice, "dev"))["bob"] == "member", line


async def test_a_mode_string_applies_each_v_as_the_letters_before_it_leave_the_roles(
        clients: Clients) -> None:
    """Each v is judged from the role the letters before it leave: -v then +v of a
    voiced member is applied, both letters."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/voice bob dev")
    done = await alice.command("/mode +m-v+v bob bob dev")
    assert done["changes"] == "+m-v+v"
    assert (await members_of(alice, "dev"))["bob"] == "voice"


async def test_a_voice_its_user_has_already_changes_nothing_and_says_so(
        clients: Clients) -> None:
    """+v of a voiced member (and -v of one without voice, twice in a string too) was
    refused as "only a member can be voiced": it is done already, as a second /block
    is, and said so; the string's other letters apply."""
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol)
    await alice.command("/voice bob dev")
    await settle(carol)
    kept = await alice.command("/mode +m+v bob dev")
    assert (kept["changes"], kept["modes"]) == ("+m", "+ntm")
    assert kept.final["message"] == ("#dev: moderated (only voiced members and admins "
                                     "speak); bob already has voice.")
    again = await alice.command("/mode +v bob dev")
    assert (again["changes"], again.final["message"]) == (
        "", "#dev: nothing changed; bob already has voice.")
    twice = await alice.command("/mode -v-v bob bob dev")
    assert twice["changes"] == "-v"
    assert twice.final["message"].endswith("; bob already has no voice.")
    assert (await members_of(alice, "dev"))["bob"] == "member"
    # Only the changes were told: the +m and the one -v.
    told = [e["event"] for e in await settle(carol) if e.get("type") == "event"]
    assert told == ["modes", "devoice"]


async def test_a_voice_of_an_admin_or_the_owner_changes_nothing_and_says_why(
        server: ChatServer, clients: Clients) -> None:
    """/voice of an admin was refused as "only a member can be voiced" (and of the
    owner, or by an admin, as not permitted), though an admin speaks in a moderated
    room already: it changes nothing, as the voice of a voiced member does, and the
    sentence says why. -v of them likewise; a plain member still may not voice."""
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, carol, admins=(carol,))
    root = await server_admin(server, clients)
    room = server.services.rooms.find("dev")
    assert room is not None
    await drain(alice, bob, carol)
    audited = len(await server.services.audit.entries(100, room))
    cases = [(alice, "/voice carol dev", "carol is an admin and already speaks in #dev.",
              "admin"),
             (carol, "/voice carol dev", "carol is an admin and already speaks in #dev.",
              "admin"),
             (carol, "/voice alice dev", "alice is the owner and already speaks in #dev.",
              "owner"),
             (root, "/voice alice dev", "alice is the owner and already speaks in #dev.",
              "owner"),
             (alice, "/devoice carol dev", "carol is an admin and speaks without voice in "
                                           "#dev.", "admin")]
    for actor, line, sentence, role in cases:
        reply = await actor.command(line)
        assert (reply["already"], reply.final["message"], reply["role"]) == (
            True, sentence, role), line
    for watcher in (alice, bob, carol):
        assert [e for e in await settle(watcher) if e.get("type") == "event"] == []
    assert len(await server.services.audit.entries(100, room)) == audited
    assert await members_of(alice, "dev") == {"alice": "owner", "carol": "admin",
                                              "bob": "member"}
    # In a mode string, the other letters apply, and the sentence says why.
    kept = await alice.command("/mode +m+v-v carol carol dev")
    assert (kept["changes"], kept.final["message"]) == (
        "+m", "#dev: moderated (only voiced members and admins speak); carol is an admin "
              "and already speaks; carol is an admin and speaks without voice.")
    assert await code_of(bob, "/voice carol dev") == "not-permitted"
    text = await text_client(clients, "alice")
    assert await text_run(text, "/voice carol dev") == [
        "* carol is an admin and already speaks in #dev."]


async def test_a_mode_string_refused_for_one_letter_changes_nothing(
        clients: Clients) -> None:
    """An admin may set +m but not +i (the owner's), nor voice someone outside the
    room: a string asking for both is refused whole, +m included."""
    alice, bob, _ = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob, admins=(bob,))
    for line, code in (("/mode +m+i dev", "not-permitted"),
                       ("/mode +mv carol dev", "not-in-room")):
        assert await code_of(bob, line) == code, line
        assert (await bob.command("/mode dev"))["modes"] == "+nt", line
    # A letter that would change nothing needs no right, as before.
    assert (await bob.command("/mode +m-i dev"))["changes"] == "+m"


async def test_an_unknown_mode_letter_is_named_before_the_room_is_looked_up(
        clients: Clients) -> None:
    """IRC's habits (+o bob, +b bob) meet letters /mode lacks: the reply names the
    letter, not a room "bob" that the nick after it was taken for."""
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    for line in ("/mode +o bob", "/mode +b bob", "/mode +mx bob"):
        error = await error_of(alice, line)
        assert error["code"] == "bad-arguments", line
        assert error["message"].startswith("unknown mode +"), line
    assert (await alice.command("/mode dev"))["modes"] == "+nt"


async def test_a_key_is_needed_to_join_and_an_invitation_passes_it(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev")
    await alice.command("/mode +k sesame")
    refused = await error_of(bob, "/join dev")
    assert refused["code"] == "bad-room-key"
    assert refused["message"] == ("#dev needs a key to join, and you gave no key: "
                                  "/join dev <key>.")
    assert (await error_of(bob, "/join dev open-up"))["code"] == "bad-room-key"
    assert (await bob.command("/join dev sesame"))["room"] == "dev"
    await alice.command("/invite carol dev")
    assert (await carol.command("/join dev"))["room"] == "dev"
    await alice.command("/mode -k dev")
    dave = await clients.user("dave")
    assert (await dave.command("/join dev"))["room"] == "dev"


async def test_a_key_is_needed_to_ask_to_join_a_request_room(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "club", mode="request")
    await alice.command("/mode +k sesame club")
    assert (await error_of(bob, "/join club"))["code"] == "bad-room-key"
    assert (await bob.command("/join club sesame"))["requested"] is True


async def test_a_full_room_refuses_joins_but_not_invitations(clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob)
    await alice.command("/mode +l 2")
    full = await error_of(carol, "/join dev")
    assert (full["code"], full["limit"]) == ("room-full", 2)
    assert full["message"] == "#dev is full: it takes at most 2 members."
    await alice.command("/invite dave dev")
    assert (await dave.command("/join dev"))["room"] == "dev"
    await alice.command("/mode -l")
    assert (await carol.command("/join dev"))["room"] == "dev"


async def test_a_moderated_room_hears_voice_and_admins_only(server: ChatServer,
                                                            clients: Clients) -> None:
    alice, bob, carol, dave = await users(clients, "alice", "bob", "carol", "dave")
    await room_with(alice, "dev", bob, carol, dave, admins=(dave,))
    await alice.command("/mode +m dev")
    refused = await error_of(bob, "/say dev hello")
    assert refused["code"] == "moderated"
    uploaded = await upload(bob, "a.txt", text_file(), "dev")
    assert uploaded.final["code"] == "moderated"
    await settle(bob)
    await dave.command("/voice bob dev")
    voiced = await carol.next_event(lambda e: e.get("event") == "voice")
    assert (voiced["user"], voiced["actor"], voiced["role"]) == ("bob", "dave", "voice")
    assert (await bob.command("/say dev hello"))["room"] == "dev"
    assert (await dave.command("/say dev admins speak"))["room"] == "dev"
    assert (await members_of(alice, "dev"))["bob"] == "voice"
    # Voice is a role: it outlives a reconnection and is audited; notifications tell it.
    received = await settle(bob)
    assert any(e.get("notification", {}).get("kind") == "voiced" for e in received)
    await alice.command("/mode -v bob dev")
    assert (await error_of(bob, "/say dev again"))["code"] == "moderated"
    assert (await alice.command("/devoice bob dev"))["already"] is True
    assert (await error_of(carol, "/voice bob dev"))["code"] == "not-permitted"
    await alice.command("/voice bob dev")
    # A voiced member may be promoted straight away.
    await alice.command("/promote bob dev")
    assert (await members_of(alice, "dev"))["bob"] == "admin"
    await alice.command("/mode -m dev")
    assert (await carol.command("/say dev free again"))["room"] == "dev"
    room = server.services.rooms.find("dev")
    actions = [e.action for e in await server.services.audit.entries(50, room)]
    assert actions.count("voice") == 2 and "devoice" in actions


async def test_a_secret_room_is_hidden_from_strangers(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "den", bob)
    await alice.command("/mode +s den")
    assert "den" not in await listed(carol)
    assert "den" in await listed(bob)
    assert "den" not in (await carol.command("/whois alice"))["rooms"]
    assert "den" in (await bob.command("/whois alice"))["rooms"]
    assert (await error_of(carol, "/who den"))["code"] == "not-permitted"
    assert (await error_of(carol, "/mode den"))["code"] == "not-permitted"
    # One word for both: the room is secret, not private.
    for line in ("/mode den", "/topic den"):
        assert (await error_of(carol, line))["message"] == "#den is hidden; only members see it."
    # Hidden, not closed: whoever knows the name may join.
    assert (await carol.command("/join den"))["room"] == "den"



async def test_a_stranger_learns_of_a_secret_room_only_that_its_name_is_taken(
        clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    den = await room_with(alice, "den", bob)
    await alice.command("/mode +sl 2 den")
    await alice.command("/topic den the plan")
    await alice.command("/say den psst")
    vault = await room_with(alice, "vault", mode="private")
    await alice.command("/mode +s vault")
    # By name: refused, and nothing of its members, topic or messages is said.
    for line, code in (("/who den", "not-permitted"), ("/topic den", "not-permitted"),
                       ("/mode den", "not-permitted"), ("/history den", "not-in-room"),
                       ("/files den", "not-in-room")):
        error = await error_of(carol, line)
        assert error["code"] == code, (line, error)
        assert not {"alice", "bob", "the plan", "psst", "2"} & set(error["message"].split())
    # Its name is no secret from whoever tries it: /create of it must say it is taken,
    # so /join says what the room asks rather than that there is none.
    assert (await error_of(carol, "/create vault"))["code"] == "name-taken"
    assert (await error_of(carol, "/join vault"))["code"] == "not-permitted"
    # A full secret room does not say how many it takes (its members' count).
    full = await error_of(carol, "/join den")
    assert (full["code"], full["message"], full.get("limit")) == (
        "room-full", "#den is full.", None)
    # By id, a stranger learns not even its name: ids count up from 1, and trying
    # them named every room /rooms hides. As an id no room has.
    nothing = (await error_of(carol, "/who 999 1"))["message"]
    for room_id in (den, vault):
        for line in (f"/who {room_id} 1", f"/join {room_id}", f"/files {room_id} 1",
                     f"/mode {room_id}", f"/say {room_id} hi", f"/keys room {room_id} 1",
                     f"/webhook list {room_id}"):
            error = await error_of(carol, line)
            assert (error["code"], error["message"]) == (
                "no-such-room", nothing.replace("999", str(room_id))), (line, error)
    # Members (and server admins) name it by its id as before.
    assert (await bob.command(f"/who {den} 1"))["room"] == "den"
    assert (await alice.command(f"/mode {vault}"))["room"] == "vault"
    # An invitation to a secret room names it, not its id, to join it with.
    await alice.command("/invite carol vault")
    [invitation] = [e for e in await settle(carol) if e.get("notification")]
    assert "/join vault " in invitation["text"], invitation
    assert (await carol.command("/join vault"))["room"] == "vault"


async def test_an_invitations_room_id_opens_no_secret_room_to_the_invitee(
        clients: Clients) -> None:
    # The invitation to a secret room keeps room_id, as every invitation has it: it
    # tells the invitee nothing the name beside it does not, and by it the room stays
    # an id no room has until they are in.
    alice, carol = await users(clients, "alice", "carol")
    vault = await room_with(alice, "vault", mode="private")
    await alice.command("/mode +s vault")
    await settle(carol)
    await alice.command("/invite carol vault")
    [note] = [e["notification"] for e in await settle(carol) if e.get("notification")]
    assert (note["kind"], note["room"], note["room_id"]) == ("invitation", "vault", vault)
    nothing = (await error_of(carol, "/who 999 1"))["message"]
    for line in (f"/who {vault} 1", f"/join {vault}", f"/files {vault} 1",
                 f"/keys room {vault} 1"):
        error = await error_of(carol, line)
        assert (error["code"], error["message"]) == (
            "no-such-room", nothing.replace("999", str(vault))), (line, error)
    # The invitation is still good (a refused join by id used none of it), by name.
    assert (await carol.command(f"/join {note['room']}"))["id"] == vault
    assert (await carol.command(f"/who {vault} 1"))["room"] == "vault"

async def test_n_and_t_are_toggles(clients: Clients) -> None:
    alice, bob, carol = await users(clients, "alice", "bob", "carol")
    await room_with(alice, "dev", bob)
    assert (await error_of(carol, "/say dev from outside"))["code"] == "not-in-room"
    assert (await error_of(bob, "/topic dev mine"))["code"] == "not-permitted"
    await alice.command("/mode -nt dev")
    assert (await carol.command("/say dev from outside"))["room"] == "dev"
    heard = await bob.next_event(lambda e: e.get("type") == "message")
    assert (heard["from"], heard["text"]) == ("carol", "from outside")
    assert (await bob.command("/topic dev mine"))["topic"] == "mine"
    # An outsider still cannot set the topic, and a ban holds outsiders' messages out.
    assert (await error_of(carol, "/topic dev theirs"))["code"] == "not-permitted"
    await alice.command("/ban carol dev")
    assert (await error_of(carol, "/say dev again"))["code"] == "banned"
    await alice.command("/mode +m dev")
    dave = await clients.user("dave")
    assert (await error_of(dave, "/say dev outside and unvoiced"))["code"] == "moderated"


async def test_mode_letters_for_who_may_join(clients: Clients) -> None:
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    reply = await alice.command("/mode +i")
    assert (reply["mode"], reply["changes"]) == ("private", "+i")
    assert (await alice.command("/mode -R"))["changes"] == ""
    assert (await alice.command("/mode +R-m"))["mode"] == "request"
    assert (await alice.command("/mode -R"))["mode"] == "open"
    kinds = [e["event"] for e in await settle(bob) if e.get("type") == "event"]
    assert kinds.count("mode") == 3


async def test_text_mode_reads_the_modes(clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create dev")
    await alice.command("/mode +kl pw 9")
    text = await text_client(clients, "alice")
    shown = await text_run(text, "/mode dev")
    assert shown[-1] == ("* #dev: open, only members send, only admins set the topic, "
                         "the key is pw, at most 9 members.")
    await text_run(text, "/switch dev")
    changed = await text_run(text, "/mode +m-t")
    assert "* alice changed #dev: moderated (only voiced members and admins speak), any " \
           "member may set the topic" in changed


async def test_joins_racing_a_key_change_are_decided_under_the_lock(server: ChatServer,
                                                                    clients: Clients) -> None:
    """A join sent with the old key while the key changes is let in only if it came
    first; the room never holds a member who passed a key it no longer had."""
    alice, owner, bob = await users(clients, "alice", "alice", "bob")
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room)
        await alice.command(f"/mode +k old {room}")
        joined, changed = await asyncio.gather(code_of(bob, f"/join {room} old"),
                                               code_of(owner, f"/mode +k new {room}"))
        assert changed == "ok"
        live = server.services.rooms.find(room)
        assert live is not None and live.modes.key == "new"
        bob_in = live.is_member(server.services.accounts.require("bob").id)
        assert (joined == "ok") == bob_in and joined in ("ok", "bad-room-key"), number


async def test_joins_racing_for_the_last_place_fill_it_once(server: ChatServer,
                                                            clients: Clients) -> None:
    joiners = await users(clients, "alice", "bob", "carol", "dave", "erin")
    alice, rest = joiners[0], joiners[1:]
    for number in range(ROUNDS):
        room = f"r{number}"
        await room_with(alice, room, rest[0])
        await alice.command(f"/mode +l 3 {room}")
        codes = await asyncio.gather(*(code_of(c, f"/join {room}") for c in rest[1:]))
        assert sorted(codes) == ["ok", "room-full", "room-full"], number
        live = server.services.rooms.find(room)
        assert live is not None and len(live.members) == 3
        for client in rest:
            await settle(client)


async def test_modes_and_voice_survive_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    db_path = tmp_path / "modes.db"
    server = await start_server(db_path, clock=clock)
    clients = Clients(server)
    alice, bob = await users(clients, "alice", "bob")
    await room_with(alice, "dev", bob)
    await alice.command("/mode +kmsl-n key 4 dev")
    await alice.command("/voice bob dev")
    await clients.close()
    await server.stop()

    server = await start_server(db_path, clock=clock)
    clients = Clients(server)
    try:
        alice, bob, carol = await users(clients, "alice", "bob", "carol")
        shown = await alice.command("/mode dev")
        assert (shown["modes"], shown["key"], shown["limit"]) == ("+tklms", "key", 4)
        assert (await members_of(alice, "dev"))["bob"] == "voice"
        assert (await bob.command("/say dev still heard"))["room"] == "dev"
        assert (await error_of(carol, "/join dev"))["code"] == "bad-room-key"
    finally:
        await clients.close()
        await server.stop()
