"""The names of chatd's keys in Redis.

Every key carries the hash tag ``{chatd}``, so one Redis Cluster slot holds them
all and the scripts that touch several of them stay atomic.
"""

from __future__ import annotations

from typing import Final

COUNTER: Final = "{chatd}:id"
EPOCH: Final = "{chatd}:epoch"
# The first id of the counter's epoch (/resume: an id below it may miss messages).
EPOCH_FIRST: Final = "{chatd}:epoch:first"
# The identity of the database the epoch numbers (chatd_meta "database").
DATABASE: Final = "{chatd}:database"
LOG: Final = "{chatd}:log"
# The log's formats: 1, one entry per stream item (field "j"); 2, also several
# entries in one item (field "b"); 3, also an item whose entries are numbered by
# the script that appended them (field "f", the first one's number); 4, also an
# item of room messages that script appended written compactly (field "c", each
# post's values in order, and "n", the appending node: chatd.cluster.codec); 5,
# also a webhook's post naming the account it speaks for (field "w" of its entry,
# which the gate checks instead of the bot's name: chatd.cluster.gate); 6, also
# a room's change of a member's role or of its modes marked for the gate (field
# "g" of its entry: the readers drop what it silenced, chatd.cluster.gate). A
# node writes a format only while every live node reads it (its record's "log"
# field, chatd.cluster.janitor): a rolling upgrade mixes versions.
LOG_BATCHES: Final = 2
LOG_NUMBERED: Final = 3
LOG_COMPACT: Final = 4
LOG_SPEAKERS: Final = 5
LOG_STANDING: Final = 6
LOG_FORMAT: Final = LOG_STANDING
# The oldest log format a live node read within the last while (chatd.cluster.janitor):
# a node of that version may still be reading while its record is gone already.
LOG_OLDER: Final = "{chatd}:log:older"
FENCE: Final = "{chatd}:fence"
# The consumer group of the log whose consumers (one per node) store history.
PERSIST: Final = "persist"
# The log keeps about this many entries (XADD MAXLEN ~); older ones are in
# PostgreSQL. Posts are refused before the entries not yet stored come near it
# (chatd/cluster/persister.py), so trimming never drops one.
LOG_LENGTH = 1_000_000
# A new counter starts this far above the largest stored id: entries numbered
# but not stored when Redis lost its memory keep their ids to themselves.
SEED_MARGIN: Final = 1 << 20


def lead(job: str) -> str:
    """The lock of a singleton job."""
    return f"{{chatd}}:lead:{job}"


def guest_bans(room_id: int) -> str:
    """A room's bans of IRC guests, as JSON (chatd.cluster.guestbans)."""
    return f"{{chatd}}:guestbans:{room_id}"


# Every room's key of bans of guests, as a SCAN matches them.
GUEST_BANS_MATCH: Final = "{chatd}:guestbans:*"


def bucket(*parts: object) -> str:
    """A rate limit's token bucket, shared by every node (``chatd.cluster.limits``)."""
    return "{chatd}:b:" + ":".join(map(str, parts))


# Presence and nodes (chatd.cluster.presence, chatd.cluster.heartbeat):
# every node ever registered and not yet buried, with its incarnation.
NODES: Final = "{chatd}:nodes"


def node(node_id: str) -> str:
    """A node's record and heartbeat: a hash that expires unless refreshed."""
    return f"{{chatd}}:node:{node_id}"


def starting(node_id: str) -> str:
    """A node starting on this Redis, not registered yet (chatd.cluster.oneredis)."""
    return f"{{chatd}}:starting:{node_id}"


def sessions(user_id: int | str) -> str:
    """A user's logged-in sessions: a hash of counts by node."""
    return f"{{chatd}}:p:{user_id}"


def node_users(node_id: str) -> str:
    """The users a node holds a session of: a set, so a dead node's can be dropped."""
    return f"{{chatd}}:nu:{node_id}"
