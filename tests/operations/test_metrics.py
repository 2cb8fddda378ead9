"""The optional Prometheus endpoint (metrics.enabled)."""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatd.app.app import App
from chatd.ops.metrics import MetricsUnavailable, start_metrics
from tests.helpers import Clients
from tests.operations import ChatdProcess, running_daemon, wait_for, write_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(daemon: App) -> Samples:
    port = daemon._metrics.server_port
    assert daemon._metrics.server_address[0] == "127.0.0.1"

    def fetch() -> tuple[int, str, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()

    status, content_type, text = await asyncio.to_thread(fetch)
    assert status == 200 and content_type.startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_activity(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, metrics__enabled=True, metrics__port=0) as daemon:
        before = await scrape(daemon)
        for name in ("chatd_connections", "chatd_users_online", "chatd_rooms",
                     "chatd_messages_in_total", "chatd_messages_out_total",
                     "chatd_connections_total", "chatd_logins_total",
                     "chatd_login_failures_total", "chatd_rate_limited_total",
                     "chatd_storage_flush_seconds", "chatd_event_loop_lag_seconds",
                     "chatd_storage_pending", "chatd_storage_dropped_total"):
            assert (name, ()) in before, name
        assert value(before, "chatd_connections") == 0
        assert value(before, "chatd_storage_dropped_total") == 0
        assert value(before, "chatd_messages_in_total") == 0

        clients = Clients(daemon)
        try:
            alice = await clients.user("alice")
            bob = await clients.user("bob")
            await alice.command("/create lounge")
            await bob.command("/join lounge")
            for n in range(3):
                await alice.command(f"/say lounge hello {n}")
            for _ in range(2):
                await bob.command("/frobnicate", check=False)
            await bob.command("/say nowhere hi", check=False)
            during = await scrape(daemon)
            await alice.command("/history lounge")  # it writes what is pending first
            flushed = await scrape(daemon)
        finally:
            await clients.close()
        assert value(during, "chatd_connections") == 2
        assert value(during, "chatd_users_online") == 2
        assert value(during, "chatd_rooms") == 1
        assert value(during, "chatd_messages_in_total") == 3
        assert value(during, "chatd_messages_out_total") == 6  # 3 messages to 2 members
        assert value(during, "chatd_logins_total") >= 2
        assert value(flushed, "chatd_storage_pending") == 0
        errors = {labels: v for (name, labels), v in during.items() if name == "chatd_errors_total"}
        assert errors[(("code", "unknown-command"),)] == 2
        assert len(errors) == 2 and sum(errors.values()) == 3

        await wait_for(lambda: daemon.connection_count == 0)
        after = await scrape(daemon)
        assert value(after, "chatd_connections_total") == 2
        assert value(after, "chatd_connections") == 0
    daemon._metrics.server_close()  # see test_metrics_port_is_closed_on_stop


async def test_metrics_port_is_closed_on_stop(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, metrics__enabled=True, metrics__port=0) as daemon:
        metrics = daemon._metrics
        port = metrics.server_port
    try:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    finally:
        metrics.server_close()


async def test_metrics_off_by_default(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        assert daemon._metrics is None


async def test_metrics_unavailable_without_prometheus_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    async with running_daemon(tmp_path) as daemon:
        with pytest.raises(MetricsUnavailable, match="prometheus-client"):
            start_metrics(daemon, "127.0.0.1", 0)


async def test_the_log_says_where_metrics_are_served(tmp_path: Path) -> None:
    """With metrics.port 0 (any free port) the log is the only place that says which."""
    config = write_config(tmp_path / "chatd.yaml", metrics={"enabled": True, "port": 0})
    with ChatdProcess.serve(tmp_path, config) as daemon:
        await daemon.ready()
        line = await daemon.wait_log(r'msg="metrics"')
        url = line.split("url=", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode())

        assert "chatd_connections" in await asyncio.to_thread(fetch)
