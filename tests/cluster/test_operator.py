"""An operator's commands on a cluster (docs/CLUSTER.md): a broadcast reaches every
node's connections, and ``chatctl backup`` refuses with a stable code, saying
what backs a cluster's database up. Three in-process nodes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from rich.console import Console

from chatd.app.app import App
from chatd.client import ChatClient
from chatd.ops.chatctl import main
from chatd.ops.control_client import ControlClient
from chatd.ops.top import TopScreen
from storage.api import Unavailable
from tests.cluster.conftest import StartNode, login, register

pytestmark = [pytest.mark.asyncio, pytest.mark.cluster]


async def heard(client: ChatClient, text: str) -> dict[str, Any]:
    return await client.next_event(
        lambda e: e.get("broadcast") is True and e.get("text") == f"[server] {text}",
        timeout=10)


async def started(start_node: StartNode, socket: str) -> list[App]:
    first = await start_node(1, control__path=socket)
    await register(first, "root", "ann", "bob")
    await first.services.accounts.set_admin(first.services.accounts.require("root"), True)
    return [first, await start_node(2), await start_node(3)]


async def test_a_broadcast_reaches_every_nodes_connections_once(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    socket = str(tmp_path / "n1.sock")
    nodes = await started(start_node, socket)
    root, ann = await login(nodes[0], "root"), await login(nodes[1], "ann")
    # Logged in or not, on any node.
    anonymous = await ChatClient.connect("127.0.0.1", nodes[2].port)
    everyone = [root, ann, anonymous]
    try:
        reply = await root.command("/broadcast restart at 18:00")
        assert reply["sessions"] == 1 and "every other node" in reply["message"]
        # The issuer's copy is a line of its reply; the others hear it unasked.
        assert [line["text"] for line in reply.lines] == ["[server] restart at 18:00"]
        for client in (ann, anonymous):
            await heard(client, "restart at 18:00")

        await nodes[0].control.start()
        try:
            assert await asyncio.to_thread(
                main, ["--socket", socket, "--json", "broadcast", "back", "soon"]) == 0
            answer = json.loads(capsys.readouterr().out)
            assert answer == {"sessions": 1, "other_nodes": True}
            for client in everyone:
                await heard(client, "back soon")
        finally:
            await nodes[0].control.stop()
        # Once each: nothing more came by the time a ping is answered.
        for client in everyone:
            await client.command("/ping")
            assert not [e for e in client.pending_events() if e.get("broadcast")]
        audited = await root.command("/audit 5")
        assert sorted(e["actor"] for e in audited["entries"]
                      if e["action"] == "broadcast") == ["console", "root"]
    finally:
        for client in everyone:
            await client.close()


async def test_a_broadcast_made_while_redis_refuses_reaches_the_others_once_it_answers(
        start_node: StartNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chatd.cluster.bus.ANNOUNCE_RETRY", 0.05)
    nodes = await started(start_node, str(tmp_path / "n1.sock"))
    root, ann = await login(nodes[0], "root"), await login(nodes[1], "ann")
    bus: Any = nodes[0].services.bus
    shared = bus._shared
    bus._shared = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        reply = await root.command("/broadcast maintenance now")
        assert "every other node" in reply["message"]
        assert [line["text"] for line in reply.lines] == ["[server] maintenance now"]
        await asyncio.sleep(0.3)  # refused by Redis, and tried again: not sent yet
        assert not [e for e in ann.pending_events() if e.get("broadcast")]
    finally:
        await bus._shared.aclose()
        bus._shared = shared
    await heard(ann, "maintenance now")
    for client in (root, ann):
        await client.close()


async def test_chatctl_backup_on_a_cluster_is_refused_and_says_what_to_use(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    socket = str(tmp_path / "n1.sock")
    nodes = await started(start_node, socket)
    await nodes[0].control.start()
    try:
        copy = tmp_path / "copy.db"
        status = await asyncio.to_thread(main, ["--socket", socket, "backup", str(copy)])
        said = capsys.readouterr().err
        assert status == 1 and not copy.exists()
        assert "not-permitted" in said and "pg_dump" in said
        assert "internal" not in said
    finally:
        await nodes[0].control.stop()


async def test_the_admin_feed_follows_what_every_node_audits(
        start_node: StartNode, tmp_path: Path) -> None:
    """/adminfeed (and the live admin page) shows every new audit entry: one made
    through another node too, once."""
    nodes = await started(start_node, str(tmp_path / "n1.sock"))
    root, ann = await login(nodes[0], "root"), await login(nodes[1], "ann")
    try:
        await root.command("/adminfeed on")
        await ann.command("/create den")
        entry = (await root.next_event(
            lambda e: (e.get("audit") or {}).get("action") == "create", timeout=10))["audit"]
        assert (entry["actor"], entry["room"]) == ("ann", "den")
        bob = await login(nodes[2], "bob")
        await root.next_event(
            lambda e: (e.get("audit") or {}).get("action") == "login"
            and e["audit"]["actor"] == "bob", timeout=10)
        await bob.close()
        await root.command("/ping")
        assert not [e for e in root.pending_events()
                    if (e.get("audit") or {}).get("action") == "create"]
    finally:
        for client in (root, ann):
            await client.close()


async def test_a_control_command_while_the_database_does_not_answer_is_busy(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A control command that needs the database (chatctl audit) answers busy while
    PostgreSQL does not answer, as the line protocol does, not internal-error."""
    socket = str(tmp_path / "n1.sock")
    first = await start_node(1, control__path=socket)

    async def away(*_args: Any, **_kwargs: Any) -> None:
        raise Unavailable("PostgreSQL unreachable: no answer in time")

    monkeypatch.setattr(first.storage, "list_audit", away)
    await first.control.start()
    try:
        assert await asyncio.to_thread(main, ["--socket", socket, "audit"]) == 1
        said = capsys.readouterr().err
        assert said.startswith("chatctl: busy: the database does not answer"), said
    finally:
        await first.control.stop()


