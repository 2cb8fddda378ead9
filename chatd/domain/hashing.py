"""bcrypt off the event loop, on every core.

bcrypt releases the GIL while it hashes, so threads run checks in parallel
and a thread pool is enough: measured on a 2-core machine (40 checks at cost
10), one thread took 2.7-2.8 s, a pool of two threads 1.4-1.5 s and a pool of
two processes 1.4-1.7 s, the processes paying for pickling and for starting.
The pool is bcrypt's own, sized to the cores, so a burst of logins after a
restart neither waits behind nor starves the loop's default executor (file
reads, DNS); it is one per process, as the cores are.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt


@functools.cache
def pool() -> ThreadPoolExecutor:
    """The process's bcrypt threads (made at first use), one per core."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bcrypt")


async def check(secret: bytes, stored: bytes) -> bool:
    """Whether ``secret`` matches the bcrypt hash ``stored``."""
    return await asyncio.get_running_loop().run_in_executor(pool(), bcrypt.checkpw, secret,
                                                            stored)


async def make(secret: bytes, cost: int) -> bytes:
    """A bcrypt hash of ``secret`` at ``cost``."""
    salt = bcrypt.gensalt(cost)
    return await asyncio.get_running_loop().run_in_executor(pool(), bcrypt.hashpw, secret, salt)
