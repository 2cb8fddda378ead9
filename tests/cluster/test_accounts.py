"""An account made with ``chatd useradd`` beside running nodes (writing the
cluster's database, no node's control socket answering, no announcement on
the log) logs in on a node that started before it existed."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.client.api import ClientError
from tests.helpers import PASSWORD, start_server
from tests.operations import CHATD, write_config
from tests.services import RedisServer

pytestmark = pytest.mark.asyncio


async def test_an_account_made_outside_the_nodes_logs_in(
        tmp_path: Path, postgres_url: str, redis_server: RedisServer) -> None:
    # Without Redis: the account is not announced to the nodes; they learn of it at its login.
    cluster = {"enabled": True, "node_id": "n0", "postgres": postgres_url}
    node = await start_server(tmp_path / "n1.db", cluster__enabled=True, cluster__node_id="n1",
                              cluster__postgres=postgres_url, cluster__redis=redis_server.url,
                              control__enabled=False)
    try:
        client = await ChatClient.connect("127.0.0.1", node.port)
        with pytest.raises(ClientError):
            await client.command(f"/login erin {PASSWORD}")
        config = write_config(tmp_path / "outside.yaml", cluster=cluster,
                              backup={"interval": 0},
                              storage={"path": str(tmp_path / "outside.db")})
        made = await asyncio.to_thread(
            subprocess.run, [str(CHATD), "useradd", "erin", "--password-stdin",
                             "--config", str(config)],
            input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=60, check=False)
        assert made.returncode == 0, made.stderr
        assert node.services.accounts.find("erin") is None
        reply = await client.command(f"/login erin {PASSWORD}")
        assert reply.ok
        assert node.services.accounts.find("erin") is not None
        await client.close()
        # A wrong password for an account this node does not know yet stays a failure.
        other = await ChatClient.connect("127.0.0.1", node.port)
        with pytest.raises(ClientError):
            await other.command("/login erin wrong-password")
        await other.close()
    finally:
        await node.stop()
