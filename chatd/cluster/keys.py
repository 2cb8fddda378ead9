"""The names of chatd's keys in Redis.

Every key carries the hash tag ``{chatd}``, so one Redis Cluster slot holds them
all and the scripts that touch several of them stay atomic.
"""

from __future__ import annotations

from typing import Final

COUNTER: Final = "{chatd}:id"
EPOCH: Final = "{chatd}:epoch"
LOG: Final = "{chatd}:log"
FENCE: Final = "{chatd}:fence"
# The log keeps about this many entries; older ones are in PostgreSQL.
LOG_LENGTH: Final = 100_000
# A new counter starts this far above the largest stored id: entries numbered
# but not stored when Redis lost its memory keep their ids to themselves.
SEED_MARGIN: Final = 1 << 20


def lead(job: str) -> str:
    """The lock of a singleton job."""
    return f"{{chatd}}:lead:{job}"
# Presence and nodes (chatd.cluster.presence, chatd.cluster.heartbeat):
# every node ever registered and not yet buried, with its incarnation.
NODES: Final = "{chatd}:nodes"


def node(node_id: str) -> str:
    """A node's record and heartbeat: a hash that expires unless refreshed."""
    return f"{{chatd}}:node:{node_id}"


def sessions(user_id: int | str) -> str:
    """A user's logged-in sessions: a hash of counts by node."""
    return f"{{chatd}}:p:{user_id}"


def node_users(node_id: str) -> str:
    """The users a node holds a session of: a set, so a dead node's can be dropped."""
    return f"{{chatd}}:nu:{node_id}"
