"""Incoming webhooks: made by a room admin (command or API), posting as a named bot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chatd.domain.clock import ManualClock
from chatd.domain.scopes import Scope
from tests.backends import both
from tests.helpers import (
    ChatServer,
    Clients,
    error_of,
    room_with,
    settle,
    text_client,
    text_run,
)
from tests.web.helpers import http, token_for

# Hooks are stored, found by id and revoked alike on both backends.
backend = both


async def test_create_post_list_revoke_through_the_command(
        server: ChatServer, clients: Clients) -> None:
    owner = await clients.user("alice")
    await owner.command("/create den")
    made = await owner.command("/webhook create deploy")
    assert made["bot"] == "deploy[bot]" and made["path"].startswith(f"/hooks/{made['id']}/")
    async with http(server) as hook:
        posted = await hook.post(made["path"], json={"text": "build 42 is green"})
        assert posted.status_code == 201, posted.text
        heard = await owner.next_event(lambda e: e.get("type") == "message")
        assert heard["from"] == "deploy[bot]" and heard["text"] == "build 42 is green"
        assert heard["bot"] is True
        plain = await hook.post(made["path"], content=b"plain text too",
                                headers={"Content-Type": "text/plain"})
        assert plain.status_code == 201
        # Its line end goes; its leading spaces are text, as in a JSON body.
        indented = await hook.post(made["path"], content=b"  indented\r\n",
                                   headers={"Content-Type": "text/plain"})
        assert indented.status_code == 201
        # Media types are case-insensitive.
        shouted = await hook.post(made["path"], content=b"PLAIN AS WELL",
                                  headers={"Content-Type": "Text/Plain; charset=UTF-8"})
        assert shouted.status_code == 201, shouted.text
        # A terminal's escape sequence never reaches text-mode members (CSI is U+009B).
        for body in ("c1 \u009b31mred".encode(), b"esc \x1b[31m"):
            escaped = await hook.post(made["path"], content=body,
                                      headers={"Content-Type": "text/plain"})
            assert escaped.status_code == 400, body
            assert escaped.json()["error"]["code"] == "bad-arguments"
        listed = await owner.command("/webhook list")
        assert [h["name"] for h in listed["webhooks"]] == ["deploy"]
        assert "secret" not in listed["webhooks"][0]
        await owner.command(f"/webhook revoke {made['id']}")
        revoked = await hook.post(made["path"], json={"text": "still there?"})
        assert revoked.status_code == 404
        assert revoked.json()["error"]["code"] == "no-such-webhook"
    history = await owner.command("/history den")
    assert [m["from"] for m in history["messages"]] == ["deploy[bot]"] * 4
    assert history["messages"][2]["text"] == "  indented"
    audit = await server.services.audit.entries(10, server.services.rooms.find("den"))
    assert {"webhook-create", "webhook-revoke"} <= {e.action for e in audit}


async def test_a_webhook_speaks_in_a_moderated_room(server: ChatServer,
                                                   clients: Clients) -> None:
    """The room's admins made it: it speaks there as they do, while a member without
    voice may not."""
    owner, member = await room_with(clients, "alice", "bob", room="den")
    made = await owner.command("/webhook create deploy")
    await owner.command("/mode +m")
    assert (await error_of(member, "/say den hello"))["code"] == "moderated"
    async with http(server) as hook:
        posted = await hook.post(made["path"], json={"text": "deployed"})
        assert posted.status_code == 201, posted.text
    heard = await member.next_event(lambda e: e.get("type") == "message")
    assert heard["from"] == "deploy[bot]" and heard["text"] == "deployed"


async def test_only_room_admins_manage_webhooks_and_a_wrong_secret_is_refused(
        server: ChatServer, clients: Clients) -> None:
    owner = await clients.user("alice")
    await owner.command("/create den")
    member = await clients.user("bob")
    await member.command("/join den")
    assert (await error_of(member, "/webhook create sneaky den"))["code"] == "not-permitted"
    assert (await error_of(member, "/webhook list den"))["code"] == "not-permitted"
    assert (await error_of(owner, "/webhook create bad!name"))["code"] == "invalid-name"
    made = await owner.command("/webhook create ci")
    assert (await error_of(owner, "/webhook create CI"))["code"] == "name-taken"
    assert (await error_of(owner, "/webhook revoke 999"))["code"] == "no-such-webhook"
    assert (await error_of(owner, "/webhook revoke ci"))["code"] == "bad-arguments"
    assert (await error_of(owner, "/webhook create"))["code"] == "bad-arguments"
    async with http(server) as hook:
        forged = await hook.post(f"/hooks/{made['id']}/not-the-secret", json={"text": "x"})
        assert forged.status_code == 404
        empty = await hook.post(made["path"], json={"text": ""})
        assert empty.status_code == 400
        evil = await hook.post(made["path"], json={"text": "x"},
                               headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403


async def _post_at_once(server: ChatServer, path: str, body: bytes,
                        media: str = "application/json") -> tuple[int, str]:
    """POST ``body`` to ``path`` with its head in one write, so the server has the whole
    request at once (no decision on the head alone); the status and error code."""
    assert server.web is not None
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web.port)
    try:
        writer.write(head + body)
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split(b" ")[1]), json.loads(payload)["error"]["code"]


@pytest.mark.parametrize(("body", "media"), [
    (b"{not json", "application/json"),
    (b'{"text": ""}', "application/json"),
    (b"[1, 2]", "application/json"),
    (b"\xff\xfe not utf-8", "text/plain"),
])
async def test_a_wrong_secret_is_refused_whatever_the_body(
        server: ChatServer, clients: Clients, body: bytes, media: str) -> None:
    """A post whose body came with its head is decided with the whole request: the
    secret is still checked first, so a wrong one is a 404 however bad the body (the
    answer to a wrong address tells nothing about what was sent). With the right
    secret, the same body is the 400 it deserves."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    made = await owner.command("/webhook create deploy")
    forged = f"/hooks/{made['id']}/not-the-secret"
    assert await _post_at_once(server, forged, body, media) == (404, "no-such-webhook")
    unknown = f"/hooks/{made['id'] + 1}/{made['path'].rsplit('/', 1)[1]}"
    assert await _post_at_once(server, unknown, body, media) == (404, "no-such-webhook")
    status, _code = await _post_at_once(server, made["path"], body, media)
    assert status == 400