async def test_top_labels_the_nodes_figures_and_the_clusters(
        start_node: StartNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chatctl top against a cluster node: the status line its stream carries is
    shown with the node's id, its connections in the row of this node's figures and
    the users online (on both nodes) in the row of the whole cluster's."""
    monkeypatch.setattr("chatd.ops.control.FOLLOW_STATUS_INTERVAL", 0.05)
    socket = str(tmp_path / "n1.sock")
    first = await start_node(1, control__path=socket)
    await register(first, "ann", "bob")
    second = await start_node(2)
    ann, bob = await login(first, "ann"), await login(second, "bob")
    screen = TopScreen()
    try:
        await first.control.start()
        try:
            async with contextlib.aclosing(ControlClient(socket).follow()) as stream:
                async for item in stream:
                    screen.feed(item)
                    if screen.status.get("users_online") == 2:
                        break
        finally:
            await first.control.stop()
    finally:
        await ann.close()
        await bob.close()
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(screen.render())
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert any("node n1" in line for line in lines)
    node_row = next(line for line in lines if "this node" in line)
    cluster_row = next(line for line in lines if "whole cluster" in line)
    assert "connections 1" in node_row and "online" not in node_row
    assert "online 2" in cluster_row and "connections" not in cluster_row


async def test_status_names_the_node_and_whose_each_count_is(
        start_node: StartNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ann on n1, bob on n2: n1's connections are its own (1), its users online the
    # cluster's (2). An operator adding up the nodes' answers must tell them apart.
    socket = str(tmp_path / "n1.sock")
    first = await start_node(1, control__path=socket)
    await register(first, "ann", "bob")
    second = await start_node(2)
    ann, bob = await login(first, "ann"), await login(second, "bob")
    try:
        async with asyncio.timeout(10):
            while first.services.presence.users_online < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await first.control.start()
        try:
            assert await asyncio.to_thread(main, ["--socket", socket, "--json", "status"]) == 0
            answer = json.loads(capsys.readouterr().out)
            assert await asyncio.to_thread(main, ["--socket", socket, "status"]) == 0
            text = capsys.readouterr().out
        finally:
            await first.control.stop()
    finally:
        await ann.close()
        await bob.close()
    assert (answer["node"], answer["connections"], answer["users_online"]) == ("n1", 1, 2)
    assert {"connections", "messages", "messages_per_second"} <= set(answer["node_figures"])
    assert {"users_online", "users", "rooms"} <= set(answer["cluster_figures"])
    lines = [line.split() for line in text.splitlines()]
    assert lines[0] == ["node", "n1"]
    assert ["connections", "1", "this", "node"] in lines
    assert ["users_online", "2", "whole", "cluster"] in lines
    assert not any("figures" in line[0] for line in lines)
