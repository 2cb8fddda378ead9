"""What the domain needs of the layers above it, as Protocols it owns.

The domain speaks to connections and to the message bus only through these:
a front end's session is an :class:`Endpoint`, and the delivery layer's bus is
a :class:`Bus`. The domain never imports the classes that implement them, so
it stays testable without sockets, and a bus shared by several nodes can take
the in-process one's place without the domain noticing.

Three more seams say what a decision needs, not who is connected: where
message ids come from (:class:`Sequencer`) and how a decision about a room or
an account is made exactly once (:class:`RoomTransactions`,
:class:`AccountTransactions`). This process implements them in
memory (``chatd.domain.sequence``, ``chatd.domain.transactions``); a cluster
of nodes implements them over shared state (a counter in Redis, a row lock in
PostgreSQL) behind the same Protocols.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from chatd.domain.accounts import User
    from chatd.domain.events import Event, Message
    from chatd.domain.limits import Charge
    from chatd.domain.room import Room
    from storage.quotas import Quota
    from storage.records import MessageRecord


class Endpoint(Protocol):
    """One client connection as the domain sees it, whatever protocol it speaks."""

    @property
    def id(self) -> int: ...
    @property
    def peer(self) -> str: ...

    # The account logged in here; None before login and after logout.
    user: User | None
    # The API token this login used (itself, or through a resume token made from
    # it): its revocation or expiry ends the session. None for any other login.
    token_id: int | None

    @property
    def closing(self) -> bool:
        """The connection is going away: nothing more is done for it."""

    def signed_in(self, user: User, room: Room | None) -> None:
        """``user`` is logged in here now; ``room`` (if any) becomes its current room."""

    def signed_out(self, now: float) -> None:
        """Nobody is logged in here any more (since ``now``, a monotonic time)."""

    def gone(self) -> None:
        """The connection closed: drop what it was in the middle of; it is closing now."""

    def left_room(self, room: Room) -> None:
        """``room`` is no longer this connection's to use (left, terminated)."""

    def send(self, record: Mapping[str, Any] | Event, label: str | None = None) -> None:
        """Show ``record`` on this connection only, labelled ``label`` if given.

        What the domain itself tells (a message's labelled copy, a replay) is an
        event; a front end's own replies and notices may be wire records."""

    def close(self, reason: str, going_away: bool = False) -> None:
        """Close the connection, after what it was told. ``going_away``: the server
        leaves the client, which is to reconnect (a shutdown, a fenced cluster node)."""


class Routes(Protocol):
    """Who is connected where: the endpoints of each room and of each user.

    Rooms and users hold no connections: the delivery layer keeps them, next
    to the fan-out they serve, and the domain changes them through here.
    """

    def connect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        """These endpoints receive the room's messages from now on."""

    def disconnect(self, room: Room, endpoints: Iterable[Endpoint]) -> None:
        """These endpoints receive nothing more of the room, not even this turn's."""

    def disconnect_user(self, room: Room, user_id: int) -> list[Endpoint]:
        """Disconnect the room's endpoints where ``user_id`` is logged in; return them."""

    def close_room(self, room: Room) -> list[Endpoint]:
        """Disconnect every endpoint of a room that ends; return them."""

    def in_room(self, room: Room) -> Collection[Endpoint]:
        """The endpoints connected to ``room`` (do not change it)."""

    def add_user(self, user: User, endpoint: Endpoint) -> None:
        """``endpoint`` is one of ``user``'s connections from now on."""

    def remove_user(self, user: User, endpoint: Endpoint) -> None: ...

    def of_user(self, user: User) -> Sequence[Endpoint]:
        """``user``'s connections, oldest first (do not change it)."""


class Bus(Routes, Protocol):
    """How the domain tells connections what happened.

    ``event`` is what happened (:mod:`chatd.domain.events`; each front end
    renders it its own way); ``room_id`` names the room it belongs to (a front
    end shows a room's events differently to the members for whom it is the
    current room). ``skip`` is the connection that
    is told otherwise (the sender, who gets a labelled acknowledgement).
    """

    def to_room(self, room: Room, event: Event, skip: Endpoint | None = None,
                label: str | None = None) -> int:
        """Tell ``room``'s connections; with ``label``, ``skip`` is shown the event as
        its reply labelled ``label`` (the sender's acknowledgement of its message).
        Returns how many connections the room has (the deliveries, counted once)."""

    def to_user(self, user: User, event: Event, skip: Endpoint | None = None,
                room_id: int | None = None) -> None: ...

    def to_users(self, users: Iterable[User], event: Event,
                 skip: Endpoint | None = None, room_id: int | None = None,
                 echo: bool = False, label: str | None = None) -> None:
        """:meth:`to_user` for each of ``users``, the event rendered once for them all.
        With ``echo``, ``skip`` is then sent its own copy, labelled ``label`` (the
        sender's copy of its direct message), in its place among the connection's
        other messages: on a shared log, when the log's order delivers it."""

    def to_endpoints(self, endpoints: Iterable[Endpoint], record: Mapping[str, Any]) -> None:
        """Deliver ``record`` to each of ``endpoints`` (a server-wide notice of a front
        end, not an event of the domain)."""

    def end_turn(self) -> None:
        """The connections' output of this turn of the loop is being flushed."""

    def placed(self, message_id: int) -> Awaitable[None] | None:
        """Wait until room message ``message_id``, just sent, took its place in the
        order. None when it did at once (this process's bus); a shared log's
        bus answers once its reader ordered the message, raising the refusal
        (``banned``, ``muted``, ``not-in-room``) when a sanction ordered before
        it forbade it, or ``busy`` when the log could not take it."""


