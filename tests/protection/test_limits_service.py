"""Protection as one component: every kind charged through it, on a ManualClock.

No server and no socket: the service is built from a configuration and the
manual clock, and time moves only when a test (or a waiting loop's sleep,
replaced here by a step of the clock) moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any, cast

import pytest

from chatd.config import Config
from chatd.domain.accounts import User
from chatd.domain.clock import ManualClock
from chatd.domain.limits import Kind, MemoryLimitStore
from chatd.domain.presence import MemoryPresenceStore
from chatd.domain.protection import ROOM_BURST, ROOM_RATE, TYPING_BURST, Protection
from chatd.domain.room import Room
from chatd.errors import ChatError, Code
from chatd.protocol.session import Session
from storage.records import RoomRecord, UserRecord
from tests import helpers


def _config(tmp_path: Path, **overrides: Any) -> Config:
    limits = {"limits__message_rate": 2.0, "limits__message_burst": 2.0,
              "limits__command_rate": 1.0, "limits__command_burst": 3.0,
              "limits__typing_rate": 0.5, "limits__auth_failures": 2,
              "limits__auth_window": 10, "crypto__spawn_rate": 2}
    return helpers.test_config(tmp_path / "chatd.db", **(limits | overrides))


def _protection(config: Config, clock: ManualClock) -> Protection:
    # Moderation and the audit log are reached only by a flood's consequence,
    # which the server-level tests cover.
    return Protection(config, clock, cast(Any, None), cast(Any, None), MemoryLimitStore(clock))


def _session(user_id: int = 1) -> Session:
    session = Session(cast(Any, None), "192.0.2.1:4000")
    session.user = User(UserRecord(user_id, f"user{user_id}", b"", False, 0.0))
    return session


def test_each_kind_reads_its_declared_rate(tmp_path: Path) -> None:
    protection = _protection(_config(tmp_path), ManualClock())
    assert protection.rate(Kind.MESSAGE) == (2.0, 2.0)
    assert protection.rate(Kind.COMMAND) == (1.0, 3.0)
    assert protection.rate(Kind.TYPING) == (0.5, TYPING_BURST)
    assert protection.rate(Kind.LOGIN_ADDRESS) == (0.2, 2)
    assert protection.rate(Kind.LOGIN_NAME) == (0.2, 2)
    for kind in (Kind.ROOM_MESSAGE, Kind.CRYPTO_SPAWN):
        with pytest.raises(ValueError):
            protection.rate(kind)


def test_commands_are_refused_with_retry_ms(tmp_path: Path) -> None:
    protection, session = _protection(_config(tmp_path), ManualClock()), _session()
    for _ in range(3):
        protection.charge_command(session)
    with pytest.raises(ChatError) as refused:
        protection.charge_command(session)
    assert refused.value.code is Code.RATE_LIMITED
    assert refused.value.details["retry_ms"] == 1000
    # Another connection has its own bucket.
    protection.charge_command(_session())


def test_one_typing_limit_per_connection(tmp_path: Path) -> None:
    clock = ManualClock()
    protection, session = _protection(_config(tmp_path), clock), _session()
    assert [protection.charge_typing(session) for _ in range(3)] == [0.0, 0.0, 2.0]
    clock.advance(2)
    assert protection.charge_typing(session) == 0.0


def test_messages_per_user_and_per_room(tmp_path: Path) -> None:
    clock = ManualClock()
    protection, session = _protection(_config(tmp_path), clock), _session()
    room = Room(RoomRecord(7, "slow", "open", "", 0.0,
                           settings={ROOM_RATE: 1.0, ROOM_BURST: 1.0}))
    protection.charge_message(session, None)
    protection.charge_message(session, None)
    with pytest.raises(ChatError) as refused:
        protection.charge_message(session, None)
    assert refused.value.details["retry_ms"] == 500
    user = session.user
    assert user is not None
    assert protection.message_wait(user, None) == 0.5
    # The room's own rate is a bucket of its own, unknown until charged.
    assert protection.message_wait(user, room) == 0.0
    protection.charge_message(session, room)
    with pytest.raises(ChatError):
        protection.charge_message(session, room)
    protection.room_rate_changed(room)
    protection.charge_message(session, room)  # a fresh bucket under the new rate


def test_a_reload_applies_at_the_next_charge(tmp_path: Path) -> None:
    clock = ManualClock()
    protection, session = _protection(_config(tmp_path), clock), _session()
    for _ in range(3):
        protection.charge_command(session)
    config = protection.config
    protection.config = dataclasses.replace(
        config, limits=dataclasses.replace(config.limits, command_rate=4.0))
    assert protection.charge(Kind.COMMAND, session.id) == 0.25


async def test_failed_logins_throttle_address_and_name(tmp_path: Path) -> None:
    clock = ManualClock()
    protection = _protection(_config(tmp_path), clock)
    await protection.admit_login("192.0.2.1:1", "bob")
    protection.login_ended("192.0.2.1:1", "bob", failed=False)  # a success costs nothing
    for peer, name in (("192.0.2.1:1", "bob"), ("192.0.2.1:2", "Bob")):
        await protection.admit_login(peer, name)
        protection.login_ended(peer, name, failed=True)  # two failures: kept
    for peer, name in [("192.0.2.1:3", None), ("198.51.100.1:1", "BOB")]:
        with pytest.raises(ChatError) as refused:
            await protection.admit_login(peer, name)
        # The wait is the address's or the name's: the same answer either way.
        assert refused.value.code is Code.RATE_LIMITED
        assert refused.value.details["retry_ms"] > 0
    # Refused on the name, the address was not charged: it still has both tokens.
    await protection.admit_login("198.51.100.1:1", "carol")
    await protection.admit_login("198.51.100.1:1", "dave")
    clock.advance(5)  # one failure's worth of the window
    await protection.admit_login("192.0.2.1:3", "bob")


async def test_many_logins_at_once_from_one_address_are_not_refused(tmp_path: Path) -> None:
    """People behind one address (a NAT, a bot host) log in at the same moment:
    only failures cost the address, so attempts in flight take nothing from it."""
    protection = _protection(_config(tmp_path), ManualClock())
    for n in range(50):
        await protection.admit_login(f"192.0.2.1:{n}", f"user{n}")
    for n in range(50):
        protection.login_ended(f"192.0.2.1:{n}", f"user{n}", failed=False)
    # Guesses at one account at once are still bounded by the name's bucket.
    await protection.admit_login("192.0.2.9:1", "eve")
    await protection.admit_login("192.0.2.9:2", "eve")
    with pytest.raises(ChatError):
        await protection.admit_login("192.0.2.9:3", "eve")


def test_sweep_forgets_idle_flood_detectors(tmp_path: Path) -> None:
    clock = ManualClock()
    config = _config(tmp_path, limits__flood_threshold=10, limits__flood_window=5)
    protection, session = _protection(config, clock), _session()
    for _ in range(3):
        with contextlib.suppress(ChatError):
            protection.charge_message(session, None)
    assert len(protection._floods) == 1
    clock.advance(4)
    protection.sweep()
    assert len(protection._floods) == 1  # its refusal is still within the window
    clock.advance(1)
    protection.sweep()
    assert protection._floods == {}


async def test_sweep_forgets_what_refilled(tmp_path: Path) -> None:
    clock = ManualClock()
    store = MemoryLimitStore(clock)
    protection = Protection(_config(tmp_path), clock, cast(Any, None), cast(Any, None), store)
    await protection.admit_login("192.0.2.1:1", "bob")
    protection.login_ended("192.0.2.1:1", "bob", failed=True)
    protection.charge_command(_session())
    assert len(store) == 3
    clock.advance(3)
    protection.sweep()
    assert len(store) == 2  # the command bucket refilled; the login ones not yet
    clock.advance(10)
    protection.sweep()
    assert len(store) == 0


async def test_wait_for_waits_on_the_clock(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    protection, session = _protection(_config(tmp_path), clock), _session()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    for _ in range(3):
        await protection.wait_for(Kind.COMMAND, session.id)
    assert sleeps == []
    start = clock.monotonic()
    await protection.wait_for(Kind.COMMAND, session.id)
    assert clock.monotonic() - start == pytest.approx(1.0)
    assert protection.charge(Kind.COMMAND, session.id) == pytest.approx(1.0)  # it was taken


async def test_process_starts_wait_for_the_window(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    protection = _protection(_config(tmp_path), clock)
    starts: list[float] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    for _ in range(5):
        await protection.wait_for(Kind.CRYPTO_SPAWN, None)
        starts.append(clock.monotonic() - 1000.0)
    # Two at once, then two a second: never three within one second.
    assert starts == pytest.approx([0, 0, 1, 1, 2])
    assert protection.charge(Kind.CRYPTO_SPAWN, None) == 0.0  # the second at 2 s
    assert protection.charge(Kind.CRYPTO_SPAWN, None) == pytest.approx(1.0)


def test_presence_store_counts_sessions_per_user() -> None:
    store = MemoryPresenceStore()
    store.arrived(1)
    store.arrived(1)
    store.arrived(2)
    assert store.count() == 2 and store.is_online(1)
    assert not store.left(1)
    assert store.left(1)
    assert not store.is_online(1) and store.count() == 1
    assert store.left(3)  # never seen: nothing was online
    assert store.count() == 1
