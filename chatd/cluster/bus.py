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
in the same order as everything else its connection sees. A post waits for
that moment (:meth:`ClusterBus.placed`) before it is stored and acknowledged.

**Sanctions where the order is decided.** A room message whose sender a kick,
ban, leave or mute ordered before it forbade is dropped by every node's reader
alike (:mod:`chatd.cluster.gate`); the sender's node tells the sender why.

**Another node's decisions.** Before an event about a room decided elsewhere
is delivered, the node reloads the room from PostgreSQL (``resync``): members
gone are disconnected, members come are connected, an ended room is closed.
A room this node first connects someone to is announced, so the other nodes
load it (a room created here is unknown to them until then); so is an account
made here (:meth:`ClusterBus.announce_account`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import redis

from chatd.cluster import codec, keys
from chatd.cluster.gate import Gate
from chatd.cluster.sequencer import busy
from chatd.delivery.issuer import issuer, issuing
from chatd.domain.events import Message, Typing
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

log = logging.getLogger(__name__)

# How long a gap in the order is waited for before the reader moves past it.
GAP_WAIT = 1.0
# How long a post waits for its place in the order before it is refused (busy).
PLACE_WAIT = 5.0
# The most entries read at once.
READ_COUNT = 1000

Entry = dict[str, Any]


class ClusterBus:
    """Publishes to the shared log; delivers what it reads to this node's connections."""

    def __init__(self, local: LocalBus, node_id: str, sequencer: ClusterSequencer,
                 shared: redis.asyncio.Redis, room_of: Callable[[int], Room | None],
                 user_of: Callable[[int], User | None],
                 resync: Callable[[int], Awaitable[None]],
                 adopt: Callable[[int], Awaitable[None]]) -> None:
        self.local = local
        self._adopt = adopt
        self._node = node_id
        self._ids = sequencer
        self._shared = shared
        self._room_of = room_of
        self._user_of = user_of
        self._resync = resync
        self._outgoing: list[Entry] = []
        self._flushing: asyncio.Task[None] | None = None
        # The endpoint and label of this node's entries, shown their copy as a reply.
        self._replies: dict[int, tuple[Endpoint | None, str | None, bool]] = {}
        self._tokens = itertools.count(1)
        self._announced: set[int] = set()
        self._reader: asyncio.Task[None] | None = None
        self._held: list[tuple[int, int, Entry]] = []
        self._expected = 0
        self._gap_since: float | None = None
        self.delivered = 0
        self.gate = Gate()
        self.refused = 0
        # This node's room messages waiting for their place, by id.
        self._placing: dict[int, asyncio.Future[None]] = {}
        # Who applies the entries of other kinds (presence's, by kind), and the
        # id of the last entry read from the stream (its lag is measured from it).
        self.handlers: dict[str, Callable[[Entry], None]] = {}
        self.position = b"0-0"

    # -- routes: this node's own ------------------------------------------

    def connect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        self.local.connect(room, endpoints)
        if room.id not in self._announced:
            self._announced.add(room.id)
            self._publish({"k": "sync", "r": room.id})

    def disconnect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        self.local.disconnect(room, endpoints)

    def disconnect_user(self, room: Room, user_id: int) -> list[Endpoint]:
        return self.local.disconnect_user(room, user_id)

    def close_room(self, room: Room) -> list[Endpoint]:
        return self.local.close_room(room)

    def in_room(self, room: Room) -> Collection[Endpoint]:
        return self.local.in_room(room)

    def add_user(self, user: User, endpoint: Endpoint) -> None:
        self.local.add_user(user, endpoint)

    def remove_user(self, user: User, endpoint: Endpoint) -> None:
        self.local.remove_user(user, endpoint)

    def of_user(self, user: User) -> Sequence[Endpoint]:
        return self.local.of_user(user)

    def end_turn(self) -> None:
        self.local.end_turn()

    def announce_account(self, user_id: int) -> None:
        """An account was made here: the other nodes load it (before anything of
        it they read later, an unnumbered entry being delivered when read)."""
        self._publish({"k": "account", "u": user_id})

    def publish(self, entry: Entry) -> None:
        """Append an entry of a kind of its own, numbered: delivered in the one
        order, to the handler of its kind on every node."""
        entry["s"] = self._ids.next()
        self._publish(entry)

    def placed(self, message_id: int) -> Awaitable[None]:
        future = asyncio.get_running_loop().create_future()
        self._placing[message_id] = future
        return self._wait_placed(message_id, future)

    async def _wait_placed(self, message_id: int, future: asyncio.Future[None]) -> None:
        try:
            async with asyncio.timeout(PLACE_WAIT):
                await future
        except TimeoutError:
            raise busy() from None
        finally:
            self._placing.pop(message_id, None)

    def _settle(self, entry: Entry, refusal: ChatError | None) -> None:
        """Tell this node's post waiting for ``entry`` whether it took its place."""
        future = self._placing.pop(entry.get("s", 0), None) if entry["n"] == self._node \
            else None
        if future is None or future.done():
            return
        if refusal is None:
            future.set_result(None)
        else:
            future.set_exception(refusal)

    # -- publishing --------------------------------------------------------

    def to_room(self, room: Room, event: Event, skip: Endpoint | None = None,
                label: str | None = None) -> int:
        entry = {"k": "room", "r": room.id, "e": codec.encode(event)}
        self._publish(self._numbered(entry, event, skip, label))
        return len(self.local.in_room(room))

    def to_user(self, user: User, event: Event, skip: Endpoint | None = None,
                room_id: int | None = None) -> None:
        self.to_users((user,), event, skip, room_id)

    def to_users(self, users: Iterable[User], event: Event,
                 skip: Endpoint | None = None, room_id: int | None = None) -> None:
        entry = {"k": "users", "u": [u.id for u in users], "r": room_id,
                 "e": codec.encode(event)}
        self._publish(self._numbered(entry, event, skip, None))

    def to_endpoints(self, endpoints: Iterable[Endpoint], record: Mapping[str, Any]) -> None:
        # A front end's notice to connections it names: they are this node's.
        self.local.to_endpoints(endpoints, record)

    def _numbered(self, entry: Entry, event: Event, skip: Endpoint | None,
                  label: str | None) -> Entry:
        if isinstance(event, Message) and event.id is not None:
            entry["s"] = event.id
        elif not isinstance(event, Typing):
            entry["s"] = self._ids.next()  # a future: awaited before the entry is appended
        labelled = issuer()
        if skip is not None or labelled is not None:
            token = next(self._tokens)
            if skip is not None:
                self._replies[token] = (skip, label, True)
            else:
                assert labelled is not None
                self._replies[token] = (labelled[0], labelled[1], False)
            entry["t"] = token
        return entry

    def _publish(self, entry: Entry) -> None:
        entry["n"] = self._node
        self._outgoing.append(entry)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

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
            self._unpublished(entries)
            return
        pipe = self._shared.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(keys.LOG, {"j": codec.encode(entry)}, maxlen=keys.LOG_LENGTH,
                      approximate=True)
        try:
            await pipe.execute()
        except redis.RedisError:
            log.exception("cluster: %d entries not published", len(entries))
            self._unpublished(entries)

    def _unpublished(self, entries: list[Entry]) -> None:
        for entry in entries:
            if isinstance(entry.get("s"), int):
                self._settle(entry, busy())

    # -- reading -----------------------------------------------------------

    async def start(self) -> None:
        """Read the log from now on (entries numbered before now are not waited for)."""
        pipe = self._shared.pipeline(transaction=True)
        pipe.get(keys.COUNTER)
        pipe.xrevrange(keys.LOG, count=1)
        counter, last = await pipe.execute()
        self._expected = int(counter or 0) + 1
        position = self.position = last[0][0] if last else b"0-0"
        self._reader = asyncio.get_running_loop().create_task(self._read(position))

    async def stop(self) -> None:
        if self._flushing is not None:
            await self._flushing
        # Cancelled until it ends: a cancellation that meets a Redis reply
        # arriving can be lost inside the client (asyncio.wait_for in 3.11).
        while self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=0.1)

    async def _read(self, position: bytes) -> None:
        while True:
            try:
                block = 1000 if not self._held else max(1, int(GAP_WAIT * 500))
                answer: Any = await self._shared.xread({keys.LOG: position}, count=READ_COUNT,
                                                  block=block)
            except redis.RedisError:
                log.warning("cluster: reading the log failed; retrying")
                await asyncio.sleep(0.2)
                continue
            for _stream, items in answer or ():
                for stream_id, fields in items:
                    position = self.position = stream_id
                    await self._take(codec.decode(fields[b"j"]))
            await self._release()

    async def _take(self, entry: Entry) -> None:
        number = entry.get("s")
        if number is None or number < self._expected:
            # Unnumbered (typing), or numbered before this node started reading.
            await self._deliver(entry)
            return
        heapq.heappush(self._held, (number, id(entry), entry))

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
            await self._deliver(entry)

    async def _deliver(self, entry: Entry) -> None:
        handler = self.handlers.get(entry["k"])
        try:
            if handler is not None:
                handler(entry)
            else:
                await self._deliver_entry(entry)
        except Exception:
            log.exception("cluster: an entry could not be delivered")

    async def _deliver_entry(self, entry: Entry) -> None:
        ours = entry["n"] == self._node
        room_id = entry.get("r")
        if entry["k"] == "sync":
            if not ours and room_id is not None:
                await self._resync(room_id)
            return
        if entry["k"] == "account":
            if not ours:
                await self._adopt(entry["u"])
            return
        event = codec.decode(entry["e"])
        if room_id is not None and not isinstance(event, Message | Typing):
            self.gate.apply(room_id, event)
            if not ours:
                await self._resync(room_id)
        reply = self._replies.pop(entry["t"], None) if ours and "t" in entry else None
        if entry["k"] == "room":
            room = self._room_of(room_id) if room_id is not None else None
            refusal = self._refusal(room_id, room, event)
            self._settle(entry, refusal)
            if room is not None and refusal is None:
                self.delivered += 1
                self._to_room(room, event, reply)
            return
        self.delivered += 1
        users = [u for u in map(self._user_of, entry["u"]) if u is not None]
        if reply is not None and not reply[2]:
            with issuing(reply[0], reply[1]):  # type: ignore[arg-type]
                self.local.to_users(users, event, None, room_id)
        else:
            self.local.to_users(users, event, reply[0] if reply else None, room_id)

    def _refusal(self, room_id: int | None, room: Room | None,
                 event: Event) -> ChatError | None:
        """Why a room entry is dropped here and on every node; None when it is not."""
        if not isinstance(event, Message) or room_id is None:
            return None
        if room is None:
            return ChatError(Code.NO_SUCH_ROOM, f"#{event.room} ended before your message.")
        refusal = self.gate.refusal(room_id, room.name, event)
        if refusal is not None:
            self.refused += 1
        return refusal

    def _to_room(self, room: Room, event: Event,
                 reply: tuple[Endpoint | None, str | None, bool] | None) -> None:
        if reply is None:
            self.local.to_room(room, event)
        elif reply[2]:
            self.local.to_room(room, event, skip=reply[0], label=reply[1])
        else:
            with issuing(reply[0], reply[1]):  # type: ignore[arg-type]
                self.local.to_room(room, event)
