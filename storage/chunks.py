"""Batched INSERTs in a few fixed shapes: messages, blocks and audit entries.

Rows go many to a statement: executemany would take the GIL back for every row,
and a busy event loop then starves the writer thread (measured: a 5000-row batch
took seconds instead of milliseconds while the daemon was delivering). One
execute binds a whole chunk in C.

Chunks have sizes from a fixed set only, so only a few distinct statements ever
exist and sqlite3's statement cache (128 per connection) always has them
compiled. Preparing a 400-row INSERT costs 0.6-1 ms, more than running it, and a
compiled statement holds memory in proportion to its parameters: one INSERT per
batch size that ever came (the audit log's batches of log-ins were so) held
megabytes. Powers of two split any count into few statements (at most one per
binary digit of the rest). 512 rows of ten columns bind 5120 parameters, far
below SQLite's limit (32766 since SQLite 3.32).
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

CHUNK_ROWS = 512
CHUNK_SIZES: tuple[int, ...] = tuple(2 ** k for k in range(CHUNK_ROWS.bit_length() - 1, -1, -1))

InsertSql = Callable[[int], str]


def chunk_sizes(count: int) -> list[int]:
    """Split ``count`` rows into chunks of the sizes in CHUNK_SIZES, largest first."""
    sizes: list[int] = []
    for size in CHUNK_SIZES:
        full, count = divmod(count, size)
        sizes.extend([size] * full)
    return sizes


def width(columns: str) -> int:
    """How many values a row of ``columns`` (a comma-separated list) binds."""
    return columns.count(",") + 1


def values_sql(columns: str, rows: int) -> str:
    """``VALUES`` placeholders for ``rows`` rows of ``columns``."""
    row = "(" + ",".join("?" * width(columns)) + ")"
    return "VALUES " + ",".join([row] * rows)


@functools.lru_cache(maxsize=4 * len(CHUNK_SIZES))
def insert_sql(table: str, columns: str, rows: int) -> str:
    """The INSERT of ``rows`` rows of ``columns`` into ``table``."""
    return f"INSERT INTO {table} ({columns}) {values_sql(columns, rows)}"


def flat(rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The rows' values in one list, as a multi-row statement binds them."""
    return list(itertools.chain.from_iterable(rows))


def insert_chunks(conn: sqlite3.Connection, insert: InsertSql, row_width: int,
                  values: list[Any], careful: InsertSql | None = None) -> None:
    """Insert the rows whose ``row_width`` values each are ``values``, chunk by
    chunk, in their order (in the database's thread, within a transaction: see
    SqliteStorage._in_one_step).

    ``careful``: the statement taking a chunk's place when it broke a foreign key.
    """
    start = 0
    for size in chunk_sizes(len(values) // row_width):
        end = start + size * row_width
        chunk = values[start:end]
        try:
            conn.execute(insert(size), chunk)
        except sqlite3.IntegrityError as exc:
            if careful is None or exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
                raise
            # SQLite undid this statement alone; the transaction goes on with
            # the chunks before it, so the careful form can take its place.
            conn.execute(careful(size), chunk)
        start = end
