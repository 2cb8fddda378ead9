"""The HTTP API, route by route, through a real HTTP client."""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

import commands
from chatd.domain.clock import ManualClock
from chatd.web.api import api_routes
from chatd.web.links import LinkSigner
from tests.helpers import PASSWORD, ChatServer, Clients, settle, text_client, text_run
from tests.irc.helpers import IrcClient
from tests.web.helpers import http, token_for


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def den_with_alice(server: ChatServer, clients: Clients) -> tuple[str, object]:
    """alice (a TCP user) owns #den; her API token."""
    alice = await clients.user("alice")
    await alice.command("/create den")
    return await token_for(server, "alice"), alice


async def test_tokens_missing_wrong_and_revoked(server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    secret = (await alice.command("/token create api"))["token"]
    async with http(server) as client:
        missing = await client.get("/api/v1/me")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "not-logged-in"
        wrong = await client.get("/api/v1/me", headers={"Authorization": "Bearer chatd_no"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "auth-failed"
        good = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert good.json() == {"name": "alice", "admin": False, "rooms": 0, "room_list": [],
                               "notifications": 0, "dropped": 0, "bot": False,
                               "scopes": ["read", "post"]}
        await alice.command("/token revoke api")
        revoked = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "auth-failed"


async def test_a_401_names_its_challenge(server: ChatServer) -> None:
    # RFC 9110 15.5.2: every 401 carries WWW-Authenticate, which HTTP clients read to
    # learn the scheme (RFC 6750 3); a token sent and refused is an invalid_token.
    good = {"Authorization": f"Bearer {await token_for(server, 'alice')}"}
    async with http(server) as client:
        missing = await client.get("/api/v1/me")
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="chatd"'
        other_scheme = await client.get("/api/v1/me", headers={"Authorization": "Basic eDp5"})
        assert other_scheme.headers["WWW-Authenticate"] == 'Bearer realm="chatd"'
        wrong = await client.post("/api/v1/rooms/general/messages", json={"text": "hi"},
                                  headers={"Authorization": "Bearer chatd_no"})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == \
            'Bearer realm="chatd", error="invalid_token"'
        allowed = await client.get("/api/v1/me", headers=good)
        assert allowed.status_code == 200 and "WWW-Authenticate" not in allowed.headers


async def test_me_counts_and_lists_your_rooms(server: ChatServer, clients: Clients) -> None:
    # rooms stays the count it always was; room_list names the rooms, with their ids.
    token, alice = await den_with_alice(server, clients)
    general = (await alice.command("/create general"))["id"]  # type: ignore[attr-defined]
    den = server.services.rooms.require("den").id
    async with http(server, token) as client:
        me = (await client.get("/api/v1/me")).json()
    assert me["rooms"] == 2
    assert me["room_list"] == [{"id": den, "name": "den"}, {"id": general, "name": "general"}]


async def test_me_says_whether_the_account_is_a_bot_and_what_the_token_grants(
        server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    helper = (await alice.command("/bot create helper read"))["token"]
    moderator = (await alice.command("/token create mod read,post,moderate"))["token"]
    async with http(server, helper) as client:
        bot = (await client.get("/api/v1/me")).json()
    async with http(server, moderator) as client:
        person = (await client.get("/api/v1/me")).json()
        document = (await client.get("/api/v1/openapi.json")).json()
    assert (bot["name"], bot["bot"], bot["scopes"]) == ("helper", True, ["read"])
    assert (person["name"], person["bot"], person["scopes"]) == (
        "alice", False, ["read", "post", "moderate"])
    answer = document["paths"]["/api/v1/me"]["get"]["responses"]["200"]
    described = answer["content"]["application/json"]["schema"]["properties"]
    assert described["bot"]["type"] == "boolean" and "bot account" in described["bot"][
        "description"]
    assert described["scopes"]["items"]["enum"] == ["read", "post", "moderate", "admin"]
    assert "grants" in described["scopes"]["description"]


async def test_rooms_members_and_posting_reach_connected_users(
        server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    bob = await clients.user("bob")
    await bob.command("/join den")
    await settle(alice)  # type: ignore[arg-type]
    async with http(server, token) as client:
        rooms = (await client.get("/api/v1/rooms")).json()["rooms"]
        assert [(r["name"], r["role"], r["members"]) for r in rooms] == [("den", "owner", 2)]
        members = (await client.get("/api/v1/rooms/den/members")).json()["members"]
        assert {m["user"]: m["role"] for m in members} == {"alice": "owner", "bob": "member"}
        posted = await client.post("/api/v1/rooms/den/messages", json={"text": "from the API"})
        assert posted.status_code == 201
        heard = await bob.next_event(lambda e: e.get("type") == "message")
        assert heard["text"] == "from the API" and heard["id"] == posted.json()["id"]
        direct = await client.post("/api/v1/users/bob/messages", json={"text": "psst"})
        assert direct.status_code == 201 and direct.json()["online"] is True
        dm = await bob.next_event(lambda e: e.get("type") == "message")
        assert dm["to"] == "bob" and dm["text"] == "psst"
        # A TAB becomes a space, as on the line protocol.
        tabbed = await client.post("/api/v1/users/bob/messages", json={"text": "a\tb"})
        assert tabbed.status_code == 201
        dm = await bob.next_event(lambda e: e.get("type") == "message")
        assert dm["text"] == "a b"


async def test_members_say_which_are_bots_as_who_does_and_the_schema_says_so(
        server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    made = await alice.command("/bot create helper")  # type: ignore[attr-defined]
    bot = await clients.anonymous()
    await bot.command(f"/auth {made['token']}")
    await bot.command("/join den")
    async with http(server, token) as client:
        members = (await client.get("/api/v1/rooms/den/members")).json()["members"]
        assert {m["user"]: (m["online"], m["bot"]) for m in members} == {
            "alice": (True, False), "helper": (True, True)}
        document = (await client.get("/api/v1/openapi.json")).json()
    answer = document["paths"]["/api/v1/rooms/{room}/members"]["get"]["responses"]["200"]
    member = answer["content"]["application/json"]["schema"]["properties"]["members"]["items"]
    assert member["properties"]["bot"] == {"type": "boolean"} and "bot" in member["required"]


@pytest.mark.server(accounts__guests=True)
async def test_members_show_a_connected_irc_guest_online(server: ChatServer,
                                                         clients: Clients) -> None:
    token, _alice = await den_with_alice(server, clients)
    assert server.irc is not None
    visitor = await IrcClient.connect(server.irc.port)
    try:
        await visitor.register("visitor")
        visitor.send("JOIN #den")
        await visitor.expect("366")
        async with http(server, token) as client:
            members = (await client.get("/api/v1/rooms/den/members")).json()["members"]
            assert {m["user"]: (m["online"], m["bot"]) for m in members} == {
                "alice": (True, False), "visitor": (True, False)}
            # As on the line protocol: a guest is reached over IRC only, and told so.
            direct = await client.post("/api/v1/users/visitor/messages", json={"text": "hi"})
            assert direct.status_code == 403
            assert "IRC guest" in direct.json()["error"]["message"]
    finally:
        await visitor.close()


async def test_posting_is_refused_with_the_line_protocols_codes(
        server: ChatServer, clients: Clients) -> None:
    await den_with_alice(server, clients)
    stranger = await token_for(server, "sam")
    async with http(server, stranger) as client:
        outsider = await client.post("/api/v1/rooms/den/messages", json={"text": "hi"})
        assert outsider.status_code == 403
        assert outsider.json()["error"]["code"] == "not-in-room"
        nowhere = await client.post("/api/v1/rooms/nope/messages", json={"text": "hi"})
        assert nowhere.status_code == 404
        assert nowhere.json()["error"]["code"] == "no-such-room"
        # No control character reaches a terminal: C0, DEL and C1 (CSI is U+009B).
        for body in ({}, {"text": ""}, {"text": "two\nlines"}, {"text": 5},
                     {"text": "esc \x1b[31m"}, {"text": "csi \x9b31m"},
                     {"text": "nel \x85"}, {"text": "del \x7f"}):
            bad = await client.post("/api/v1/users/alice/messages", json=body)
            assert bad.status_code == 400, body
            assert bad.json()["error"]["code"] == "bad-arguments", body
        action = await client.post("/api/v1/rooms/den/messages",
                                   json={"text": "x", "action": "yes"})
        assert action.json()["error"]["code"] == "bad-arguments"
        too_long = await client.post("/api/v1/users/alice/messages",
                                     json={"text": "x" * (server.config.listen.max_line + 1)})
        assert too_long.json()["error"]["code"] == "line-too-long"
        not_json = await client.post("/api/v1/users/alice/messages", content=b"{nope")
        assert not_json.json()["error"]["code"] == "bad-request"


async def test_a_refusal_of_the_rooms_rules_is_403_like_the_others(
        server: ChatServer, clients: Clients) -> None:
    """An unvoiced member of a moderated room is refused as a muted one is."""
    _, alice = await den_with_alice(server, clients)
    member = await clients.user("sam")
    await member.command("/join den")
    await alice.command("/mode +m den")  # type: ignore[attr-defined]
    async with http(server, await token_for(server, "sam")) as client:
        quiet = await client.post("/api/v1/rooms/den/messages", json={"text": "hi"})
        assert quiet.status_code == 403
        assert quiet.json()["error"]["code"] == "moderated"
        # An escaped surrogate without its pair is no text (UTF-8 cannot carry it).
        lone = await client.post("/api/v1/rooms/den/messages",
                                 content=b'{"text": "odd \\ud800 one"}')
        assert lone.status_code == 400 and lone.json()["error"]["code"] == "bad-request"
        assert "surrogate" in lone.json()["error"]["message"]
        paired = await client.post("/api/v1/users/alice/messages",
                                   content=b'{"text": "\\ud83d\\ude00"}')
        assert paired.status_code == 201, paired.text
        huge = await client.post("/api/v1/users/alice/messages",
                                 content=b"x" * (server.config.web.max_body + 1))
        assert huge.status_code == 413
        unknown = await client.post("/api/v1/users/nobody/messages", json={"text": "hi"})
        assert unknown.json()["error"]["code"] == "no-such-user"


async def test_members_of_an_open_room_that_banned_you_say_the_ban_hides_them(
        server: ChatServer, clients: Clients) -> None:
    """As /who says it: an open room's members are no secret, but a ban hides them."""
    _, alice = await den_with_alice(server, clients)
    await clients.user("sam")
    await alice.command("/ban sam den 2h")  # type: ignore[attr-defined]
    async with http(server, await token_for(server, "sam")) as client:
        hidden = await client.get("/api/v1/rooms/den/members")
        assert hidden.status_code == 403
        assert hidden.json()["error"] == {
            "code": "not-permitted",
            "message": "you are banned from #den for 2h more, which hides who is in it."}


async def test_a_secret_room_by_id_is_no_room_to_a_stranger_as_on_the_line_protocol(
        server: ChatServer, clients: Clients) -> None:
    """Ids count up from 1: a secret room's id answers a stranger as an id no room has,
    so trying them tells no hidden room's name; a member reads it by id."""
    token, alice = await den_with_alice(server, clients)
    await alice.command("/mode +s den")  # type: ignore[attr-defined]
    room_id = server.services.rooms.require("den").id
    await clients.user("sam")
    async with http(server, await token_for(server, "sam")) as client:
        hidden = await client.get(f"/api/v1/rooms/{room_id}/members")
        unknown = await client.get("/api/v1/rooms/9999/members")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"] == f"there is no room with id {room_id}."
    async with http(server, token) as client:
        shown = await client.get(f"/api/v1/rooms/{room_id}/members")
    assert shown.status_code == 200 and shown.json()["room"] == "den"


@pytest.mark.server(limits__message_rate=1, limits__message_burst=2)
async def test_the_message_rate_limit_holds_for_the_api(
        server: ChatServer, clients: Clients) -> None:
    token, _ = await den_with_alice(server, clients)
    async with http(server, token) as client:
        codes = [(await client.post("/api/v1/rooms/den/messages", json={"text": "m"}))
                 for _ in range(3)]
        assert [c.status_code for c in codes] == [201, 201, 429]
        assert codes[-1].json()["error"]["code"] == "rate-limited"
        assert int(codes[-1].headers["retry-after"]) >= 1


@pytest.mark.server(limits__message_rate=0.1, limits__message_burst=1,
                    limits__flood_threshold=2)
async def test_a_direct_message_flood_over_http_is_audited_as_refused_not_disconnected(
        server: ChatServer, clients: Clients) -> None:
    """An HTTP request has no connection to close: the flood is answered 429, and the
    audit says so rather than claim a disconnection."""
    token = await token_for(server, "alice")
    await clients.user("bob")
    async with http(server, token) as client:
        statuses = [(await client.post("/api/v1/users/bob/messages", json={"text": "m"})
                     ).status_code for _ in range(3)]
        assert statuses == [201, 429, 429]  # the second refusal is the flood
        assert (await client.get("/api/v1/me")).status_code == 200
    entries = await server.services.audit.entries(100)
    floods = [(e.action, e.target, e.reason) for e in entries if e.action.startswith("flood")]
    assert floods == [("flood-refused", "alice", "flooding")]


@pytest.mark.server(limits__command_rate=1, limits__command_burst=2)
async def test_every_request_costs_a_command_token(server: ChatServer) -> None:
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        statuses = [(await client.get("/api/v1/me")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


@pytest.mark.server(limits__auth_failures=2, limits__auth_window=60)
async def test_too_many_failed_logins_say_how_long_to_wait(
        server: ChatServer, clock: ManualClock) -> None:
    bearer = {"Authorization": "Bearer chatd_" + "x" * 43}
    async with http(server) as client:
        statuses = [(await client.get("/api/v1/me", headers=bearer)).status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 429]
        refused = await client.get("/api/v1/me", headers=bearer)
        # Two failures a minute: the next one is back 30 s after the bucket emptied.
        assert refused.json()["error"]["code"] == "rate-limited"
        assert refused.json()["error"]["retry_ms"] == 30_000
        assert refused.headers["retry-after"] == "30"
        assert refused.json()["error"]["message"] == (
            "too many failed logins; wait 30 s and try again.")
        clock.advance(30)
        assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401


async def test_a_text_over_the_line_limit_is_line_too_long(
        server: ChatServer, clients: Clients) -> None:
    token, _ = await den_with_alice(server, clients)
    limit = server.config.listen.max_line
    async with http(server, token) as client:
        long = await client.post("/api/v1/rooms/den/messages", json={"text": "x" * (limit + 1)})
        assert long.status_code == 400
        assert long.json()["error"] == {"code": "line-too-long",
                                        "message": f"text is over {limit} bytes."}


async def test_a_missing_body_is_a_bad_request_and_a_missing_field_bad_arguments(
        server: ChatServer, clients: Clients) -> None:
    token, _ = await den_with_alice(server, clients)
    async with http(server, token) as client:
        for path in ("/api/v1/rooms/den/messages", "/api/v1/users/alice/messages",
                     "/api/v1/rooms/den/webhooks", "/api/v1/crypto/encrypt"):
            empty = await client.post(path)
            assert empty.status_code == 400, path
            assert empty.json()["error"] == {"code": "bad-request",
                                             "message": "the body is empty: send a JSON object."}
        no_text = await client.post("/api/v1/rooms/den/messages", json={})
        assert no_text.status_code == 400
        assert no_text.json()["error"]["code"] == "bad-arguments"


async def test_a_body_field_the_operation_does_not_take_is_refused_by_name(
        server: ChatServer, clients: Clients) -> None:
    """A typo in a field's name is bad-arguments naming it, on every operation that
    takes a JSON body but an incoming webhook's: never accepted with the field ignored."""
    token, alice = await den_with_alice(server, clients)
    await alice.command("/webhook create deploy")  # type: ignore[attr-defined]
    typos = [("/api/v1/rooms/den/messages", {"txt": "hi"}, "txt"),
             ("/api/v1/rooms/den/messages", {"text": "hi", "lable": "x"}, "lable"),
             ("/api/v1/users/alice/messages", {"text": "hi", "actoin": True}, "actoin"),
             ("/api/v1/rooms/den/webhooks", {"name": "ci", "room": "den"}, "room"),
             ("/api/v1/crypto/encrypt", {"algorithm": "aes-256-gcm", "password": "pw",
                                         "text": "t", "format": "file"}, "format"),
             ("/api/v1/crypto/decrypt", {"password": "pw", "armour": "x"}, "armour")]
    async with http(server, token) as client:
        for path, body, field in typos:
            refused = await client.post(path, json=body)
            assert refused.status_code == 400, (path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "bad-arguments" and error["field"] == field, error
            assert error["message"].startswith(f'unknown field "{field}": '), error
        listed = await client.get("/api/v1/rooms/den/webhooks")
        history = await client.get("/api/v1/rooms/den/messages")
    assert [h["name"] for h in listed.json()["webhooks"]] == ["deploy"]
    assert history.json()["messages"] == []


async def test_a_webhook_takes_the_fields_other_chat_services_senders_add(
        server: ChatServer, clients: Clients) -> None:
    """Programs that post to incoming webhooks are often built for other chat services
    and add fields of their own: the webhook takes its text and ignores them; a body
    without its text is still refused, naming it."""
    token, alice = await den_with_alice(server, clients)
    hook = await alice.command("/webhook create deploy")  # type: ignore[attr-defined]
    async with http(server, token) as client:
        posted = await client.post(hook["path"], json={
            "text": "build 42 is green", "username": "ci", "icon_emoji": ":white_check_mark:",
            "channel": "#den"})
        typo = await client.post(hook["path"], json={"txt": "build 43"})
        history = await client.get("/api/v1/rooms/den/messages")
    assert posted.status_code == 201, posted.text
    assert typo.status_code == 400 and typo.json()["error"]["code"] == "bad-arguments"
    assert [m["text"] for m in history.json()["messages"]] == ["build 42 is green"]


async def test_a_query_parameter_given_twice_is_refused_not_taken_at_its_last(
        server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    await alice.command("/say den one")  # type: ignore[attr-defined]
    async with http(server, token) as client:
        twice = await client.get("/api/v1/rooms/den/messages?limit=5&limit=50")
        same = await client.get("/api/v1/rooms/den/messages?before=9&before=9")
        # A parameter the operation does not take is ignored, once or twice.
        other = await client.get("/api/v1/rooms/den/messages?x=1&x=2")
    assert twice.status_code == 400 and twice.json()["error"] == {
        "code": "bad-arguments", "message": "limit is given more than once: give it once.",
        "parameter": "limit"}
    assert same.status_code == 400 and same.json()["error"]["parameter"] == "before"
    assert other.status_code == 200 and len(other.json()["messages"]) == 1


async def test_history_pages_back_with_before(server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    for i in range(5):
        await alice.command(f"/say den m{i}")  # type: ignore[attr-defined]
    async with http(server, token) as client:
        first = (await client.get("/api/v1/rooms/den/messages", params={"limit": 3})).json()
        assert [m["text"] for m in first["messages"]] == ["m2", "m3", "m4"]
        older = (await client.get("/api/v1/rooms/den/messages",
                                  params={"limit": 3, "before": first["before"]})).json()
        assert [m["text"] for m in older["messages"]] == ["m0", "m1"]
        assert older["before"] is None
        bad = await client.get("/api/v1/rooms/den/messages", params={"limit": "many"})
        assert bad.status_code == 400
    outsider = await token_for(server, "sam")
    async with http(server, outsider) as client:
        refused = await client.get("/api/v1/rooms/den/messages")
        assert refused.json()["error"]["code"] == "not-in-room"
        hidden = await client.get("/api/v1/rooms/den/members")
        assert hidden.status_code == 200  # an open room's members are public


@pytest.mark.parametrize("before", ["0", "-1", "000"])
async def test_history_before_no_id_is_refused(server: ChatServer, clients: Clients,
                                               before: str) -> None:
    token, alice = await den_with_alice(server, clients)
    await alice.command("/say den hello")  # type: ignore[attr-defined]
    async with http(server, token) as client:
        refused = await client.get("/api/v1/rooms/den/messages", params={"before": before})
        assert refused.status_code == 400
        assert refused.json()["error"] == {"code": "bad-arguments",
                                           "message": "before must be a positive number."}


async def test_a_limit_of_any_size_is_the_cap(server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    for i in range(3):
        await alice.command(f"/say den m{i}")  # type: ignore[attr-defined]
    huge = "99999999999999999999999"
    async with http(server, token) as client:
        history = await client.get("/api/v1/rooms/den/messages", params={"limit": huge})
        assert [m["text"] for m in history.json()["messages"]] == ["m0", "m1", "m2"]
        members = await client.get("/api/v1/rooms/den/members", params={"limit": huge})
        assert members.json()["total"] == 1
        for limit in ("0", "-1", "ten"):
            refused = await client.get("/api/v1/rooms/den/messages", params={"limit": limit})
            assert refused.status_code == 400, limit


async def test_notifications_list_and_clear(server: ChatServer, clients: Clients) -> None:
    await token_for(server, "bob")  # bob exists, offline
    alice = await clients.user("alice")
    await alice.command("/msg bob are you there?")
    token = await token_for(server, "bob")
    async with http(server, token) as client:
        answer = (await client.get("/api/v1/notifications")).json()
        listed = answer["notifications"]
        assert [n["kind"] for n in listed] == ["direct-message"] and answer["total"] == 1
        assert listed[0]["sender"] == "alice"
        # Its time named as the line protocol names it (and as before).
        assert listed[0]["ts_epoch"] == listed[0]["time"] > 0
        assert (await client.delete("/api/v1/notifications")).json() == {"cleared": 1}
        assert (await client.get("/api/v1/notifications")).json()["notifications"] == []


async def test_files_upload_list_download_and_signed_links(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    token, alice = await den_with_alice(server, clients)
    image = png()
    async with http(server, token) as client:
        uploaded = await client.post("/api/v1/rooms/den/files", params={"name": "dot.png"},
                                     content=image)
        assert uploaded.status_code == 201, uploaded.text
        record = uploaded.json()
        assert record["mime"] == "image/png" and record["size"] == len(image)
        announced = await alice.next_event(  # type: ignore[attr-defined]
            lambda e: e.get("type") == "message" and "file" in e)
        assert announced["file"]["id"] == record["id"]
        listed = (await client.get("/api/v1/rooms/den/files")).json()["files"]
        assert [f["name"] for f in listed] == ["dot.png"]
        info = (await client.get(f"/api/v1/files/{record['id']}")).json()
        content = await client.get(f"/api/v1/files/{record['id']}/content")
        assert content.content == image and content.headers["content-type"] == "image/png"
        assert content.headers["content-disposition"].startswith("inline")
    link = info["download"]
    async with http(server) as browser:  # an <img>: no Authorization header
        shown = await browser.get(link)
        assert shown.status_code == 200 and shown.content == image
        query = parse_qs(urlsplit(link).query)
        forged = link.replace(f"user={query['user'][0]}", "user=999")
        assert (await browser.get(forged)).json()["error"]["code"] == "auth-failed"
        clock.advance(server.config.web.download_ttl + 1)
        expired = await browser.get(link)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


async def test_a_file_name_that_reads_as_an_announcement_is_quoted_in_text_mode(
        server: ChatServer, clients: Clients) -> None:
    """A name may hold spaces through the API: shown bare, one like "cat.png (5 KiB,
    image): ..." would make the announcement misstate the file it offers."""
    token, alice = await den_with_alice(server, clients)
    bob = await text_client(clients, "bob")
    await text_run(bob, "/join den")
    name = "cat.png (5 KiB, image): download 1"
    async with http(server, token) as client:
        uploaded = await client.post("/api/v1/rooms/den/files", params={"name": name},
                                     content=b"hi")
        plain = await client.post("/api/v1/rooms/den/files", params={"name": "plain.txt"},
                                  content=b"hi")
    assert uploaded.status_code == plain.status_code == 201, uploaded.text
    file_id, plain_id = uploaded.json()["id"], plain.json()["id"]
    shown = [line for line in await bob.until(lambda line: "plain.txt" in line)
             if "shared" in line]
    assert shown == [f'<alice> shared "{name}" (2 bytes, text/plain): /download {file_id}',
                     f"<alice> shared plain.txt (2 bytes, text/plain): /download {plain_id}"]
    # The JSON event keeps its fields: the file's name is as uploaded.
    announced = await alice.next_event(  # type: ignore[attr-defined]
        lambda e: e.get("type") == "message" and "file" in e)
    assert announced["file"]["name"] == name


async def test_an_uploaded_body_is_hashed_off_the_event_loop(
        server: ChatServer, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    # A body of files.max_size (10 MiB) takes some 20 ms to hash: on the loop's
    # thread, every connection would wait that long, an upload at a time.
    token, _ = await den_with_alice(server, clients)
    body = b"x" * 100_000
    threads: list[threading.Thread] = []
    real = hashlib.sha256

    def spy(data: bytes = b"", **kwargs: Any) -> Any:
        if data == body:
            threads.append(threading.current_thread())
        return real(data, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", spy)
    async with http(server, token) as client:
        uploaded = await client.post("/api/v1/rooms/den/files", params={"name": "x.txt"},
                                     content=body)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["sha256"] == real(body).hexdigest()
    assert threads and threading.main_thread() not in threads


async def test_a_signed_link_stops_working_for_a_kicked_member(
        server: ChatServer, clients: Clients) -> None:
    token, alice = await den_with_alice(server, clients)
    bob = await clients.user("bob")
    await bob.command("/join den")
    async with http(server, token) as client:
        record = (await client.post("/api/v1/rooms/den/files", params={"name": "a.txt"},
                                    content=b"hello")).json()
    bobs = await token_for(server, "bob")
    async with http(server, bobs) as client:
        link = (await client.get(f"/api/v1/files/{record['id']}")).json()["download"]
    async with http(server) as browser:
        assert (await browser.get(link)).content == b"hello"
        assert (await browser.get(link)).headers["content-disposition"].startswith("attachment")
        await alice.command("/kick bob den")  # type: ignore[attr-defined]
        refused = await browser.get(link)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not-in-room"
        missing = await browser.get("/api/v1/download/999?user=1&expires=1&sig=x")
        assert missing.status_code == 401


async def test_a_signature_that_is_not_ascii_is_refused_like_any_wrong_one(
        server: ChatServer) -> None:
    # hmac.compare_digest refuses non-ASCII text with a TypeError: that was a 500
    # internal-error (and a traceback in the log) for anyone who sent one.
    async with http(server) as browser:
        for sig in ("%C3%A9", "%E2%82%AC" * 32):
            refused = await browser.get(f"/api/v1/download/1?user=1&expires=9999999999&sig={sig}")
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "auth-failed"


@pytest.mark.server(files__max_size=1000)
async def test_uploads_are_bounded_by_files_max_size(server: ChatServer,
                                                    clients: Clients) -> None:
    token, _ = await den_with_alice(server, clients)
    async with http(server, token) as client:
        big = await client.post("/api/v1/rooms/den/files", params={"name": "big.bin"},
                                content=b"x" * 1001)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "file-too-large"
        assert big.json()["error"]["max_size"] == 1000
        nameless = await client.post("/api/v1/rooms/den/files", content=b"x")
        assert nameless.json()["error"]["code"] == "bad-arguments"
        bad_name = await client.post("/api/v1/rooms/den/files", params={"name": "a/b"},
                                     content=b"x")
        assert bad_name.json()["error"]["code"] == "bad-arguments"
        # A name is stored as given: one that could break a text client's line is refused.
        for name in ("a\r\n[server] reset your password", "tab\there", " lead.txt", "trail "):
            refused = await client.post("/api/v1/rooms/den/files", params={"name": name},
                                        content=b"x")
            assert refused.json()["error"]["code"] == "bad-arguments", name
        spaced = await client.post("/api/v1/rooms/den/files", params={"name": "my cat.txt"},
                                   content=b"x")
        assert spaced.status_code == 201 and spaced.json()["name"] == "my cat.txt"
        assert (await client.get("/api/v1/files/77")).json()["error"]["code"] == "no-such-file"


async def test_odd_numbers_and_deep_json_are_bad_requests_not_failures(
        server: ChatServer, clients: Clients) -> None:
    token, _ = await den_with_alice(server, clients)
    async with http(server, token) as client:
        # "²" is a digit to str.isdigit, not to int().
        odd_id = await client.get("/api/v1/files/%C2%B2")
        assert odd_id.status_code == 400, odd_id.text
        odd_limit = await client.get("/api/v1/rooms/den/messages", params={"limit": "²"})
        assert odd_limit.status_code == 400, odd_limit.text
        none = await client.get("/api/v1/rooms/den/messages", params={"limit": "0"})
        assert none.status_code == 400 and "1 or more" in none.json()["error"]["message"]
        deep = await client.post("/api/v1/rooms/den/messages", content=b"[" * 60_000,
                                 headers={"Content-Type": "application/json"})
        assert deep.status_code == 400 and deep.json()["error"]["code"] == "bad-request"
        sent = await client.post("/api/v1/rooms/den/messages", json={"text": "still fine"})
        assert sent.status_code in (200, 201), sent.text


async def test_encrypt_and_decrypt_as_strings_and_as_files(server: ChatServer) -> None:
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        options = (await client.get("/api/v1/crypto")).json()
        assert "low" in options["costs"] and options["algorithms"]
        algorithm = options["algorithms"][0]
        sealed = await client.post("/api/v1/crypto/encrypt", json={
            "algorithm": algorithm, "cost": "low", "password": "pw1", "text": "secret"})
        assert sealed.status_code == 200, sealed.text
        armored = sealed.json()["result"]
        opened = await client.post("/api/v1/crypto/decrypt",
                                   json={"password": "pw1", "armored": armored})
        assert opened.json() == {"result": "secret"}
        as_file = await client.post("/api/v1/crypto/decrypt", json={
            "password": "pw1", "armored": armored, "as": "file"})
        assert as_file.content == b"secret"
        assert as_file.headers["content-disposition"].startswith("attachment")
        sealed_file = await client.post("/api/v1/crypto/encrypt", json={
            "algorithm": algorithm, "cost": "low", "password": "pw1", "text": "x",
            "as": "file"})
        assert sealed_file.headers["content-disposition"].startswith("attachment")
        wrong = await client.post("/api/v1/crypto/decrypt",
                                  json={"password": "pw2", "armored": armored})
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "bad-arguments"
        unknown = await client.post("/api/v1/crypto/encrypt", json={
            "algorithm": "rot13", "password": "pw", "text": "x"})
        assert unknown.json()["error"]["code"] == "bad-arguments"


async def test_each_route_needs_its_tokens_scope(server: ChatServer, clients: Clients) -> None:
    alice = await clients.user("alice")
    await alice.command("/create den")
    reader = (await alice.command("/token create reader read"))["token"]
    async with http(server, reader) as client:
        assert (await client.get("/api/v1/rooms")).status_code == 200
        posted = await client.post("/api/v1/rooms/den/messages", json={"text": "no"})
        assert posted.status_code == 403
        assert posted.json()["error"]["code"] == "scope"
        assert posted.json()["error"]["scope"] == "post"
        assert posted.json()["error"]["message"] == (
            "this token does not grant the post scope; make one that does with "
            "/token create <name> post.")
        hooks = await client.get("/api/v1/rooms/den/webhooks")
        assert hooks.status_code == 403 and hooks.json()["error"]["scope"] == "moderate"
    # A bot cannot make its own tokens: its owner is named, with the command to run.
    made = await alice.command("/bot create helper read")
    async with http(server, made["token"]) as client:
        refused = await client.post("/api/v1/rooms/den/messages", json={"text": "no"})
        assert refused.status_code == 403 and refused.json()["error"] == {
            "code": "scope", "scope": "post",
            "message": "this token does not grant the post scope; its owner alice makes one "
                       "that does with /bot token helper post."}
    await alice.command("/history den")
    assert "no" not in [m.get("text") for m in (await alice.command("/history den"))["messages"]]


async def test_a_scope_refusal_names_every_scope_the_operation_needs(
        server: ChatServer, clients: Clients) -> None:
    # A webhook takes moderate and post: the remedy names both, so that the token it
    # tells how to make is one that does (moderate alone would be refused for post).
    alice = await clients.user("alice")
    await alice.command("/create den")
    poster = (await alice.command("/token create poster read,post"))["token"]
    async with http(server, poster) as client:
        refused = await client.post("/api/v1/rooms/den/webhooks", json={"name": "ci"})
    assert refused.status_code == 403 and refused.json()["error"] == {
        "code": "scope", "scope": "moderate",
        "message": "this token does not grant the moderate scope; make one that does with "
                   "/token create <name> moderate,post."}
    remedy = (await alice.command("/token create hooks moderate,post"))["token"]
    async with http(server, remedy) as client:
        made = await client.post("/api/v1/rooms/den/webhooks", json={"name": "ci"})
    assert made.status_code == 201, made.text


# Each operation and the command it does what of (docs/WEB.md: "the same domain rules").
SAME_AS = {"me": "whoami", "rooms": "myrooms", "members": "who", "history": "history",
           "post_to_room": "say", "post_to_user": "msg", "notifications": "notifications",
           "clear_notifications": "notifications", "files": "files", "upload": "upload",
           "file_info": "files", "file_content": "download",
           "crypto_options": "encrypt", "encrypt": "encrypt", "decrypt": "decrypt",
           "webhooks": "webhook", "create_webhook": "webhook", "revoke_webhook": "webhook"}


def test_each_operation_needs_the_scope_of_its_command() -> None:
    table = commands.load()
    routes = [r for r in api_routes(LinkSigner()) if r.auth]
    assert sorted(r.handler.__name__ for r in routes) == sorted(SAME_AS)
    for route in routes:
        command = table.get(SAME_AS[route.handler.__name__])
        assert command is not None
        if route.handler.__name__ != "crypto_options":  # a list of choices: read
            assert route.needs is command.scope, (route.method, route.path)


@pytest.mark.server(storage__flush_interval=3600, storage__max_pending=1)
async def test_busy_is_503_with_retry_after(server: ChatServer, clients: Clients) -> None:
    """Messages wait to be written (here: the writer held off) past the bound."""
    token, _ = await den_with_alice(server, clients)
    async with http(server, token) as client:
        first = await client.post("/api/v1/rooms/den/messages", json={"text": "waits"})
        assert first.status_code == 201, first.text
        busy = await client.post("/api/v1/rooms/den/messages", json={"text": "too many"})
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
        assert int(busy.headers["Retry-After"]) >= 1


async def test_members_are_paged_as_who_pages_them(server: ChatServer, clients: Clients) -> None:
    """A room's members a page at a time (page, limit), owner first, with where the
    page stands (page, pages, total), as /who [page] answers."""
    token, _alice = await den_with_alice(server, clients)
    for name in ("bob", "carol", "dave", "erin"):
        await (await clients.user(name)).command("/join den")
    async with http(server, token) as client:
        whole = (await client.get("/api/v1/rooms/den/members")).json()
        assert [m["user"] for m in whole["members"]] == ["alice", "bob", "carol", "dave", "erin"]
        assert (whole["page"], whole["pages"], whole["total"]) == (1, 1, 5)
        walked = []
        for number in (1, 2, 3):
            page = (await client.get("/api/v1/rooms/den/members",
                                     params={"page": number, "limit": 2})).json()
            assert (page["page"], page["pages"], page["total"]) == (number, 3, 5)
            walked += [m["user"] for m in page["members"]]
        assert walked == ["alice", "bob", "carol", "dave", "erin"]
        past = (await client.get("/api/v1/rooms/den/members", params={"page": 4})).json()
        assert past["members"] == [] and past["total"] == 5
        for bad in ({"page": 0}, {"limit": 0}, {"page": 1_000_001}, {"page": "x"}):
            refused = await client.get("/api/v1/rooms/den/members", params=bad)
            assert refused.status_code == 400, bad
            assert refused.json()["error"]["code"] == "bad-arguments"


@pytest.mark.server(limits__max_notifications=3)
async def test_the_newest_page_tells_the_dropped_notifications_once(
        server: ChatServer, clients: Clients) -> None:
    """Read over HTTP, the newest page says how many were dropped past the bound and
    takes the count, as /notifications does: the line protocol is not told again."""
    await token_for(server, "bob")  # bob exists, offline
    alice = await clients.user("alice")
    for number in range(5):
        await alice.command(f"/msg bob note {number}")
    token = await token_for(server, "bob")
    async with http(server, token) as client:
        second = (await client.get("/api/v1/notifications", params={"page": 2, "limit": 2}))
        assert second.json()["dropped"] == 0
        first = (await client.get("/api/v1/notifications")).json()
        assert (first["total"], first["dropped"]) == (3, 2)
        assert (await client.get("/api/v1/notifications")).json()["dropped"] == 0
    bob = await clients.anonymous()
    assert (await bob.command(f"/login bob {PASSWORD}")).get("dropped") is None
    assert (await bob.command("/notifications"))["dropped"] == 0


@pytest.mark.server(limits__max_notifications=3)
async def test_me_says_how_many_notifications_were_dropped_and_leaves_the_count(
        server: ChatServer, clients: Clients) -> None:
    """GET /api/v1/me says the dropped count as a log-in does, without taking it:
    the listing's newest page still tells it, and me says 0 after that."""
    await token_for(server, "bob")  # bob exists, offline
    alice = await clients.user("alice")
    for number in range(5):
        await alice.command(f"/msg bob note {number}")
    token = await token_for(server, "bob")
    async with http(server, token) as client:
        me = (await client.get("/api/v1/me")).json()
        assert (me["notifications"], me["dropped"]) == (3, 2)
        assert (await client.get("/api/v1/me")).json()["dropped"] == 2
        assert (await client.get("/api/v1/notifications")).json()["dropped"] == 2
        assert (await client.get("/api/v1/me")).json()["dropped"] == 0


@pytest.mark.server(limits__max_notifications=3)
async def test_a_head_of_the_newest_page_leaves_the_dropped_count_to_the_get(
        server: ChatServer, clients: Clients) -> None:
    """A HEAD is answered as a GET without its body, and changes nothing: the count of
    dropped notifications, which nobody reads off a HEAD, is left for the GET."""
    await token_for(server, "bob")  # bob exists, offline
    alice = await clients.user("alice")
    for number in range(5):
        await alice.command(f"/msg bob note {number}")
    token = await token_for(server, "bob")
    async with http(server, token) as client:
        head = await client.head("/api/v1/notifications")
        assert head.status_code == 200 and head.content == b""
        got = await client.get("/api/v1/notifications")
        assert got.json()["dropped"] == 2
        # The same headers as the GET's, Content-Length too (RFC 9110 9.3.2).
        assert head.headers["content-length"] == got.headers["content-length"]
        assert (await client.get("/api/v1/notifications")).json()["dropped"] == 0


async def test_notifications_are_paged_newest_page_first(server: ChatServer,
                                                         clients: Clients) -> None:
    """Page 1 is the newest notifications, each page oldest first, as /notifications
    [page] has them; the default page is the newest 200, as the list was."""
    await token_for(server, "bob")  # bob exists, offline
    alice = await clients.user("alice")
    for number in range(5):
        await alice.command(f"/msg bob note {number}")
    token = await token_for(server, "bob")
    async with http(server, token) as client:
        whole = (await client.get("/api/v1/notifications")).json()
        ids = [n["id"] for n in whole["notifications"]]
        assert len(ids) == 5 and ids == sorted(ids)
        assert (whole["page"], whole["pages"], whole["total"]) == (1, 1, 5)
        pages = [(await client.get("/api/v1/notifications",
                                   params={"page": number, "limit": 2})).json()
                 for number in (1, 2, 3, 4)]
        assert [[n["id"] for n in p["notifications"]] for p in pages] == [
            ids[3:], ids[1:3], ids[:1], []]
        assert {(p["pages"], p["total"]) for p in pages} == {(3, 5)}
        capped = (await client.get("/api/v1/notifications", params={"limit": 5000})).json()
        assert len(capped["notifications"]) == 5
        document = (await client.get("/api/v1/openapi.json")).json()
    for path in ("/api/v1/notifications", "/api/v1/rooms/{room}/members"):
        operation = document["paths"][path]["get"]
        assert {"page", "limit"} <= {p["name"] for p in operation["parameters"]}
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"page", "pages", "total"} <= set(schema["required"])


async def test_a_download_whose_blob_is_short_or_unreadable_never_passes_for_the_file(
        server: ChatServer, clients: Clients) -> None:
    """A blob cut short ends the response with the connection, before the length it
    declared (a client sees the body is incomplete, and does not wait on a kept-alive
    socket for the rest); a blob the store cannot read is 503 file-unreadable."""
    from tests.content import blob_paths

    token, _alice = await den_with_alice(server, clients)
    async with http(server, token) as client:
        record = (await client.post("/api/v1/rooms/den/files", params={"name": "a.bin"},
                                    content=b"x" * 100_000)).json()
    [blob] = blob_paths(server)
    blob.write_bytes(b"x" * 60_000)
    async with http(server, token) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"/api/v1/files/{record['id']}/content")
    blob.unlink()
    blob.mkdir()  # there, but no file the store can read
    async with http(server, token) as client:
        unreadable = await client.get(f"/api/v1/files/{record['id']}/content")
    assert unreadable.status_code == 503
    assert unreadable.json()["error"]["code"] == "file-unreadable"
