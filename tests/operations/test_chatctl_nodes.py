"""``chatctl nodes`` on the embedded daemon (its one process), and how nodes
that differ are flagged (chatd/ops/nodes.py). A cluster's listing is tested in
tests/cluster/test_presence.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from chatd import __version__
from chatd.config import load_config, shared_config_hash
from chatd.ops.chatctl import main
from chatd.ops.nodes import flagged
from tests.operations import running_daemon

pytestmark = pytest.mark.asyncio


async def test_the_embedded_daemon_is_one_node(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    async with running_daemon(tmp_path) as daemon:
        socket = daemon.control.path
        assert await asyncio.to_thread(main, ["--socket", socket, "nodes", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["this"] == "embedded" and answer["warnings"] == []
        [row] = answer["nodes"]
        assert (row["node"], row["version"], row["flag"], row["lag_ms"]) == \
            ("embedded", __version__, "", 0)
        assert row["addresses"] == f"line={daemon.addresses[0]}"  # named, as the log does
        assert row["config"] == shared_config_hash(daemon.config)
        assert await asyncio.to_thread(main, ["--socket", socket, "nodes"]) == 0
        out = capsys.readouterr().out
        assert "embedded *" in out and "!" not in out


def row(node: str, version: str = "1.0", config: str = "c1", alive: bool = True
        ) -> dict[str, Any]:
    return {"node": node, "alive": alive, "version": version if alive else None,
            "config": config if alive else None}


async def test_the_odd_one_out_is_flagged_and_a_tie_goes_to_this_node() -> None:
    rows, warnings = flagged([row("n1"), row("n2", version="2.0"), row("n3")], "n1")
    assert [r["flag"] for r in rows] == ["", "!", ""]
    assert warnings == ["n2 runs version 2.0; most nodes: 1.0."]
    rows, warnings = flagged([row("n1", config="a"), row("n2", config="b")], "n2")
    assert [r["flag"] for r in rows] == ["!", ""]
    assert warnings[0].startswith("n1 has another shared configuration (a)")
    rows, warnings = flagged([row("n1"), row("n2", alive=False)], "n1")
    assert [r["flag"] for r in rows] == ["", "!"]
    assert warnings == ["n2 has no heartbeat: its sessions are being dropped."]


async def test_the_shared_configuration_hash_follows_the_shared_sections_only() -> None:
    base = load_config(None, {})
    assert shared_config_hash(base) == shared_config_hash(load_config(None, {"listen.port": 1}))
    assert shared_config_hash(base) != shared_config_hash(
        load_config(None, {"limits.message_rate": 1.0}))
