"""What PostgresStorage's query mixins need from it, and the translation of errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from storage.api import Conflict, OverQuota, Refused, StorageError, Unavailable
from storage.quotas import Holder, Quota

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A connection of its own, or one lent by the pool: the same methods.
    PgConnection: TypeAlias = (asyncpg.Connection[asyncpg.Record]
                               | PoolConnectionProxy[asyncpg.Record])


class PgHost(Protocol):
    """The transaction and query plumbing PostgresStorage provides to its mixins."""

    # One daemon serves the database (no other node writes messages).
    _sole_node: bool

    def _transaction(self) -> AbstractAsyncContextManager[PgConnection]: ...
    async def _execute(self, sql: str, *args: Any) -> int: ...
    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...
    async def _fetch_one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...
    async def _fetch_value(self, sql: str, *args: Any) -> Any: ...


def changed(status: str) -> int:
    """The number of rows a command changed, from its status ("DELETE 3" -> 3)."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


def where(url: str) -> str:
    """The server and database a URL names, without its user or password (for messages)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(an unreadable URL)"
    return f"{host}:{port}{parts.path or '/'}"


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn the driver's errors into StorageError: uniqueness violations into Conflict,
    other broken rules (foreign keys, checks, NOT NULL, values a type cannot hold)
    into Refused, a lost or refused connection or a timeout into Unavailable."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(str(exc)) from exc
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
        # A value the schema or the type refuses (a NUL in text): no retry can pass.
        raise Refused(str(exc)) from exc
    except (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError) as exc:
        # Lost, refused, shut down by an operator, or a statement cancelled.
        raise Unavailable(str(exc)) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageError(str(exc)) from exc
    except asyncpg.InternalClientError as exc:
        # A pooled connection the server ended while it was idle can be caught
        # between states by the next query; the pool replaces it, a retry passes.
        raise StorageError(str(exc)) from exc
    except (OSError, TimeoutError) as exc:
        raise Unavailable(f"PostgreSQL unreachable: {exc or 'no answer in time'}") from exc


# The advisory locks' first key, naming what the second key numbers (a room's id,
# an account's). A cluster's decisions hold them (chatd.cluster.transactions); a
# room's creation takes its owner's, shared, so that it never overlaps the owner's
# deletion (see PostgresStorage.create_room).
ROOM_LOCKS: Final = 0x63680001
ACCOUNT_LOCKS: Final = 0x63680002
# The advisory locks a write given quotas takes on their holder (an account's id,
# a room's) for its transaction, before it counts (see refuse_over). Apart from
# ACCOUNT_LOCKS: a decision holding an account's lock may itself make a row a
# quota counts without waiting for itself.
QUOTA_LOCKS: Final = {Holder.ACCOUNT: 0x63680003, Holder.ROOM: 0x63680004}
# The advisory locks of files' blobs, by a hash of the blob's key (hashtext: two keys
# sharing a lock only wait for each other). Taken before any quota's lock.
BLOB_LOCKS: Final = 0x63680005
# The advisory locks of an account's notifications: a notification added past the
# bound drops the oldest; two added at once must each see the other's row.
NOTIFICATION_LOCKS: Final = 0x63680006


async def hold_blob(conn: PgConnection, key: str) -> None:
    """Take the lock of blob ``key`` until the transaction on ``conn`` ends: a file
    row using it is added, or one deleted and the blob with it, one at a time."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", BLOB_LOCKS, key)


async def hold_quotas(conn: PgConnection, quotas: Sequence[Quota]) -> None:
    """Take the advisory lock of each holder of ``quotas`` until the transaction on
    ``conn`` ends (refuse_over does, first): what the transaction reads after it,
    such as whether the row it would add is there already, no other write counted
    against those holders changes until it commits. Taken again, a lock is held
    once more, so refuse_over after it is no second wait."""
    # In one order, so that two writes with several holders never wait for each other.
    for kind, key in sorted({(QUOTA_LOCKS[quota.measure.holder], quota.key)
                             for quota in quotas}):
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", kind, key)


async def refuse_over(conn: PgConnection, quotas: Sequence[Quota]) -> None:
    """Refuse the write of the transaction on ``conn`` that would pass one of
    ``quotas`` (``OverQuota``). The holder's advisory lock is held until the
    transaction ends: another write counted against the same holder, on any
    node, counts after this one's insert is committed (``READ COMMITTED``: its
    count is a statement after the wait, so its snapshot holds that row)."""
    await hold_quotas(conn, quotas)
    for quota in quotas:
        held = int(await conn.fetchval(quota.measure.counting("$1", "$2"), *quota.arguments))
        if quota.passed_by(held):
            raise OverQuota(quota, held)