@pytest.mark.server(web__webhook_rate=1, web__webhook_burst=2)
async def test_each_webhook_is_rate_limited(server: ChatServer, clients: Clients) -> None:
    owner = await clients.user("alice")
    await owner.command("/create den")
    made = await owner.command("/webhook create chatty")
    async with http(server) as hook:
        statuses = [(await hook.post(made["path"], json={"text": "m"})).status_code
                    for _ in range(3)]
    assert statuses == [201, 201, 429]


async def test_webhooks_through_the_api_and_e2e_rooms_refuse_bots(
        server: ChatServer, clients: Clients) -> None:
    owner = await clients.user("alice")
    await owner.command("/create den")
    token = await token_for(server, "alice")
    async with http(server, token) as client:
        made = await client.post("/api/v1/rooms/den/webhooks", json={"name": "alerts"})
        assert made.status_code == 201
        hook = made.json()
        listed = (await client.get("/api/v1/rooms/den/webhooks")).json()["webhooks"]
        assert [h["id"] for h in listed] == [hook["id"]]
        await owner.command("/e2e on den")
        await settle(owner)
        refused = await client.post(hook["path"], json={"text": "plain"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "e2e-required"
        assert "a webhook cannot post" in refused.json()["error"]["message"]
        gone = await client.delete(f"/api/v1/rooms/den/webhooks/{hook['id']}")
        assert gone.json()["revoked"] is True
        again = await client.delete(f"/api/v1/rooms/den/webhooks/{hook['id']}")
        assert again.status_code == 404


async def _hook_of_an_admin(server: ChatServer, clients: Clients) -> tuple[Any, Any, str]:
    """alice's room den, where bob, made an admin, creates a webhook: alice, bob and
    the hook's path, once a post through it went through."""
    owner, bob = await room_with(clients, "alice", "bob", room="den")
    await owner.command("/promote bob den")
    path = (await bob.command("/webhook create deploy den"))["path"]
    async with http(server) as hook:
        assert (await hook.post(path, json={"text": "first"})).status_code == 201
    return owner, bob, path


@pytest.mark.parametrize(("who", "line", "code"), [
    ("bob", "/leave den", "not-in-room"),
    ("alice", "/kick bob den", "not-in-room"),
    ("alice", "/ban bob den", "not-in-room"),
    ("alice", "/mute bob den", "muted"),
    ("alice", "/demote bob den", "not-permitted"),
])
async def test_a_webhook_loses_what_its_creator_loses(
        server: ChatServer, clients: Clients, who: str, line: str, code: str) -> None:
    """A hook speaks for its creator: once they may not post (or no longer hold the
    role making it needed), neither may the hook; the refusal is the API's (403)."""
    owner, bob, path = await _hook_of_an_admin(server, clients)
    await (owner if who == "alice" else bob).command(line)
    async with http(server) as hook:
        refused = await hook.post(path, json={"text": "after"})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == code and "bob" in error["message"]
    history = await owner.command("/history den")
    assert "after" not in [m.get("text") for m in history["messages"]]


async def test_a_webhook_in_a_moderated_room_needs_its_creator_s_voice(
        server: ChatServer, clients: Clients) -> None:
    """In a moderated room a demoted creator's hook is silenced as they are; with
    voice again they speak, but their hook still needs the admin role it was made with."""
    owner, bob, path = await _hook_of_an_admin(server, clients)
    await owner.command("/mode +m den")
    async with http(server) as hook:
        assert (await hook.post(path, json={"text": "admin"})).status_code == 201
        await owner.command("/demote bob den")
        silenced = await hook.post(path, json={"text": "demoted"})
        assert silenced.status_code == 403
        assert silenced.json()["error"]["code"] == "moderated"
        await owner.command("/voice bob den")
        assert (await bob.command("/say den voiced")).ok
        voiced = await hook.post(path, json={"text": "voiced hook"})
        assert voiced.status_code == 403
        assert voiced.json()["error"]["code"] == "not-permitted"


async def test_a_deleted_creator_s_webhook_is_gone(server: ChatServer,
                                                   clients: Clients) -> None:
    owner, _bob, path = await _hook_of_an_admin(server, clients)
    await server.services.accounts.set_admin(server.services.accounts.require("alice"), True)
    await owner.command("/userdel bob")
    async with http(server) as hook:
        gone = await hook.post(path, json={"text": "orphan"})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "no-such-webhook"


async def test_a_token_that_may_not_post_makes_no_webhook(
        server: ChatServer, clients: Clients) -> None:
    """A webhook posts in the room: a token with moderate but not post (a moderation
    bot's) would otherwise post through one it made, which its scopes refuse it."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    moderator = await clients.anonymous()
    made = await owner.command("/token create mod read,moderate")
    await moderator.command(f"/login alice --token {made['token']}")
    refused = await error_of(moderator, "/webhook create sneaky den")
    assert refused["code"] == "scope" and refused["scope"] == "post"
    assert "creating a webhook" in refused["message"]
    token = await token_for(server, "alice", frozenset({Scope.READ, Scope.MODERATE}))
    async with http(server, token) as client:
        answer = await client.post("/api/v1/rooms/den/webhooks", json={"name": "sneaky"})
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["scope"] == "post"
        # Its webhooks may still be listed and revoked: neither posts.
        assert (await client.get("/api/v1/rooms/den/webhooks")).status_code == 200
    assert (await owner.command("/webhook list den"))["webhooks"] == []
    operation = (await _openapi(server))["paths"]["/api/v1/rooms/{room}/webhooks"]["post"]
    assert operation["x-scopes"] == ["moderate", "post"]


async def _openapi(server: ChatServer) -> Any:
    async with http(server) as client:
        return (await client.get("/api/v1/openapi.json")).json()


async def test_a_webhook_made_with_a_token_ends_with_the_token(
        server: ChatServer, clients: Clients) -> None:
    """A script logged in with an API token makes a webhook: revoking the token ends
    the webhook too (403 token-revoked), which stays listed as dead, its name taken
    until it is revoked. A webhook made from a password session goes on posting."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    token = (await owner.command("/token create ci read,post,moderate"))["token"]
    script = await clients.anonymous()
    await script.command(f"/login alice --token {token}")
    by_token = await script.command("/webhook create deploy den")
    assert (by_token["by_token"], by_token["dead"]) == (True, None)
    assert "lives as long as the API token" in by_token["message"]
    by_password = await owner.command("/webhook create manual den")
    assert (by_password["by_token"], by_password["dead"]) == (False, None)
    assert "API token" not in by_password["message"]
    async with http(server) as hook:
        assert (await hook.post(by_token["path"], json={"text": "before"})).status_code == 201
        await owner.command("/token revoke ci")
        refused = await hook.post(by_token["path"], json={"text": "after"})
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "token-revoked" and "deploy[bot]" in error["message"]
        kept = await hook.post(by_password["path"], json={"text": "by hand"})
        assert kept.status_code == 201, kept.text
    listed = {h["name"]: h for h in (await owner.command("/webhook list den"))["webhooks"]}
    assert (listed["deploy"]["dead"], listed["manual"]["dead"]) == ("token-revoked", None)
    taken = await error_of(owner, "/webhook create deploy den")
    assert taken["code"] == "name-taken" and "dead (its token was revoked)" in taken["message"]
    history = await owner.command("/history den")
    assert [m["text"] for m in history["messages"]] == ["before", "by hand"]
    await owner.command(f"/webhook revoke {by_token['id']} den")
    assert (await owner.command("/webhook create deploy den")).ok


async def test_the_text_mode_list_shows_which_webhooks_end_with_their_token(
        server: ChatServer, clients: Clients) -> None:
    """by_token has a column of its own in text mode, beside state: a hook made by a
    script's token (which ends with it) reads "yes", one made by hand "no"."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    token = (await owner.command("/token create ci read,post,moderate"))["token"]
    script = await clients.anonymous()
    await script.command(f"/login alice --token {token}")
    await script.command("/webhook create deploy den")
    await owner.command("/webhook create manual den")
    await owner.command("/token revoke ci")
    reader = await text_client(clients, "alice")
    lines = await text_run(reader, "/webhook list den")
    # Read by column: each row cut where the header's columns start.
    header = lines[0]
    assert header.endswith("  by token  state"), lines
    token_at, state_at = header.index("by token"), header.index("state")
    cells = [(line[token_at:state_at].strip(), line[state_at:].strip()) for line in lines[1:3]]
    assert cells == [("yes", "dead: token-revoked"), ("no", "live")], lines


async def test_a_webhook_made_through_the_api_ends_when_its_token_expires(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    owner = await clients.user("alice")
    await owner.command("/create den")
    token = (await owner.command("/token create api read,post,moderate 1h"))["token"]
    async with http(server, token) as client:
        answer = await client.post("/api/v1/rooms/den/webhooks", json={"name": "alerts"})
        made = answer.json()
        assert answer.status_code == 201 and made["by_token"] is True, answer.text
        assert (await client.post(made["path"], json={"text": "in time"})).status_code == 201
    clock.advance(3600)
    async with http(server) as hook:
        refused = await hook.post(made["path"], json={"text": "too late"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "token-expired"
    [listed] = (await owner.command("/webhook list den"))["webhooks"]
    assert listed["dead"] == "token-expired"
    history = await owner.command("/history den")
    assert [m["text"] for m in history["messages"]] == ["in time"]


async def test_a_webhook_made_with_a_browser_tabs_token_lives_as_the_account(
        server: ChatServer, clients: Clients, clock: ManualClock) -> None:
    """The web client logs a tab in again with a session token of its own (made with
    --session). A webhook made from that login, or from a resume token made from it,
    is not tied to the token: the tab logging out (which revokes it) or the token
    expiring leaves the webhook posting, as one made from a password session."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    made = await owner.command("/token create web-tab all 1h --session")
    assert made["kind"] == "session" and made["message"].startswith("Session token web-tab")
    tab = await clients.anonymous()
    resume = (await tab.command(f"/login alice --token {made['token']} --resume"))["resume"]
    by_tab = await tab.command("/webhook create deploy den")
    assert (by_tab["by_token"], by_tab["dead"]) == (False, None)
    assert "API token" not in by_tab["message"]
    resumed = await clients.anonymous()
    await resumed.command(f"/login --resume {resume}")
    by_resumed = await resumed.command("/webhook create build den")
    assert by_resumed["by_token"] is False
    async with http(server, made["token"]) as client:
        answer = await client.post("/api/v1/rooms/den/webhooks", json={"name": "alerts"})
        by_api = answer.json()
        assert answer.status_code == 201 and by_api["by_token"] is False, answer.text
    # The tab logs out (its token revoked); the other token expires with the clock.
    await owner.command("/token revoke web-tab")
    clock.advance(3600)
    async with http(server) as hook:
        for path in (by_tab["path"], by_resumed["path"], by_api["path"]):
            posted = await hook.post(path, json={"text": "still here"})
            assert posted.status_code == 201, posted.text
    listed = (await owner.command("/webhook list den"))["webhooks"]
    assert [(h["name"], h["by_token"], h["dead"]) for h in listed] == [
        ("deploy", False, None), ("build", False, None), ("alerts", False, None)]


async def test_only_a_session_of_no_scripts_token_makes_session_tokens(
        server: ChatServer, clients: Clients) -> None:
    """A script logged in with an API token cannot make a session token (whose
    webhooks would outlive the script's token); a tab logged in with its session
    token can (it renews its own when a duplicate of it logged out). /token list
    shows each token's kind."""
    owner = await clients.user("alice")
    await owner.command("/create den")
    script_token = (await owner.command("/token create ci all"))["token"]
    assert (await owner.command("/token list"))["tokens"][0]["kind"] == "api"
    script = await clients.anonymous()
    await script.command(f"/login alice --token {script_token}")
    refused = await error_of(script, "/token create sneaky all --session")
    assert refused["code"] == "not-permitted", refused
    assert (await script.command("/token create helper all"))["kind"] == "api"
    tab_token = (await owner.command("/token create web-tab all 7d --session"))["token"]
    tab = await clients.anonymous()
    await tab.command(f"/login alice --token {tab_token}")
    renewed = await tab.command("/token create web-next all 7d --session")
    assert renewed["kind"] == "session"
    kinds = {t["name"]: t["kind"] for t in (await owner.command("/token list"))["tokens"]}
    assert kinds == {"ci": "api", "helper": "api", "web-tab": "session",
                     "web-next": "session"}
    assert {r.name: r.kind for r in await server.services.storage.load_tokens()} == kinds
    mistyped = await error_of(owner, "/token create x all 7d --sesion")
    assert mistyped["code"] == "bad-arguments" and "--session" in mistyped["message"]