class Poster(Protocol):
    """A room message charged, numbered and published in one step: where the rate
    limit, the counter and the log are one shared service (a cluster's Redis),
    one call does all three for the posts of a turn instead of three calls one
    after another (see ``chatd.cluster.poster``). This process has none: its
    steps take no round trip.
    """

    def ready(self) -> bool:
        """Whether posts may go this way now (else the three steps)."""

    def post(self, room: Room, event: Message, record: MessageRecord, charge: Charge,
             skip: Endpoint | None, label: str | None) -> asyncio.Future[int]:
        """Charge ``charge``, then number ``event`` (the message of ``record``, its id
        not known yet) and publish it to ``room``; the id once it took its place
        in the order. Raises :class:`~chatd.domain.limits.RateRefused` when the
        bucket is empty, and a ChatError (``busy``, or the sanction ordered
        before it) when it could not be sent. ``skip`` is shown its copy as the
        reply labelled ``label``. A future, so that the caller can settle its
        own by a callback rather than a task per post."""


# A message id, now or once a shared counter answered (see :class:`Sequencer`).
Id = int | Awaitable[int]


async def settled(number: Id) -> int:
    """The id ``number`` is or will be (a shared counter's answer, awaited)."""
    return number if isinstance(number, int) else await number


class Sequencer(Protocol):
    """Where message ids come from: room, direct and end-to-end messages alike.

    Ids are unique and strictly increasing in the order they are issued by one
    process, so a room's order is its messages' id order, and a connection
    sees ids increase across all its rooms and direct messages. Gaps are
    allowed (an id taken for a message that is then dropped, or a cluster's
    counter seeded with a margin after a loss): nothing may read meaning into
    the difference of two ids.

    Taking an id is on the hot path, once per message. This process's counter
    answers at once with an ``int``, so a post never awaits and nothing
    interleaves with it. A counter shared by several nodes answers with an
    awaitable (its ids come from another process, one round trip for all the
    posts of a turn): the caller awaits it (:func:`settled`),
    which is why posting returns an :data:`Id`. Both methods name what the id
    is for, so a sequencer shared by several nodes can order each room (or
    each recipient) without asking the caller anything more; this process's
    one counter serves both.
    """

    async def load(self) -> None:
        """Get ready to issue ids: at start, once storage is open, before the
        first message. This process's counter continues above the largest
        stored id; a cluster's joins the shared counter and learns its epoch."""

    async def stopped(self) -> None:
        """Every message numbered here is stored (a clean stop): this process's
        counter records it, so the next start need not skip ahead; a cluster's
        epochs say what a node's crash lost instead."""

    async def issued(self) -> IdSpan:
        """Which ids this sequencer vouches for (see :class:`IdSpan`); a shared
        counter asks it, raising ``ChatError`` (``busy``) when it does not answer."""

    def for_room(self, room_id: int) -> Id:
        """The id of a new message in room ``room_id``."""

    def for_direct(self, recipient_id: int) -> Id:
        """The id of a new direct message to user ``recipient_id``."""


@dataclass(frozen=True, slots=True)
class IdSpan:
    """The ids a sequencer vouches for: ``last`` is the largest issued so far
    (an id above it was never issued here); an id below ``first`` belongs to an
    earlier epoch of the counter, whose messages numbered but never stored are
    lost (none in this process: 0)."""

    first: int
    last: int


class RoomTxn(Protocol):
    """A decision about one room in progress (see :class:`RoomTransactions`)."""

    @property
    def room(self) -> Room: ...

    @property
    def fence(self) -> int:
        """The fencing token of this transaction: greater than that of every
        transaction on the same room that began before it. A store shared by
        nodes refuses a write carrying a smaller token than one it already
        applied (a holder whose lock lapsed, say on a node that stalled); in
        one process nothing can lapse, and nothing reads it yet."""


