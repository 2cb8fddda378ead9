"""The tests' own PostgreSQL and Redis: started as children on loopback, stopped by pid."""

from __future__ import annotations

import os
import pwd
import socket

import pytest

from tests.services import PostgresServer, RedisServer, free_port, start_redis, unavailable


def test_the_session_redis_answers_on_loopback(redis_server: RedisServer) -> None:
    assert redis_server.ping()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.process is not None and redis_server.process.poll() is None


def test_a_redis_with_persistence_stops_by_pid_and_leaves_nothing() -> None:
    server = start_redis(appendonly=True)
    pid, directory = server.pid, server.directory
    assert server.ping()
    server.remove()
    assert not server.ping()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not directory.exists()


def test_the_session_postgres_runs_unprivileged_on_loopback(
        postgres_server: PostgresServer) -> None:
    owner = os.stat(f"/proc/{postgres_server.pid}").st_uid
    if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the postgres account
        assert owner == pwd.getpwnam("postgres").pw_uid
    with socket.create_connection(("127.0.0.1", postgres_server.port), timeout=5):
        pass
    assert postgres_server.url("x").endswith(f"127.0.0.1:{postgres_server.port}/x")


def test_a_missing_service_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs"):
        unavailable("a thing")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="needs a thing"):
        unavailable("a thing")


def test_free_ports_are_free() -> None:
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
