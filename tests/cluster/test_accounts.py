"""An account changed through one node is changed on every node: tokens, blocks,
passwords and deletion (docs/CLUSTER.md, "Governance exactly once")."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.domain.tokens import PREFIX, token_hash
from storage.api import StorageError
from tests.cluster.conftest import login, register
from tests.cluster.test_nodes import (
    nodes,  # noqa: F401 - the three nodes
    registry,
)
from tests.helpers import PASSWORD
from tests.operations import CHATD, write_config
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio


async def everywhere(nodes: list[App], holds: Callable[[App], bool]) -> None:  # noqa: F811
    """Wait until ``holds`` is true of every node, as the log's entries reach them
    (bounded)."""
    async with asyncio.timeout(10):
        while not all(holds(app) for app in nodes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def token_login(app: App, secret: str) -> str:
    """The outcome of a log-in with API token ``secret`` on ``app``: ok or the error code."""
    client = await ChatClient.connect("127.0.0.1", app.port)
    reply = await client.command(f"/auth {secret}", check=False)
    await client.close()
    return str(reply.get("code", reply["type"]))


async def test_a_token_made_or_revoked_on_one_node_is_so_on_every_node(
        nodes: list[App]) -> None:  # noqa: F811
    ann = await login(nodes[0], "ann")
    secret = (await ann.command("/token create bot"))["token"]
    await everywhere(nodes, lambda app: len(app.services.tokens.of(
        app.services.accounts.require("ann"))) == 1)
    assert [await token_login(app, secret) for app in nodes] == ["ok", "ok", "ok"]
    await ann.command("/token revoke bot")
    await everywhere(nodes, lambda app: not app.services.tokens.of(
        app.services.accounts.require("ann")))
    assert [await token_login(app, secret) for app in nodes] == ["auth-failed"] * 3
    # A token no node announced (written straight to the database, as by another
    # node a moment before its announcement arrives) is looked up where it is not held.
    user = nodes[0].services.accounts.require("ann")
    unannounced = PREFIX + "A" * 43
    await nodes[0].storage.create_token(user.id, "direct", token_hash(unannounced),
                                        nodes[0].clock.time(), None)
    assert await token_login(nodes[2], unannounced) == "ok"
    # Revoked on a node that does not hold it: the row decides.
    elsewhere = await login(nodes[1], "ann")
    assert (await elsewhere.command("/token revoke direct"))["type"] == "ok"
    assert await token_login(nodes[2], unannounced) == "auth-failed"
    for client in (ann, elsewhere):
        await client.close()


async def test_a_tabs_token_not_held_yet_makes_a_webhook_that_lives_as_the_account(
        nodes: list[App]) -> None:  # noqa: F811
    """A browser tab's session token made on another node a moment ago (written
    straight to the database, its announcement not arrived): a webhook made from a
    log-in with it on a node that does not hold it yet is not tied to it either, the
    kind read where the token is not held."""
    await register(nodes[0], "eve")
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is not None)
    user = nodes[0].services.accounts.require("eve")
    unannounced = PREFIX + "S" * 43
    await nodes[0].storage.create_token(user.id, "web-tab", token_hash(unannounced),
                                        nodes[0].clock.time(), None, kind="session")
    tab = await ChatClient.connect("127.0.0.1", nodes[2].port)
    assert (await tab.command(f"/auth {unannounced}"))["type"] == "ok"
    await tab.command("/create eves-den")
    made = await tab.command("/webhook create deploy eves-den")
    assert (made["by_token"], made["dead"]) == (False, None)
    await tab.close()


async def test_a_block_made_on_one_node_refuses_messages_sent_on_another(
        nodes: list[App]) -> None:  # noqa: F811
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command("/block bob")
    bob_id = nodes[0].services.accounts.require("bob").id
    await everywhere(nodes, lambda app: bob_id in app.services.accounts.require("ann").blocked)
    assert (await bob.command("/msg ann hello", check=False))["code"] == "blocked"
    await ann.command("/unblock bob")
    await everywhere(nodes, lambda app: not app.services.accounts.require("ann").blocked)
    assert (await bob.command("/msg ann hello again"))["type"] == "ok"
    for client in (ann, bob):
        await client.close()


async def test_a_password_changed_on_one_node_closes_the_connections_on_the_others(
        nodes: list[App]) -> None:  # noqa: F811
    here, there = await login(nodes[0], "cat"), await login(nodes[2], "cat")
    await everywhere(nodes[:1], lambda app: app.services.accounts.require("cat").elsewhere == 1)
    changed = await here.command(f"/passwd {PASSWORD} a-new-password")
    assert changed["closed_on_nodes"] == 1 and "on 1 other node" in changed["message"]
    told = await there.next_event(lambda e: e.get("type") == "notice", timeout=10)
    assert "password was changed" in told["text"]
    await there.next_event(lambda e: e.get("type") == "closed", timeout=10)
    for client in (here, there):
        await client.close()


async def test_a_token_revoked_on_one_node_closes_its_sessions_on_the_others(
        nodes: list[App]) -> None:  # noqa: F811
    dan = await login(nodes[0], "dan")
    secret = (await dan.command("/token create bot"))["token"]
    await everywhere(nodes, lambda app: len(app.services.tokens.of(
        app.services.accounts.require("dan"))) == 1)
    bots = [await ChatClient.connect("127.0.0.1", app.port) for app in nodes[1:]]
    for bot in bots:
        assert (await bot.command(f"/auth {secret}"))["type"] == "ok"
    await dan.command("/token revoke bot")
    for bot in bots:
        told = await bot.next_event(lambda e: e.get("type") == "error", timeout=10)
        assert told["code"] == "token-revoked" and told["token"] == "bot"
        await bot.next_event(lambda e: e.get("type") == "closed", timeout=10)
    assert (await dan.command("/whoami"))["connections"] == 1
    for client in (dan, *bots):
        await client.close()


async def test_an_account_deleted_on_one_node_is_gone_from_every_node(
        nodes: list[App]) -> None:  # noqa: F811
    await register(nodes[0], "eve")
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is not None)
    eve, dan = await login(nodes[1], "eve"), await login(nodes[2], "dan")
    admin = nodes[0].services.accounts.require("ann")
    await nodes[0].services.accounts.set_admin(admin, True)
    await everywhere(nodes, lambda app: app.services.accounts.require("ann").is_admin)
    ann = await login(nodes[0], "ann")
    await ann.command("/userdel eve")
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is None)
    told = await eve.next_event(lambda e: e.get("type") == "notice", timeout=10)
    assert told["text"] == "your account was deleted."
    await eve.next_event(lambda e: e.get("type") == "closed", timeout=10)
    # dan, on another node, finds no eve: no error of the database's, no stale whois.
    assert (await dan.command("/msg eve hello", check=False))["code"] == "no-such-user"
    assert (await dan.command("/whois eve", check=False))["code"] == "no-such-user"
    for client in (ann, dan, eve):
        await client.close()



async def test_a_log_in_on_another_node_right_after_a_deletion_is_refused(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """/userdel answered on one node; the other node has not read its announcement
    yet (held back here): a log-in there, with a token it still holds, is refused
    as it is on the deleting node, never answered ok and then closed."""
    await register(nodes[0], "eve")
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is not None)
    eve = await login(nodes[0], "eve")
    secret = (await eve.command("/token create bot"))["token"]
    await everywhere(nodes, lambda app: len(app.services.tokens.of(
        app.services.accounts.require("eve"))) == 1)
    bus: Any = nodes[1].services.bus
    apply_change, held = bus._account_changed, asyncio.Event()

    async def late(entry: dict[str, Any]) -> None:
        if entry.get("w") == "deleted":
            await held.wait()
        await apply_change(entry)

    monkeypatch.setattr(bus, "_account_changed", late)
    admin = nodes[0].services.accounts.require("ann")
    await nodes[0].services.accounts.set_admin(admin, True)
    ann = await login(nodes[0], "ann")
    await ann.command("/userdel eve")
    assert nodes[1].services.accounts.find("eve") is not None  # not told yet
    client = await ChatClient.connect("127.0.0.1", nodes[1].port)
    reply = await client.command(f"/auth {secret}", check=False)
    assert reply.get("code") == "auth-failed", reply.final
    assert reply["message"] == "the account eve was deleted."
    assert not nodes[1].services.rooms.connections(nodes[1].services.accounts.require("eve"))
    held.set()
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is None)
    for other in (ann, eve, client):
        await other.close()


async def resumed(app: App, secret: str) -> dict[str, object]:
    """``/login --resume secret`` on ``app``: its final reply."""
    client = await ChatClient.connect("127.0.0.1", app.port)
    reply = await client.command(f"/login --resume {secret}", check=False)
    await client.close()
    return dict(reply.final)


async def test_a_resume_token_of_one_node_logs_in_on_another_once(
        nodes: list[App]) -> None:  # noqa: F811
    client = await ChatClient.connect("127.0.0.1", nodes[0].port)
    first = (await client.command(f"/login ann {PASSWORD} --resume"))["resume"]
    await client.close()
    # The client lost its node: it comes back on another with its resume token.
    again = await resumed(nodes[1], str(first))
    assert again["type"] == "ok" and again["user"] == "ann"
    # Used once: the issuing node, which still holds it, refuses it now.
    assert (await resumed(nodes[0], str(first)))["code"] == "auth-failed"
    # Presented on two nodes at once, the rotated token logs in once.
    both = await asyncio.gather(resumed(nodes[0], str(again["resume"])),
                                resumed(nodes[2], str(again["resume"])))
    assert sorted(str(r["type"]) for r in both) == ["error", "ok"]


async def test_the_unread_count_at_log_in_counts_what_every_node_wrote(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    ann, cat = await login(nodes[0], "ann"), await login(nodes[1], "cat")
    # Two notifications written by the first node, one by the second.
    for room in ("den", "hut"):
        await ann.command(f"/create {room}")
        await ann.command(f"/invite bob {room}")
    await cat.command("/create lab")
    await cat.command("/invite bob lab")
    for app in nodes:
        again = await ChatClient.connect("127.0.0.1", app.port)
        welcome = await again.command(f"/login bob {PASSWORD}")
        assert welcome["notifications"] == 3, app.services.config.cluster.node_id
        await again.close()
    # The database not answering the count does not refuse the log-in: the node's
    # own count is given (the one notification it wrote).

    async def failing(user_id: int) -> int:
        raise StorageError("the database does not answer")

    monkeypatch.setattr(nodes[1].storage, "count_notifications", failing)
    again = await ChatClient.connect("127.0.0.1", nodes[1].port)
    assert (await again.command(f"/login bob {PASSWORD}"))["notifications"] == 1
    for client in (ann, cat, again):
        await client.close()


async def test_the_dropped_count_at_log_in_counts_what_every_node_dropped(
        nodes: list[App]) -> None:  # noqa: F811
    for app in nodes:  # (limits.max_notifications: 2)
        app.services.notifier.keep = 2
    ann, cat = await login(nodes[0], "ann"), await login(nodes[1], "cat")
    # Three invitations from the first node (one dropped), one more from the second.
    for room in ("den", "hut", "pod"):
        await ann.command(f"/create {room}")
        await ann.command(f"/invite bob {room}")
    await cat.command("/create lab")
    await cat.command("/invite bob lab")
    bob = await ChatClient.connect("127.0.0.1", nodes[2].port)
    welcome = await bob.command(f"/login bob {PASSWORD}")
    assert (welcome["notifications"], welcome["dropped"]) == (2, 2)
    # Told once by the listing, on whichever node: no log-in tells it again.
    assert (await bob.command("/notifications"))["dropped"] == 2
    await bob.close()
    for app in nodes:
        again = await ChatClient.connect("127.0.0.1", app.port)
        assert (await again.command(f"/login bob {PASSWORD}")).get("dropped") is None
        await again.close()
    for client in (ann, cat):
        await client.close()


async def test_away_and_settings_set_on_one_node_are_seen_on_every_node(
        nodes: list[App]) -> None:  # noqa: F811
    ann, bob = await login(nodes[0], "ann"), await login(nodes[1], "bob")
    await ann.command("/away lunch")
    await everywhere(nodes, lambda app: app.services.presence.away(
        app.services.accounts.require("ann")) == "lunch")
    assert (await bob.command("/whois ann"))["away"] == "lunch"
    await ann.command("/set timestamps on")
    await everywhere(nodes, lambda app: app.services.accounts.require("ann").settings.get(
        "timestamps") is True)
    # ann's last connection ends: her away message ends on every node.
    await ann.close()
    await everywhere(nodes, lambda app: not app.services.presence.away(
        app.services.accounts.require("ann")))
    again = await login(nodes[2], "ann")
    assert (await bob.command("/whois ann")).get("away") is None
    for client in (again, bob):
        await client.close()


async def test_an_announcement_redis_refused_is_made_once_it_answers(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("chatd.cluster.bus.ANNOUNCE_RETRY", 0.05)
    ann = await login(nodes[0], "ann")
    secret = (await ann.command("/token create bot"))["token"]
    await everywhere(nodes, lambda app: len(app.services.tokens.of(
        app.services.accounts.require("ann"))) == 1)
    bus: Any = nodes[0].services.bus
    shared = bus._shared
    bus._shared = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        # Revoked (stored) while this node cannot publish: the others still hold it.
        await ann.command("/token revoke bot")
        await asyncio.sleep(0.3)
        assert await token_login(nodes[1], secret) == "ok"
    finally:
        await bus._shared.aclose()
        bus._shared = shared
    # Redis answers again: the announcement is made, and the token fails everywhere.
    await everywhere(nodes, lambda app: not app.services.tokens.of(
        app.services.accounts.require("ann")))
    assert [await token_login(app, secret) for app in nodes] == ["auth-failed"] * 3
    await ann.close()


async def test_a_password_change_revokes_resume_tokens_issued_on_any_node(
        nodes: list[App]) -> None:  # noqa: F811
    client = await ChatClient.connect("127.0.0.1", nodes[2].port)
    issued = (await client.command(f"/login cat {PASSWORD} --resume"))["resume"]
    here = await login(nodes[0], "cat")
    await here.command(f"/passwd {PASSWORD} a-new-password")
    await client.next_event(lambda e: e.get("type") == "closed", timeout=10)
    await everywhere(nodes, lambda app: not app.services.resume.count(
        app.services.accounts.require("cat")))
    assert [str((await resumed(app, str(issued)))["code"]) for app in nodes] == [
        "auth-failed"] * 3
    for each in (client, here):
        await each.close()


async def test_announcements_made_late_leave_every_node_as_the_database_says(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("chatd.cluster.bus.ANNOUNCE_RETRY", 0.05)
    accounts = nodes[0].services.accounts
    ann, bob = accounts.require("ann"), accounts.require("bob")
    bus: Any = nodes[0].services.bus
    shared = bus._shared
    bus._shared = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:  # refused by Redis: kept, to be announced again
        await accounts.block(ann, bob)
        await accounts.set_admin(bob, True)
        await asyncio.sleep(0.2)
    finally:
        await bus._shared.aclose()
        bus._shared = shared
    # Undone at once, announced before or after the late ones: the same end.
    await accounts.unblock(ann, bob)
    await accounts.set_admin(bob, False)
    async with asyncio.timeout(10):
        while bus._unannounced or bus._announcing is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the late entries read
    await everywhere(nodes, lambda app: not app.services.accounts.require("ann").blocked
                     and not app.services.accounts.require("bob").is_admin)


async def test_a_read_again_never_undoes_the_nodes_own_change_being_written(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    # ann blocks bob through the second node, whose write is slow; meanwhile a
    # setting of hers changes through the first, and the second reads her again.
    # Waited for, not slept on: a loaded machine that was slower than the sleeps
    # let the read come after the write, and the test passed whether or not the
    # read waits for it.
    accounts = nodes[1].services.accounts
    ann, bob = accounts.require("ann"), accounts.require("bob")
    writing, written = asyncio.Event(), asyncio.Event()
    store = nodes[1].storage.put_user_block

    async def slow(record: Any, quotas: Any) -> bool:
        writing.set()
        await written.wait()
        return await store(record, quotas)

    sync: Any = registry(nodes[1]).accounts
    reading = asyncio.Event()
    read = sync._read

    async def noted(user_id: int, tokens: bool) -> None:
        if user_id == ann.id:
            reading.set()
        await read(user_id, tokens)

    monkeypatch.setattr(nodes[1].storage, "put_user_block", slow)
    monkeypatch.setattr(sync, "_read", noted)
    blocking = asyncio.ensure_future(accounts.block(ann, bob))
    await asyncio.wait_for(writing.wait(), 10)
    first = nodes[0].services.accounts
    await first.save_settings(first.require("ann"), {"timestamps": True})
    # The announcement read: the second node reads ann again, and that read waits
    # for the write.
    await asyncio.wait_for(reading.wait(), 10)
    written.set()
    assert await blocking is True
    await everywhere(nodes, lambda app: app.services.accounts.require("ann").settings.get(
        "timestamps") is True)
    assert bob.id in ann.blocked
    sender = await login(nodes[1], "bob")
    assert (await sender.command("/msg ann hello", check=False))["code"] == "blocked"
    await sender.close()


async def test_a_deletion_or_password_change_holds_while_the_database_does_not_answer(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cat_there, eve_there = await login(nodes[2], "cat"), None
    await register(nodes[0], "eve")
    await everywhere(nodes, lambda app: app.services.accounts.find("eve") is not None)
    eve_there = await login(nodes[2], "eve")

    async def failing(user_id: int) -> None:
        raise StorageError("the database does not answer")

    monkeypatch.setattr(nodes[2].storage, "get_user", failing)
    cat_here = await login(nodes[0], "cat")
    await cat_here.command(f"/passwd {PASSWORD} a-new-password")
    await cat_there.next_event(lambda e: e.get("type") == "closed", timeout=10)
    first = nodes[0].services
    await first.presence.delete_account(first.accounts.require("eve"), "ann")
    await eve_there.next_event(lambda e: e.get("type") == "closed", timeout=10)
    assert nodes[2].services.accounts.find("eve") is None
    for client in (cat_here, cat_there, eve_there):
        await client.close()


async def test_a_late_away_announcement_does_not_undo_a_newer_one(
        nodes: list[App]) -> None:  # noqa: F811
    presence = nodes[1].services.presence
    ann = nodes[1].services.accounts.require("ann")
    online = await login(nodes[1], "ann")
    presence.away_elsewhere(ann, "lunch", 100.0)
    presence.away_elsewhere(ann, "", 200.0)  # back
    presence.away_elsewhere(ann, "lunch", 150.0)  # the first again, made late
    assert presence.away(ann) == ""
    presence.away_elsewhere(ann, "tea", None)  # from a node of the previous version
    assert presence.away(ann) == "tea"
    await online.close()
    await everywhere(nodes, lambda app: not app.services.presence.users_online)
    presence.away_elsewhere(ann, "lunch", 300.0)  # late, and she is gone
    assert presence.away(ann) == ""
    # The same for a first away message, set before its user went offline.
    bob = nodes[1].services.accounts.require("bob")
    before = nodes[1].clock.time() - 1
    online = await login(nodes[0], "bob")
    # Every node knows bob came online before it waits for him to go: else a node
    # that had not heard yet passes the wait, and hears of the log-out too late.
    await everywhere(nodes, lambda app: app.services.presence.users_online == 1)
    await online.close()
    await everywhere(nodes, lambda app: not app.services.presence.users_online)
    presence.away_elsewhere(bob, "lunch", before)
    assert presence.away(bob) == ""


async def test_an_account_whose_creation_a_node_could_not_read_is_read_at_its_next_change(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    storage = nodes[2].storage
    read = storage.get_user
    calls: list[int] = []

    async def failing_once(user_id: int) -> Any:
        calls.append(user_id)
        if len(calls) == 1:
            raise StorageError("the database does not answer")
        return await read(user_id)

    monkeypatch.setattr(storage, "get_user", failing_once)
    ann = await login(nodes[0], "ann")
    made = await ann.command("/bot create helper")
    # The bot's token was announced after it: the third node reads the bot then.
    await everywhere(nodes, lambda app: app.services.accounts.find("helper") is not None)
    assert calls[0] == nodes[0].services.accounts.require("helper").id  # the one that failed
    assert await token_login(nodes[2], str(made["token"])) == "ok"
    await ann.close()


async def test_an_away_message_set_at_once_after_log_in_reaches_every_node(
        nodes: list[App]) -> None:  # noqa: F811
    # The away announcement may arrive before the news that ann is online.
    ann = await login(nodes[0], "ann")
    await ann.command("/away lunch")
    await everywhere(nodes, lambda app: app.services.presence.away(
        app.services.accounts.require("ann")) == "lunch")
    await ann.close()


async def test_an_account_read_late_is_read_whole_and_never_after_its_deletion(
        nodes: list[App], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    storage = nodes[2].storage
    read = storage.get_user
    calls: list[int] = []
    held = asyncio.Event()

    async def failing_then_held(user_id: int) -> Any:
        calls.append(user_id)
        if len(calls) == 1:
            raise StorageError("the database does not answer")
        if len(calls) == 2 and user_id == calls[0]:
            await held.wait()
        return await read(user_id)

    monkeypatch.setattr(storage, "get_user", failing_then_held)
    await register(nodes[0], "eve")  # not read by the third node
    eve = await login(nodes[0], "eve")
    await eve.command("/block bob")  # announced: the third node reads eve, slowly
    async with asyncio.timeout(10):
        while len(calls) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # Deleted while that read waits: the read's answer does not bring eve back.
    first = nodes[0].services
    await first.presence.delete_account(first.accounts.require("eve"), "ann")
    await asyncio.sleep(0.2)
    held.set()
    await asyncio.sleep(0.3)
    assert nodes[2].services.accounts.find("eve") is None
    # Another account read late gets its blocks and its presence elsewhere.
    calls.clear()
    monkeypatch.setattr(storage, "get_user", failing_then_held)
    held.set()
    await register(nodes[0], "fay")
    fay = await login(nodes[0], "fay")
    await fay.command("/block bob")
    bob_id = nodes[0].services.accounts.require("bob").id
    await everywhere(nodes, lambda app: (app.services.accounts.find("fay") is not None and
                                         bob_id in app.services.accounts.require("fay").blocked))
    assert nodes[2].services.accounts.require("fay").online
    for client in (eve, fay):
        await client.close()


async def test_an_account_made_by_chatd_useradd_while_nodes_run_logs_in_on_every_node(
        nodes: list[App], tmp_path: Path, postgres_url: str,  # noqa: F811
        redis_server: RedisServer) -> None:
    """The sysadmin's way, on a machine whose configuration names the cluster but
    no node's control socket: written to PostgreSQL and announced on the log."""
    config = write_config(tmp_path / "admin.yaml",
                          cluster={"enabled": True, "node_id": "console",
                                   "postgres": postgres_url, "redis": redis_server.url},
                          control={"path": str(tmp_path / "nobody.sock")},
                          storage={"path": str(tmp_path / "console.db")})
    made = await asyncio.to_thread(
        subprocess.run, [str(CHATD), "useradd", "zed", "--admin", "--password-stdin",
                         "--config", str(config)],
        input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=60, check=False)
    assert (made.returncode, made.stdout.strip()) == (0, "created admin account zed"), \
        made.stderr
    assert "Traceback" not in made.stderr
    await everywhere(nodes, lambda app: app.services.accounts.find("zed") is not None)
    for app in nodes:
        zed = await login(app, "zed")
        assert (await zed.command("/whoami"))["admin"] is True
        await zed.close()