class RoomTransactions(Protocol):
    """Where a decision about a room is made exactly once.

    Each governance change (join, leave, kick, ban, invite, promote, demote,
    transfer, mode, topic, settings, termination) reads what it depends on,
    checks the rules, writes storage and applies the change to memory inside
    ``async with transactions.room(room) as txn:``. Decisions about the same
    room never overlap: the second waits, first come first served, and then
    sees the first one's outcome (a member gone, a role changed). Events and
    notifications follow after the block, in the order the decisions were made.

    In this process the transaction is the room's lock, an :class:`asyncio.Lock`
    held by the implementation and keyed by room id, so a ``Room`` holds no
    asyncio object. A cluster's implementation opens a PostgreSQL transaction
    that locks the room's row (``SELECT ... FOR UPDATE``, or an advisory lock
    on the room id), reloads the room's members and sanctions from the
    database rather than trusting the node's cache, and carries a fencing
    epoch (:attr:`RoomTxn.fence`) that storage checks, so a node that lost its
    lock while paused cannot write after the next holder.

    Creating a room needs none: its name is taken once by the database's
    unique constraint (``Conflict``), whichever node asks. (Storage orders it
    with its owner's deletion: see ``Storage.create_room``.) It asks
    :meth:`creatable` first, so that a room is not made where the other nodes
    cannot be told of it. Mutes (by a command
    and by flood control), unmutes and unbans are made inside one. An expiry
    deletes the expired rows in one statement, then forgets each sanction
    only if the room's current one has run out (a look and a removal with no
    await between). Declined requests are still made outside one (a single
    write whose check runs with no await before it).
    """

    def room(self, room: Room) -> AbstractAsyncContextManager[RoomTxn]:
        """Make a decision about ``room`` alone, once the earlier ones are made."""

    async def creatable(self) -> None:
        """Refuse (``busy``, with ``retry_ms``) to make a room now: on a cluster, while
        Redis, which tells the other nodes of it, does not answer, as every other
        decision is refused then. Nothing to refuse in one process."""


class AccountTxn(Protocol):
    """A decision about one account in progress (see :class:`AccountTransactions`)."""

    @property
    def user(self) -> User: ...

    @property
    def fence(self) -> int:
        """The fencing token, as :attr:`RoomTxn.fence` is for a room."""


class AccountTransactions(Protocol):
    """Where a decision about an account that must happen once is made.

    Deleting an account is one: it runs inside ``async with
    transactions.account(user):``, so a second deletion of the same account
    (an admin's ``/userdel`` and the console's at once) waits, then finds no
    account and is refused, instead of undoing half of the first. The account
    leaves each room in that room's transaction, taken inside the account's:
    always account first, then room, so two decisions never wait on each other.

    Other account changes need no lock. A password change is a compare-and-set
    on the account's change counter (in a cluster, an ``UPDATE ... WHERE``
    on a version column): a concurrent change is refused, not serialised.
    Creating an account takes its name once by the database's unique
    constraint. Blocks are decided in memory before they are written, and
    each is its user's own; they, settings and the admin flag are written under
    a lock of this process alone (``Accounts.writing``, a local
    ``account`` transaction), so a cluster node reading again an account
    changed elsewhere never undoes one being written. A transfer of ownership
    concerns one room only.
    In a cluster the account's transaction locks the user's row (``SELECT ...
    FOR UPDATE``) and carries a fencing epoch, as a room's does.
    """

    def account(self, user: User) -> AbstractAsyncContextManager[AccountTxn]:
        """Make a decision about ``user``'s account alone, once the earlier ones are made."""


class CountedStore(Protocol):
    """Stores a direct message in the transaction that counts ``quotas``, before the
    log carries it: a cluster's PostgreSQL (``store_direct_counted``), where
    messages are otherwise stored from the log, after their acknowledgement."""

    def __call__(self, quotas: Sequence[Quota],
                 numbered: Callable[[], Awaitable[MessageRecord]]) -> Awaitable[MessageRecord]:
        """The message ``numbered`` made, stored; ``OverQuota`` before it is made."""


class Tail(Protocol):
    """Messages acknowledged and not stored yet, which history shows all the same.

    The embedded daemon has none to show: it writes its writer's pending batch
    before it reads history. A cluster's messages are stored from the shared
    log by whichever node's persister, later: its tail is the log above what
    was stored (``chatd.cluster.tail``)."""

    async def room(self, room_id: int, before_id: int | None) -> list[MessageRecord]:
        """The unstored messages of a room (below ``before_id``), oldest first."""

    async def direct(self, user_id: int, other_id: int,
                     before_id: int | None) -> list[MessageRecord]:
        """The unstored direct messages between two users, either way, oldest first."""

    async def after(self, after_id: int) -> list[MessageRecord]:
        """Every unstored message numbered above ``after_id``, oldest first (what
        /resume merges with storage's); ``ChatError`` (``busy``) when the log
        does not answer, so that the answer can say the gap may be incomplete."""
