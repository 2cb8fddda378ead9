"""The cluster section of the configuration: what it needs, what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from chatd.config import RELOAD_POLICY, ConfigError, effective_flush_delay, load_config

NODE = {"cluster.enabled": True, "cluster.node_id": "n1",
        "cluster.postgres": "postgresql://chatd@127.0.0.1:5432/chatd"}


def test_off_by_default_and_on_with_a_node_and_a_database() -> None:
    assert load_config(None).cluster.enabled is False
    cluster = load_config(None, {**NODE, "cluster.redis": "redis://127.0.0.1:6379/0"}).cluster
    assert (cluster.enabled, cluster.node_id) == (True, "n1")
    assert cluster.postgres.startswith("postgresql://")
    assert cluster.redis == "redis://127.0.0.1:6379/0"


def test_a_node_writes_at_the_end_of_each_turn_unless_told_otherwise() -> None:
    """Its deliveries come in batches already: a write delay would only add latency."""
    assert effective_flush_delay(load_config(None, NODE)) == 0.0
    assert effective_flush_delay(load_config(None, {**NODE, "listen.flush_delay": 0.002})) == 0.002


def test_every_cluster_key_waits_for_a_restart() -> None:
    keys = {key: policy for key, policy in RELOAD_POLICY.items() if key.startswith("cluster.")}
    assert keys == dict.fromkeys(
        ["cluster.enabled", "cluster.node_id", "cluster.redis", "cluster.postgres"], "restart")


@pytest.mark.parametrize(("overrides", "named"), [
    ({"cluster.enabled": True}, "cluster.node_id and cluster.postgres"),
    ({**NODE, "cluster.node_id": ""}, "needs cluster.node_id"),
    ({**NODE, "cluster.postgres": ""}, "needs cluster.postgres"),
    ({**NODE, "cluster.node_id": "node one"}, "cluster.node_id"),
    ({**NODE, "cluster.node_id": "n" * 33}, "cluster.node_id"),
    ({**NODE, "cluster.postgres": "mysql://db/chatd"}, "cluster.postgres"),
    ({**NODE, "cluster.postgres": "postgresql://"}, "cluster.postgres"),
    ({"cluster.redis": "127.0.0.1:6379"}, "cluster.redis"),
    ({**NODE, "backup.interval": "1d"}, "pg_dump"),
    ({**NODE, "cluster.enabled": "yes"}, "cluster.enabled"),
])
def test_what_a_node_cannot_run_with_is_refused_by_name(overrides: dict[str, Any],
                                                        named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(None, overrides)


def test_a_refused_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**NODE, "cluster.postgres": "mysql://chatd:hunter2@db/chatd"})
    assert "hunter2" not in str(caught.value) and "chatd:***@db/chatd" in str(caught.value)


def test_the_keys_are_checked_even_when_the_cluster_is_off() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.postgres"):
        load_config(None, {"cluster.postgres": "sqlite:///chatd.db"})
    assert load_config(None, {"cluster.node_id": "n2"}).cluster.node_id == "n2"

