"""The bus every node shares: the cluster's :class:`~chatd.domain.ports.Bus`.

What the domain gives the bus is published to one Redis stream, ``{chatd}:log``,
and delivered by every node, this one included, to its own connections
through its :class:`~chatd.delivery.bus.LocalBus`, which stays the last hop.
Who is connected where (the ``Routes``) is this node's own: a connection lives
on one node.

**One order.** Each published event carries its place in the cluster's one
order: a message its id, any other event an id of its own, both from the
sequencer's counter. Entries can reach the stream slightly out of that order
(two nodes number, then append), so each node's reader holds an entry back
until every smaller number was delivered, or until a gap has lasted
``GAP_WAIT`` seconds (a number taken by a node that died before appending).
Typing notices carry no number: they are delivered when read, at most once.

**Acknowledgements.** The sender's labelled copy of a message (and the reply
of a command's issuer) is shown when this node reads the entry back, so it is
in the same order as everything else its connection sees. A post (a direct
message too) waits for that moment (:meth:`ClusterBus.placed`) before it is
acknowledged; the persister stores it from the log.

**Sanctions where the order is decided.** A room message whose sender a kick,
ban, leave or mute ordered before it forbade, or whose voice a room made
moderated, a devoice or a demotion ordered before it took, is dropped by every
node's reader alike (:mod:`chatd.cluster.gate`); the sender's node tells the
sender why. A webhook's post is judged by the account it speaks for, which its
entry names, and dropped after its creator's demotion too.

**What history needs.** A message to be stored carries, beside its event, what
its row needs that the event does not say (:meth:`ClusterBus.keep`); the
cluster's persister (:mod:`chatd.cluster.persister`) stores it from the log. A
message the gate dropped is dropped on every node alike, so each node's reader
remembers the numbers it dropped (:meth:`ClusterBus.verdict`): the persister
and the history's tail leave them out.

**A new epoch.** Redis lost its memory (:mod:`chatd.cluster.sequencer`): the
reader starts over on the new log (:meth:`ClusterBus.reset`) and the node tells
the users signed in here that messages may be missing (:meth:`ClusterBus.tell_all`).

**Another node's decisions.** Before an event about a room decided elsewhere
is delivered, the node reloads the room from PostgreSQL (``resync``): members
gone are disconnected, members come are connected, an ended room is closed.
A room this node first connects someone to is announced, so the other nodes
load it (a room created here is unknown to them until then); so is a change
to an account made here (:meth:`ClusterBus.announce_account`): the others load
a new account, forget a deleted one, close its connections after a change of
password, reload its API tokens, and take its blocks and admin flag.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.gate import STANDING, Gate
from chatd.cluster.items import DecodedItems
from chatd.cluster.retry import Retries, stopping
from chatd.cluster.sequencer import EpochChanged, busy
from chatd.delivery.issuer import Issuing, current, resumed
from chatd.domain.events import Banned, Kicked, Left, Message, Typing
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    import redis.asyncio

    from chatd.cluster.sequencer import ClusterSequencer
    from chatd.delivery.bus import LocalBus
    from chatd.domain.accounts import User
    from chatd.domain.events import Event
    from chatd.domain.ports import Endpoint
    from chatd.domain.room import Room
    from storage.records import MessageRecord

log = logging.getLogger(__name__)

# How long a gap in the order is waited for before the reader moves past it.
GAP_WAIT = 1.0
# How long a post waits for its place in the order before it is refused (busy).
PLACE_WAIT = 5.0
# The most items read at once, and the most entries written in one item.
READ_COUNT = 1000
ITEM_ENTRIES = 100
# After a read that found entries (fewer than READ_COUNT), the reader waits this
# long before reading again, so that under load a read carries the entries of
# several turns of the other nodes: every read costs this node a client call and
# a write to each of its connections in the rooms, whatever it carries.
READ_GATHER = 0.005
# How often the reader checks that Redis still holds this node's epoch, in seconds.
EPOCH_CHECK = 1.0
# The longest pause of the reader between attempts while Redis does not answer.
READ_BACKOFF = 0.5
# The most message numbers remembered as dropped by the gate, and records kept
# for entries not yet published (the oldest are forgotten first).
REMEMBERED = 100_000
# An account's change, or a room this node made, is stored before it is announced,
# so an announcement Redis refused is tried again, every ANNOUNCE_RETRY seconds
# until Redis answers (at most ANNOUNCEMENTS kept; the oldest go first, logged):
# otherwise another node would keep a revoked token or a lifted block, or not know
# the room (its name taken, its /join no-such-room), until it restarts. Both are
# applied by reading the database again, so an announcement read twice is harmless.
# An operator's broadcast is tried again too: its sender was told the other nodes
# send it, and a notice shown late (or, rarely, twice) beats one never shown.
ANNOUNCE_RETRY = 1.0
ANNOUNCEMENTS = 10_000
ANNOUNCED = frozenset({"account", "sync", "bc"})

Entry = dict[str, Any]

# Events that take a member out of a room.
DEPARTURES = (Left, Kicked, Banned)


class ClusterBus:
    """Publishes to the shared log; delivers what it reads to this node's connections."""

    def __init__(self, local: LocalBus, node_id: str, sequencer: ClusterSequencer,
                 shared: redis.asyncio.Redis, room_of: Callable[[int], Room | None],
                 user_of: Callable[[int], User | None],
                 resync: Callable[[int], Awaitable[None]],
                 account_changed: Callable[[Entry], Awaitable[None]],
                 items: DecodedItems | None = None) -> None:
        self.local = local
        # Decoded once for this reader and the node's persister.
        self.items = DecodedItems() if items is None else items
        self._account_changed = account_changed
        self._node = node_id
        self._ids = sequencer
        self._shared = shared
        # The reader's own connection: a blocking XREAD holds one, and a client of
        # one connection spares each read the pool's checks.
        self._reading = shared.client()
        self._room_of = room_of
        self._user_of = user_of
        self._resync = resync
        self._outgoing: list[Entry] = []
        self._flushing: asyncio.Task[None] | None = None
        self._unannounced: list[Entry] = []
        self._announcing: asyncio.Task[None] | None = None
        # The endpoint and label of this node's posts, shown their copy as a reply.
        self._replies: dict[int, tuple[Endpoint | None, str | None]] = {}
        # The command runs whose events these entries are, by token: delivered
        # under that run (its reply), which waits for them (Issuing.expect).
        self._issued: dict[int, tuple[Issuing, asyncio.Future[None]]] = {}
        # The tokens of direct messages whose skipped sender is sent its own copy.
        self._echoes: set[int] = set()
        # The recipients without an account of this node's entries, by token.
        self._guests: dict[int, list[User]] = {}
        self._tokens = itertools.count(1)
        self._announced: set[int] = set()
        self._reader: asyncio.Task[None] | None = None
        self._held: list[tuple[int, int, Entry]] = []
        self._expected = 0
        self._gap_since: float | None = None
        self.delivered = 0
        self.gate = Gate(user_of)
        self.refused = 0
        # This node's posts refused where the order is decided, by error code (metrics).
        self.refusals: dict[str, int] = {}
        # This node's room messages waiting for their place, by id (minus the entry's
        # token for a post the poster's script numbers), and when each is refused
        # (busy) if still waiting, oldest first, with the timer of the first.
        self._placing: dict[int, asyncio.Future[Any]] = {}
        self._deadlines: deque[tuple[float, int]] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        # The loop, asked for once: asyncio.get_running_loop() makes a system call
        # (getpid) every time, and every post of this node asks for its timer.
        self._loop: asyncio.AbstractEventLoop | None = None
        # The room's connections when this node decided a departure, by entry token.
        self._departing: dict[int, tuple[Endpoint, ...]] = {}
        # The records of messages about to be published, by id (see keep).
        self._kept: dict[int, MessageRecord] = {}
        # The numbers of the messages the gate dropped, as an ordered set.
        self._dropped: dict[int, None] = {}
        # Where the reader is in the log (the id of the last entry read: its lag is
        # measured from it), and its generation (a reset starts a new one).
        self.position = b"0-0"
        self._generation = 0
        self._epoch_checked = 0.0
        # The users signed in on this node (told of a new epoch).
        self._users: dict[int, User] = {}
        # Who applies the entries of other kinds (presence's, by kind).
        self.handlers: dict[str, Callable[[Entry], None]] = {}
        # The newest format of the log every live node reads (keys.LOG_FORMAT).
        self.log_format: Callable[[], int] = lambda: 1

    @property
    def node_id(self) -> str:
        return self._node

    # -- routes: this node's own ------------------------------------------

    def connect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        self.local.connect(room, endpoints)
        if room.id not in self._announced:
            self._announced.add(room.id)
            self._publish({"k": "sync", "r": room.id})

    def disconnect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        self.local.disconnect(room, endpoints)

    def announce_room(self, room_id: int) -> None:
        """Have the other nodes read the room again now: a change no decision of the
        room tells them of (a guest's ban moved to its new nick)."""
        self._publish({"k": "sync", "r": room_id})

    def disconnect_user(self, room: Room, user_id: int) -> list[Endpoint]:
        return self.local.disconnect_user(room, user_id)

    def close_room(self, room: Room) -> list[Endpoint]:
        return self.local.close_room(room)

    def in_room(self, room: Room) -> Collection[Endpoint]:
        return self.local.in_room(room)

    def add_user(self, user: User, endpoint: Endpoint) -> None:
        self.local.add_user(user, endpoint)
        self._users[user.id] = user

    def remove_user(self, user: User, endpoint: Endpoint) -> None:
        self.local.remove_user(user, endpoint)
        if not self.local.of_user(user):
            self._users.pop(user.id, None)

    def tell_all(self, record: Mapping[str, Any]) -> int:
        """Deliver ``record`` to every signed-in connection of this node; how many."""
        endpoints = [e for user in self._users.values() for e in self.local.of_user(user)]
        self.local.to_endpoints(endpoints, record)
        return len(endpoints)

    def of_user(self, user: User) -> Sequence[Endpoint]:
        return self.local.of_user(user)

    def end_turn(self) -> None:
        self.local.end_turn()

    def announce_account(self, user_id: int, what: str, details: Mapping[str, Any]) -> None:
        """An account was made or changed here (``what``, see ``Accounts.changed``):
        the other nodes apply it before anything of it they read later (an
        unnumbered entry is delivered when read)."""
        entry: Entry = {"k": "account", "u": user_id, "w": what}
        if details:
            entry["x"] = dict(details)
        self._publish(entry)

    def announce_broadcast(self, text: str) -> None:
        """An operator's broadcast made here (``Presence.broadcast``): every other
        node sends it to its own connections when it reads the entry."""
        self._publish({"k": "bc", "x": text})

    def announce_audit(self, entry: Mapping[str, Any]) -> None:
        """An audit entry made here (``AuditLog.shared``): every other node tells its
        live readers (the admin feed) when it reads it; only this node stores it."""
        self._publish({"k": "au", "x": dict(entry)})

    def keep(self, record: MessageRecord) -> None:
        """``record`` is to be stored: its entry, published next, carries what its
        row needs beside the event (the persister stores it from the log)."""
        self._kept[record.id] = record
        if len(self._kept) > REMEMBERED:
            del self._kept[next(iter(self._kept))]

    def verdict(self, number: int) -> bool | None:
        """Whether message ``number`` took its place in the order (True) or was
        dropped by the gate (False), as this node's reader decided; None while
        it has not decided yet. A number ordered before this node started
        reading is taken as placed: the reader never saw it."""
        if number in self._dropped:
            return False
        return True if number < self._expected else None
    def publish(self, entry: Entry) -> None:
        """Append an entry of a kind of its own, numbered: delivered in the one
        order, to the handler of its kind on every node."""
        entry["s"] = self._ids.next()
        self._publish(entry)

    def placed(self, message_id: int) -> Awaitable[None]:
        return self._wait_place(message_id)

    def _wait_place(self, key: int) -> asyncio.Future[Any]:
        """A future settled when this node's post ``key`` (a message id, or minus
        the entry's token) took its place, or refused with busy after PLACE_WAIT."""
        loop = self._running_loop()
        future = loop.create_future()
        self._placing[key] = future
        # One timer for all the posts waiting, not one per post: the deadlines come
        # in the order the posts were placed, so the oldest is always the first.
        self._deadlines.append((loop.time() + PLACE_WAIT, key))
        if self._expiry is None:
            self._expiry = loop.call_at(self._deadlines[0][0], self._expire)
        return future

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _expire(self) -> None:
        """Refuse with ``busy`` the posts that waited ``PLACE_WAIT`` for their place."""
        loop = self._running_loop()
        now, deadlines = loop.time(), self._deadlines
        while deadlines and deadlines[0][0] <= now:
            future = self._placing.pop(deadlines.popleft()[1], None)
            if future is not None and not future.done():
                self._count_refusal(Code.BUSY)
                future.set_exception(busy())
        self._expiry = loop.call_at(deadlines[0][0], self._expire) if deadlines else None

    def _count_refusal(self, code: Code) -> None:
        self.refusals[code.value] = self.refusals.get(code.value, 0) + 1

    def _settle(self, entry: Entry, refusal: ChatError | None) -> bool:
        """Tell this node's post waiting for ``entry`` whether it took its place
        (a post numbered by the poster's script waits under its token, and learns
        its number here). False when no post was waiting: none was made here, or
        it was refused already (busy, having waited too long)."""
        if entry["n"] != self._node:
            return False
        placing = self._placing
        future = placing.pop(-entry["t"], None) if entry.get("o") else \
            placing.pop(entry.get("s", 0), None)
        if future is None or future.done():
            return False
        if refusal is None:
            future.set_result(entry["s"])
        else:
            self._count_refusal(refusal.code)
            future.set_exception(refusal)
        return True

    def post_entry(self, room: Room, event: Message, record: MessageRecord,
                   skip: Endpoint | None, label: str | None) -> tuple[Entry, asyncio.Future[int]]:
        """The entry of a room message the poster's script numbers and appends
        (:mod:`chatd.cluster.poster`), and the future of its number once placed.

        It waits under its token (its number is not known before the script
        ran, and the reader may read the entry before this node reads the
        script's answer); ``skip`` is shown its copy labelled ``label``."""
        token = next(self._tokens)
        entry: Entry = {"k": "room", "r": room.id, "e": event, "o": 1, "t": token,
                        "n": self._node,
                        "p": [record.sender_id, record.recipient_id, record.delivered]}
        if skip is not None:
            self._replies[token] = (skip, label)
        return entry, self._wait_place(-token)

    def unplaced(self, entry: Entry, refusal: Exception) -> bool:
        """The poster's script did not append ``entry``: its post learns why. False
        when the post is no longer waiting (placed, or given up)."""
        token = entry["t"]
        future = self._placing.pop(-token, None)
        if future is None or future.done():
            return False
        self._replies.pop(token, None)
        future.set_exception(refusal)
        return True

    # -- publishing --------------------------------------------------------

    def to_room(self, room: Room, event: Event, skip: Endpoint | None = None,
                label: str | None = None) -> int:
        entry = {"k": "room", "r": room.id, "e": event}
        self._carry(entry, event)
        if isinstance(event, STANDING) and self.log_format() >= keys.LOG_STANDING:
            # Every node's gate takes it into account (a node of a version before
            # would not: while one is live, none does).
            entry["g"] = 1
        if isinstance(event, DEPARTURES):
            # Decided here, so the room's connections are still those of before the
            # decision: the ones it takes out are told when the entry is read back.
            token = next(self._tokens)
            self._departing[token] = tuple(self.local.in_room(room))
            entry["d"] = token
        self._publish(self._numbered(entry, event, skip, label))
        return len(self.local.in_room(room))

    def to_user(self, user: User, event: Event, skip: Endpoint | None = None,
                room_id: int | None = None) -> None:
        self.to_users((user,), event, skip, room_id)

    def to_users(self, users: Iterable[User], event: Event,
                 skip: Endpoint | None = None, room_id: int | None = None,
                 echo: bool = False, label: str | None = None) -> None:
        users = list(users)
        entry = {"k": "users", "u": [u.id for u in users if u.has_account], "r": room_id,
                 "e": event}
        self._carry(entry, event)
        numbered = self._numbered(entry, event, skip, label)
        token = numbered.get("t")
        guests = [u for u in users if not u.has_account]
        if guests:
            # A user without an account (an IRC guest) is this node's alone and no
            # other node could name it: delivered here when the entry is read back.
            if not isinstance(token, int):
                token = numbered["t"] = next(self._tokens)
            self._guests[token] = guests
        if echo and skip is not None and isinstance(token, int):
            # The sender's copy goes out when the reader delivers the entry, in the
            # log's order with the messages around it, not once its post is answered.
            self._echoes.add(token)
        self._publish(numbered)

    def to_endpoints(self, endpoints: Iterable[Endpoint], record: Mapping[str, Any]) -> None:
        # A front end's notice to connections it names: they are this node's.
        self.local.to_endpoints(endpoints, record)

    def _carry(self, entry: Entry, event: Event) -> None:
        """A message to be stored carries its sender's id, recipient's id and
        delivered flag (the rest of its row is in the event); a bot's (a webhook's
        post, stored under the account that made the hook) also whom it speaks for."""
        if isinstance(event, Message) and event.id is not None:
            record = self._kept.pop(event.id, None)
            if record is not None:
                entry["p"] = [record.sender_id, record.recipient_id, record.delivered]
                if event.msg_kind == "bot" and record.sender_id is not None:
                    self._speaks_for(entry, record.sender_id)

    def _speaks_for(self, entry: Entry, account_id: int) -> None:
        """Name the account a bot's message speaks for (``w``): every node's gate
        then refuses it for that account's sanctions. Not while a node of a version
        before live: its gate would check the bot's name, and deliver it."""
        if self.log_format() < keys.LOG_SPEAKERS:
            return
        account = self._user_of(account_id)
        if account is not None:
            entry["w"] = account.name

    def _numbered(self, entry: Entry, event: Event, skip: Endpoint | None,
                  label: str | None) -> Entry:
        if isinstance(event, Message) and event.id is not None:
            entry["s"] = event.id
        elif not isinstance(event, Typing):
            entry["s"] = self._ids.next()  # a future: awaited before the entry is appended
        run = current() if skip is None and not isinstance(event, Typing) else None
        if skip is not None or run is not None:
            token = next(self._tokens)
            if skip is not None:
                self._replies[token] = (skip, label)
            else:
                assert run is not None
                self._issued[token] = (run, run.expect())
            entry["t"] = token
        return entry

    def _publish(self, entry: Entry) -> None:
        entry["n"] = self._node
        self._outgoing.append(entry)
        if self._flushing is None:
            self._flushing = self._running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Append this turn's entries, in one round trip, after the turn (and
        after the sequencer numbered the events among them)."""
        await asyncio.sleep(0)
        entries, self._outgoing = self._outgoing, []
        self._flushing = None
        try:
            for entry in entries:
                number = entry.get("s")
                if isinstance(number, asyncio.Future):
                    entry["s"] = await number
        except ChatError:
            log.error("cluster: %d entries not published: Redis does not answer", len(entries))
            for entry in entries:  # the batch was refused as one: each refusal is seen
                number = entry.get("s")
                if isinstance(number, asyncio.Future) and number.done():
                    number.exception()
            self._unpublished(entries)
            return
        pipe = self._shared.pipeline(transaction=False)
        for fields in self._items(entries):
            pipe.xadd(keys.LOG, fields, maxlen=keys.LOG_LENGTH, approximate=True)
        try:
            await pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis away: said in one line, as the reader and the persister say it.
            log.warning("cluster: %d entries not published: Redis does not answer (%s)",
                        len(entries), exc)
            self._unpublished(entries)
        except redis.RedisError:
            log.exception("cluster: %d entries not published", len(entries))
            self._unpublished(entries)

    def _items(self, entries: list[Entry]) -> Iterator[dict[Any, Any]]:
        """The log's items for a turn's entries: several to an item while every
        live node reads such items (each item is a call to pack, a command for
        Redis and a record for every reader), else one each."""
        encoded = [blob for blob in map(self._encoded, entries) if blob is not None]
        if len(encoded) > 1 and self.log_format() >= keys.LOG_BATCHES:
            for start in range(0, len(encoded), ITEM_ENTRIES):
                yield {"b": codec.joined(encoded[start:start + ITEM_ENTRIES])}
        else:
            for blob in encoded:
                yield {"j": blob}

    def _encoded(self, entry: Entry) -> bytes | None:
        """``entry`` as JSON; None, and its post refused, when JSON cannot carry it
        (one odd value must not keep a turn's other entries off the log)."""
        try:
            return codec.encode(entry)
        except codec.Uncarried as exc:
            log.warning("cluster: an entry was not published: %s", exc)
            refusal = codec.refusal(exc)
        except TypeError:
            # A value of a class no node can read back: a fault of ours, logged; the
            # turn's other entries are published all the same.
            log.exception("cluster: an entry was not published")
            refusal = ChatError(Code.INTERNAL_ERROR, "this message cannot be sent.")
        self._settle(entry, refusal)
        self._forget_reply(entry)
        return None

    def _unpublished(self, entries: list[Entry]) -> None:
        for entry in entries:
            if isinstance(entry.get("s"), int):
                self._settle(entry, busy())
            self._forget_reply(entry)
        self._unannounced += [entry for entry in entries if entry["k"] in ANNOUNCED]
        if len(self._unannounced) > ANNOUNCEMENTS:
            dropped = len(self._unannounced) - ANNOUNCEMENTS
            log.error("cluster: %d announcements of account changes or rooms will not "
                      "reach the other nodes", dropped)
            del self._unannounced[:dropped]
        if self._unannounced and self._announcing is None:
            self._announcing = asyncio.get_running_loop().create_task(self._announce_again())

    def _forget_reply(self, entry: Entry) -> None:
        """An entry never delivered: nobody is to be shown it as a reply or a copy."""
        token = entry.get("t")
        if isinstance(token, int):
            self._replies.pop(token, None)
            self._shown(self._issued.pop(token, None))
            self._echoes.discard(token)
            self._guests.pop(token, None)

    @staticmethod
    def _shown(issued: tuple[Issuing, asyncio.Future[None]] | None) -> None:
        """The command that caused an entry waits no more for it."""
        if issued is not None and not issued[1].done():
            issued[1].set_result(None)

    async def _announce_again(self) -> None:
        """Publish the announcements Redis refused, a moment later (refused
        again, they come back here)."""
        await asyncio.sleep(ANNOUNCE_RETRY)
        self._announcing = None
        entries, self._unannounced = self._unannounced, []
        for entry in entries:
            self._publish(entry)

    # -- reading -----------------------------------------------------------

    async def start(self) -> None:
        """Read the log from now on (entries numbered before now are not waited for)."""
        pipe = self._shared.pipeline(transaction=True)
        pipe.get(keys.COUNTER)
        pipe.xrevrange(keys.LOG, count=1)
        counter, last = await pipe.execute()
        self._expected = int(counter or 0) + 1
        self.position = last[0][0] if last else b"0-0"
        self._epoch_checked = time.monotonic()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def reset(self) -> None:
        """Redis lost its memory (a new epoch): read the new log from its start.

        What the old log ordered and this node has not delivered yet is gone
        with it; so are the gate's sanctions (the rooms are reloaded from the
        database instead) and the verdicts."""
        counter = await self._shared.get(keys.COUNTER)
        self._generation += 1
        self.position = b"0-0"
        self._expected = int(counter or 0) + 1
        self._held.clear()
        self._gap_since = None
        self._dropped.clear()
        self.items.clear()
        self._replies.clear()
        self._forget_issued()
        self._echoes.clear()
        self._guests.clear()
        self.gate = Gate(self._user_of)
        self._refuse_waiting()

    def _forget_issued(self) -> None:
        """Entries never to be delivered: their commands stop waiting for them."""
        for issued in self._issued.values():
            self._shown(issued)
        self._issued.clear()

    def _refuse_waiting(self) -> None:
        """Refuse with busy every post of this node still waiting for its place."""
        for future in self._placing.values():
            if not future.done():
                future.set_exception(busy())
        self._placing.clear()

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._refuse_waiting()  # nothing will place them now
        self._forget_issued()
        if self._flushing is not None:
            await self._flushing
        if self._announcing is not None:  # (after the flush, which may start it)
            self._announcing.cancel()
        await self.close_reading()

    @property
    def reading(self) -> bool:
        """Whether the reader still runs or its own connection is still open."""
        running = self._reader is not None and not self._reader.done()
        return running or self._reading.connection is not None

    async def close_reading(self) -> None:
        """End the reader and close its own connection (more than once does nothing
        more): the node's stop does so whatever became of the steps before."""
        if self._expiry is not None:
            self._expiry.cancel()
        for task in (self._announcing, self._flushing):  # (done after a clean stop)
            if task is not None:
                task.cancel()
        # Cancelled until it ends: a cancellation that meets a Redis reply
        # arriving can be lost inside the client (asyncio.wait_for in 3.11).
        while self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=0.1)
        await self._reading.aclose()

    async def _read(self) -> None:
        # Redis away: retry soon, then less often (flow resumes within a second).
        retries = Retries("reading the log failed", READ_BACKOFF, log)
        while not stopping():
            generation = self._generation
            try:
                await self._check_epoch()
                block = 1000 if not self._held else max(1, int(GAP_WAIT * 500))
                answer: Any = await self._reading.xread({keys.LOG: self.position},
                                                        count=READ_COUNT, block=block)
            except (redis.RedisError, EpochChanged) as exc:
                await retries.failed(exc)
                continue
            if retries.succeeded():
                log.info("cluster: reading the log again")
            if generation != self._generation:
                continue  # read from the old log: reset meanwhile
            if 0 < await self._take_all(answer) < READ_COUNT:
                await asyncio.sleep(READ_GATHER)

    async def _take_all(self, answer: Any) -> int:
        """Take a read's entries into the order and deliver what is next, in
        this turn when nothing needs Redis or PostgreSQL: every connection's
        share of the batch then leaves in one write (LocalBus.end_turn). How
        many entries were read."""
        taken, generation = 0, self._generation
        for _stream, items in answer or ():
            taken += len(items)
            for stream_id, fields in items:
                self.position = stream_id
                for entry in self.items.entries(stream_id, fields):
                    waiting = self._take(entry)
                    if waiting is not None:
                        await waiting
                        if generation != self._generation:
                            return taken  # a new epoch meanwhile: the rest is the old log's
        await self._release()
        return taken

    async def _check_epoch(self) -> None:
        """Now and then: is this node's epoch still Redis's? (The sequencer checks
        it with every batch of ids; a node that posts nothing checks here.)"""
        now = time.monotonic()
        # Redis numbering another database: checked before every read, so that
        # nothing of that database's log is read (EpochChanged until it is ours).
        if now - self._epoch_checked < EPOCH_CHECK and not self._ids.foreign:
            return
        self._epoch_checked = now
        await self._ids.check_epoch()

    def _take(self, entry: Entry) -> Awaitable[None] | None:
        number = entry.get("s")
        if number is None or number < self._expected:
            # Unnumbered (typing), or numbered before this node started reading.
            return self._deliver(entry)
        if number == self._expected and not self._held:
            # The next in the order, as nearly every entry is: delivered without
            # passing through the heap (what _release does with it, done here).
            self._expected = number + 1
            self._gap_since = None
            return self._deliver(entry)
        heapq.heappush(self._held, (number, id(entry), entry))
        return None

    async def _release(self) -> None:
        """Deliver what is next in the order; move past a gap that lasted too long."""
        held = self._held
        while held:
            number = held[0][0]
            if number > self._expected:
                now = time.monotonic()
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since < GAP_WAIT:
                    return
                log.warning("cluster: ids %d-%d never came", self._expected, number - 1)
                self._expected = number
            self._gap_since = None
            _, _, entry = heapq.heappop(held)
            self._expected = max(self._expected, number + 1)
            waiting = self._deliver(entry)
            if waiting is not None:
                await waiting

    def _deliver(self, entry: Entry) -> Awaitable[None] | None:
        """Deliver ``entry`` now, or return what delivers it when it needs a
        round trip first (a room or an account to load, a decision to apply)."""
        try:
            handler = self.handlers.get(entry["k"])
            if handler is not None:
                handler(entry)
                return None
            kind = entry["k"]
            if kind in {"sync", "account"}:
                return self._guarded(self._deliver_other(entry, kind))
            event = codec.decode(entry["e"])
            if entry.get("r") is not None and not isinstance(event, Message | Typing):
                return self._guarded(self._deliver_decision(entry, event))
            self._deliver_event(entry, event, ())
        except Exception:
            log.exception("cluster: an entry could not be delivered")
        return None

    @staticmethod
    async def _guarded(delivering: Awaitable[None]) -> None:
        try:
            await delivering
        except Exception:
            log.exception("cluster: an entry could not be delivered")

    async def _deliver_other(self, entry: Entry, kind: str) -> None:
        """A room or an account made on another node: load it."""
        if entry["n"] == self._node:
            return
        if kind == "sync" and entry.get("r") is not None:
            await self._resync(entry["r"])
        elif kind == "account":
            await self._account_changed(entry)

    async def _deliver_decision(self, entry: Entry, event: Event) -> None:
        """A decision about a room: applied to the gate and to this node's copy
        of the room before its event is delivered."""
        self.gate.apply(entry["r"], event, standing="g" in entry)
        before = await self._decided(entry["r"], event, entry["n"] == self._node)
        self._deliver_event(entry, event, before)

    def _deliver_event(self, entry: Entry, event: Event,
                       before: tuple[Endpoint, ...]) -> None:
        ours = entry["n"] == self._node
        # (Asked only while a command of this node waits: the message path, every
        # entry of every node, pays one test of an empty dict.)
        if self._issued and ours and "t" in entry:
            issued = self._issued.pop(entry["t"], None)
            if issued is not None:
                self._deliver_issued(issued, entry, event, before)
                return
        room_id = entry.get("r")
        if ours and "d" in entry:
            before = self._departing.pop(entry["d"], ()) or before
        reply = self._replies.pop(entry["t"], None) if ours and "t" in entry else None
        if entry["k"] == "room":
            self._deliver_to_room(entry, room_id, event, reply, before)
            return
        self.delivered += 1
        told = self._settle(entry, None)  # a direct message waits for its place too
        users = [u for u in map(self._user_of, entry["u"]) if u is not None]
        if ours and "t" in entry:
            users += self._guests.pop(entry["t"], ())
        if reply is not None:
            # The sender's copy, only to a post still waiting: one refused with busy
            # meanwhile was told so, and is not sent a copy after its error.
            echo = told and entry["t"] in self._echoes
            self._echoes.discard(entry["t"])
            self.local.to_users(users, event, reply[0], room_id, echo, reply[1])
        else:
            self.local.to_users(users, event, None, room_id)

    def _deliver_issued(self, issued: tuple[Issuing, asyncio.Future[None]], entry: Entry,
                        event: Event, before: tuple[Endpoint, ...]) -> None:
        """Deliver an entry a command of this node caused as part of its reply."""
        try:
            with resumed(issued[0]):
                self._deliver_event(entry, event, before)  # (no longer issued: delivered)
        finally:
            self._shown(issued)

    async def _decided(self, room_id: int, event: Event,
                       ours: bool) -> tuple[Endpoint, ...]:
        """Apply a decision about a room, decided elsewhere, to this node's copy of
        the room (the gate has taken it); the room's connections before (elsewhere)."""
        if ours:
            return ()
        known = self._room_of(room_id)
        before = tuple(self.local.in_room(known)) if known is not None else ()
        await self._resync(room_id)
        return before

    def _deliver_to_room(self, entry: Entry, room_id: int | None, event: Event,
                         reply: tuple[Endpoint | None, str | None] | None,
                         before: tuple[Endpoint, ...]) -> None:
        room = self._room_of(room_id) if room_id is not None else None
        refusal = self._refusal(entry, room_id, room, event)
        told = self._settle(entry, refusal)
        if reply is not None and not told and isinstance(event, Message):
            # Its post was refused with busy meanwhile: the sender is not sent its
            # labelled copy after the error (the others get the message).
            reply = (reply[0], None)
        if room is not None and refusal is None:
            self.delivered += 1
            self._to_room(room, event, reply)
        if isinstance(event, DEPARTURES):
            self._tell_departed(room, room_id, event, before, reply)

    def _tell_departed(self, room: Room | None, room_id: int | None, event: Event,
                       before: tuple[Endpoint, ...],
                       reply: tuple[Endpoint | None, str | None] | None) -> None:
        """A departure reaches the connections it took out of the room (the one
        who left, was kicked or banned, on this node), as it does in one process,
        where the event goes out before they are disconnected. A connection told
        by the reply (the issuer's own) is not told twice."""
        still = set(self.local.in_room(room)) if room is not None else set()
        run = current()
        issuer_endpoint = reply[0] if reply is not None else run.session if run else None
        gone = [e for e in before if e not in still and e is not issuer_endpoint]
        if gone:
            self.local.to_each(gone, event, room_id)

    def _refusal(self, entry: Entry, room_id: int | None, room: Room | None,
                 event: Event) -> ChatError | None:
        """Why a room entry is not delivered here; None when it is. The gate's
        refusal holds on every node alike (its number is remembered as dropped);
        a room this node does not know is its own business."""
        if not isinstance(event, Message) or room_id is None:
            return None
        name = room.name if room is not None else event.room or ""
        speaks_for = entry.get("w")
        speaker = entry["p"][0] if entry.get("p") else None
        refusal = self.gate.refusal(room_id, name, event, speaks_for, speaker, room)
        if refusal is not None and refusal.code is Code.NOT_IN_ROOM and \
                self._outsider(entry, room_id, room, speaks_for):
            # A leave or kick refuses nothing where a non-member may post (a ban does,
            # and a moderated room what a non-member says). Asked only then: not a
            # cost of every entry of the log.
            refusal = self.gate.unheard(room_id, name, event, speaks_for, speaker, room)
        if refusal is not None:
            self.refused += 1
            if event.id is not None:
                self._dropped[event.id] = None
                if len(self._dropped) > REMEMBERED:
                    del self._dropped[next(iter(self._dropped))]
            return refusal
        if room is None:
            return ChatError(Code.NO_SUCH_ROOM, f"#{event.room} ended before your message.")
        return None

    def _outsider(self, entry: Entry, room_id: int, room: Room | None,
                  speaks_for: str | None) -> bool:
        """Whether the entry's message may come from outside its room: the room takes
        such messages (-n), and it is a member's post or a webhook's of a server
        admin (a room admin's hook posts while its creator is an admin there only)."""
        if not self.gate.takes_outside(room_id, room):
            return False
        if speaks_for is None:
            return True
        creator = self._user_of(entry["p"][0]) if entry.get("p") else None
        return creator is not None and creator.is_admin

    def _to_room(self, room: Room, event: Event,
                 reply: tuple[Endpoint | None, str | None] | None) -> None:
        if reply is None:
            self.local.to_room(room, event)
        else:
            self.local.to_room(room, event, skip=reply[0], label=reply[1])
