"""API tokens with scopes and last use, resume tokens, and bot accounts, on both backends."""

from __future__ import annotations

import pytest

from storage import Conflict, Storage
from storage.records import ALL_SCOPES, BOT_KIND
from tests.backends import both

T0 = 1_700_000_000.0

backend = both


async def test_bots_are_users_of_their_own_kind(storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    bot = await storage.create_user("helper", b"!", False, T0, kind=BOT_KIND,
                                    owner_id=alice.id)
    assert (bot.kind, bot.owner_id) == ("bot", alice.id)
    assert await storage.get_user(bot.id) == bot
    assert (alice.kind, alice.owner_id) == ("user", None)
    await storage.delete_user(alice.id)
    orphan = await storage.get_user(bot.id)
    assert orphan is not None and orphan.owner_id is None  # the bot stays, owner unknown


async def test_token_scopes_and_last_use_in_batches(storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    ci = await storage.create_token(alice.id, "ci", "h1", T0, None, "read")
    full = await storage.create_token(alice.id, "full", "h2", T0, None)
    assert (ci.scopes, full.scopes) == ("read", ALL_SCOPES)
    await storage.set_tokens_used([])
    await storage.set_tokens_used([(ci.id, T0 + 5), (full.id, T0 + 9)])
    # An older time never replaces a newer one (batches may arrive late).
    await storage.set_tokens_used([(ci.id, T0 + 1)])
    loaded = {t.name: t.last_used_at for t in await storage.load_tokens()}
    assert loaded == {"ci": T0 + 5, "full": T0 + 9}
    with pytest.raises(Conflict):
        await storage.create_token(alice.id, "CI", "h3", T0, None, "read")


async def test_expired_session_tokens_go_with_their_resume_tokens_and_api_ones_stay(
        storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    tab = await storage.create_token(alice.id, "web-a", "t1", T0, T0 + 60, kind="session")
    await storage.create_token(alice.id, "web-b", "t2", T0, T0 + 600, kind="session")
    await storage.create_token(alice.id, "ci", "t3", T0, T0 + 60)
    await storage.create_resume_token(alice.id, "r1", T0, T0 + 600, tab.id, ALL_SCOPES)
    assert await storage.delete_expired_session_tokens(T0 + 59) == 0
    assert await storage.delete_expired_session_tokens(T0 + 60) == 1
    assert [t.name for t in await storage.list_tokens(alice.id)] == ["web-b", "ci"]
    assert await storage.find_resume_token("r1") is None  # made from the tab's token


async def test_resume_tokens_rotate_expire_and_go_with_their_api_token(
        storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    api = await storage.create_token(alice.id, "bot", "api", T0, None, "read")
    plain = await storage.create_resume_token(alice.id, "r1", T0, T0 + 60, None, ALL_SCOPES)
    scoped = await storage.create_resume_token(alice.id, "r2", T0, T0 + 600, api.id, "read")

    rotated = await storage.rotate_resume_token(scoped.id, "r3", T0 + 1, T0 + 700)
    assert rotated is not None
    assert (rotated.user_id, rotated.api_token_id, rotated.scopes, rotated.token_hash) == (
        alice.id, api.id, "read", "r3")
    assert await storage.rotate_resume_token(scoped.id, "r4", T0, T0) is None
    assert await storage.find_resume_token("r3") == rotated
    assert await storage.find_resume_token("r2") is None  # rotated away
    assert [r.token_hash for r in await storage.load_resume_tokens(T0)] == ["r1", "r3"]
    assert [r.token_hash for r in await storage.load_resume_tokens(T0 + 61)] == ["r3"]

    assert await storage.delete_token(alice.id, "bot")
    assert [r.token_hash for r in await storage.load_resume_tokens(T0)] == ["r1"]
    assert await storage.delete_expired_resume_tokens(T0 + 61) == 1
    assert await storage.delete_resume_tokens([]) == 0
    assert await storage.delete_resume_tokens([plain.id]) == 0  # already gone
    # By account, wherever they were issued: only that account's.
    bob = await storage.create_user("bob", b"h", False, T0)
    for owner, hashed in ((alice.id, "a1"), (alice.id, "a2"), (bob.id, "b1")):
        await storage.create_resume_token(owner, hashed, T0, T0 + 60, None, ALL_SCOPES)
    assert await storage.delete_user_resume_tokens(alice.id) == 2
    assert [r.token_hash for r in await storage.load_resume_tokens(T0)] == ["b1"]


async def test_resume_tokens_rotate_in_one_batch_each_decided_alone(storage: Storage) -> None:
    alice = await storage.create_user("alice", b"h", False, T0)
    first = await storage.create_resume_token(alice.id, "r1", T0, T0 + 60, None, ALL_SCOPES)
    second = await storage.create_resume_token(alice.id, "r2", T0, T0 + 60, None, "read")

    rotated = await storage.rotate_resume_tokens([
        (first.id, "r3", T0 + 1, T0 + 61), (404, "r4", T0 + 1, T0 + 61),
        (second.id, "r5", T0 + 1, T0 + 62), (first.id, "r6", T0 + 1, T0 + 61)])
    # The unknown token and the second rotation of the same token get None.
    assert [r and (r.token_hash, r.scopes, r.expires_at) for r in rotated] == [
        ("r3", ALL_SCOPES, T0 + 61), None, ("r5", "read", T0 + 62), None]
    assert [r.token_hash for r in await storage.load_resume_tokens(T0)] == ["r3", "r5"]
    assert await storage.rotate_resume_tokens([]) == []


async def test_a_session_token_past_the_bound_revokes_the_least_recently_used(
        storage: Storage) -> None:
    """Made past the bound, a browser tab's token is not refused: the account's least
    recently used session token goes (one never used counts from when it was made),
    with its resume tokens, in the same transaction. The one the session asking logged
    in with is kept; API tokens are never touched; a name taken deletes nothing."""
    alice = await storage.create_user("alice", b"h", False, T0)
    api = await storage.create_token(alice.id, "ci", "api", T0 - 10, None)
    tabs = [(await storage.create_session_token(alice.id, f"web-{n}", f"t{n}", T0 + n,
                                                T0 + 600, "read", most=3))[0]
            for n in range(3)]
    await storage.create_resume_token(alice.id, "r1", T0, T0 + 600, tabs[1].id, "read")
    await storage.set_tokens_used([(tabs[0].id, T0 + 10)])  # web-1: least recently used

    made, revoked = await storage.create_session_token(alice.id, "web-3", "t3", T0 + 11,
                                                       T0 + 600, "read", most=3)
    assert (made.kind, made.name, made.scopes) == ("session", "web-3", "read")
    assert [r.name for r in revoked] == ["web-1"]
    assert await storage.find_resume_token("r1") is None  # went with its token
    assert [t.name for t in await storage.list_tokens(alice.id)] == [
        "ci", "web-0", "web-2", "web-3"]

    # web-2 is now the least recent, but the session asking logged in with it: the
    # next, web-0 (used at T0 + 10), goes instead.
    _, revoked = await storage.create_session_token(alice.id, "web-4", "t4", T0 + 12,
                                                    T0 + 600, "read", most=3,
                                                    keeping=tabs[2].id)
    assert [r.name for r in revoked] == ["web-0"]
    with pytest.raises(Conflict):
        await storage.create_session_token(alice.id, "WEB-3", "t5", T0 + 13, T0 + 600,
                                           "read", most=3)
    assert [t.name for t in await storage.list_tokens(alice.id)] == [
        "ci", "web-2", "web-3", "web-4"]
    # A lower bound (the configuration changed) takes the account down to it at once.
    _, revoked = await storage.create_session_token(alice.id, "web-5", "t6", T0 + 14,
                                                    T0 + 600, "read", most=2)
    assert sorted(r.name for r in revoked) == ["web-2", "web-3"]
    assert [t.name for t in await storage.list_tokens(alice.id)] == ["ci", "web-4", "web-5"]
    assert await storage.find_token(api.token_hash) == api
