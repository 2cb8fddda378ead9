"""Rate limits and flood control: the one place every limited action is charged.

Each :class:`Kind` has its rate and burst declared here (:meth:`Protection.rate`),
read from the configuration in force, so a reload applies at the next charge.
The buckets live in a :class:`LimitStore`; time comes from the daemon's clock.

- Messages: one bucket per user, shared by all their connections; a room
  whose owner set its own rate (``/ratelimit``) uses a bucket per member instead.
  A user without an account (an IRC guest) is new at each connection: its
  buckets are its address's (:meth:`Protection.holder`), shared by every guest
  from there, so connecting again refills nothing.
- A refused message counts towards flood detection; sustained flooding mutes
  the sender in that room (or disconnects them, as configured).
- Commands and typing indicators: a bucket per connection.
- Failed logins: a bucket per IP address and per account name; when either is
  empty, logins are refused with one reply that reveals neither which limit
  nor whether the account exists. An attempt takes its token from both before
  the password is checked and gives it back unless it failed, so attempts
  made at once (on one node or spread over a cluster's) get no more than the
  budget.
- chatd-crypt process starts: at most ``crypto.spawn_rate`` within any
  second, waited for (a sliding window of this process: it guards this
  machine's CPU).

With a store shared by a cluster's nodes (``chatd.cluster.limits``) the message
and login buckets answer after the turn: a message's charge is then awaited
before its id is asked for, on paths that await anyway.

Line-protocol messages are refused, never delayed: a chat line that arrives
late is worse than a clear ``rate-limited`` with the time to wait. IRC cannot
say "retry in N ms", so it waits instead (:meth:`Protection.wait_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Coroutine, Hashable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from chatd.domain import events
from chatd.domain.limits import (
    Charge,
    FloodDetector,
    Kind,
    LimitStore,
    MemoryLimitStore,
    SlidingWindow,
    address_key,
)
from chatd.domain.names import name_key
from chatd.errors import ChatError, Code

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.audit import AuditLog
    from chatd.domain.clock import Clock
    from chatd.domain.moderation import Moderation
    from chatd.domain.room import Room

log = logging.getLogger(__name__)

MESSAGE: Final = Kind.MESSAGE
ROOM_RATE = "message_rate"
ROOM_BURST = "message_burst"
# The audit's actions of a flood that disconnects: the connection was closed; or,
# from an HTTP API request, which has none, every request is refused (429) instead.
FLOOD_DISCONNECT: Final = "flood-disconnect"
FLOOD_REFUSED: Final = "flood-refused"
# Typing indicators a connection may send at once before typing_rate applies.
TYPING_BURST: Final = 2.0
# Longest single sleep of a wait; the wait is re-measured after it, so a clock
# that jumps (or a test that moves it) is noticed.
MAX_WAIT_STEP: Final = 1.0


class Client(Protocol):
    """What limits need of a connection: its id (the key of its own buckets),
    who is logged in, and, for a flood that disconnects, a last word and close,
    and whether that closed anything (an HTTP request has no connection)."""

    @property
    def id(self) -> int: ...
    @property
    def user(self) -> User | None: ...
    @property
    def closing(self) -> bool: ...
    def send(self, event: events.Event, /) -> None: ...
    def close(self, reason: str) -> None: ...


class Protection:
    """Charges limited actions, decides whether a message may go now, and what flooding costs."""

    def __init__(self, config: Config, clock: Clock, moderation: Moderation,
                 audit: AuditLog, store: LimitStore | None = None) -> None:
        # A reload only has to replace it (the setter takes the message rate from it).
        self.config = config
        self._clock = clock
        self._moderation = moderation
        self._audit = audit
        self._store: LimitStore = store if store is not None else MemoryLimitStore(clock)
        # Local to this process even with a shared store: refusals come back to
        # the node that holds the flooding connection (its consequence is not).
        self._floods: dict[Hashable, FloodDetector] = {}
        self._spawns = SlidingWindow(1.0, clock)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> Config:
        """The configuration in force; setting it applies its rates from the next charge."""
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config
        # Every message is charged: its rate and burst are read here, once per
        # configuration, rather than looked up at each charge.
        self._message_rate = config.limits.message_rate
        self._message_burst = config.limits.message_burst
        # Every command line is charged too (an IRC message is one).
        self._command_rate = config.limits.command_rate
        self._command_burst = config.limits.command_burst

    # -- the declared kinds --------------------------------------------------------

    def rate(self, kind: Kind) -> tuple[float, float]:
        """The rate (tokens per second) and burst of ``kind`` under the current configuration."""
        limits = self.config.limits
        match kind:
            case Kind.MESSAGE:
                return limits.message_rate, limits.message_burst
            case Kind.COMMAND:
                return limits.command_rate, limits.command_burst
            case Kind.TYPING:
                return limits.typing_rate, TYPING_BURST
            case Kind.LOGIN_ADDRESS | Kind.LOGIN_NAME:
                return limits.auth_failures / limits.auth_window, limits.auth_failures
            case Kind.WEBHOOK:
                return self.config.web.webhook_rate, self.config.web.webhook_burst
            case Kind.REGISTRATION:
                return limits.registrations / limits.registration_window, limits.registrations
            case Kind.ROOM_CREATION:
                return (limits.room_creations / limits.room_creation_window,
                        limits.room_creations)
            case Kind.ROOM_MESSAGE:
                raise ValueError("a room's message rate is the room's: use charge_message")
            case Kind.CRYPTO_SPAWN:
                raise ValueError("process starts are counted in a window, not a bucket")

    def charge(self, kind: Kind, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` from the bucket of ``kind`` and ``key``: 0.0 when allowed,
        else the seconds to wait (nothing is taken; ``math.inf``: never)."""
        if kind is Kind.CRYPTO_SPAWN:
            # This machine's CPU, so this process's budget, not a shared bucket:
            # at most spawn_rate starts within any second.
            return self._spawns.try_take(max(1, self.config.crypto.spawn_rate))
        if kind is Kind.COMMAND:  # the frequent one: its rate is read once per configuration
            return self._store.take(kind, key, self._command_rate, self._command_burst, cost)
        rate, burst = self.rate(kind)
        return self._store.take(kind, key, rate, burst, cost)

    def charge_shared(self, kind: Kind, key: Hashable) -> float | Awaitable[float]:
        """:meth:`charge` one token, or, when the bucket is shared by several nodes,
        an awaitable of the answer (an incoming webhook's budget)."""
        rate, burst = self.rate(kind)
        return self._store.take_shared(kind, key, rate, burst)

    def wait(self, kind: Kind, key: Hashable, cost: float = 1.0) -> float:
        """Seconds until the bucket of ``kind`` and ``key`` has ``cost``, taking nothing."""
        rate, burst = self.rate(kind)
        return self._store.wait(kind, key, rate, burst, cost)

    async def wait_for(self, kind: Kind, key: Hashable, cost: float = 1.0) -> None:
        """Wait until ``cost`` can be taken from the bucket, and take it (fakelag, spawns)."""
        wait = self.charge(kind, key, cost)
        while wait:
            # Polled, not woken: a bucket refills with time, and no event says when.
            await asyncio.sleep(min(wait, MAX_WAIT_STEP))
            wait = self.charge(kind, key, cost)

    def charge_command(self, session: Client) -> None:
        """Take a command token for ``session`` or raise ``rate-limited`` (with ``retry_ms``)."""
        wait = self.charge(Kind.COMMAND, session.id)
        if wait:
            raise rate_limited("too many commands", wait)

    def charge_typing(self, session: Client) -> float:
        """Take a typing-indicator token for ``session``; 0.0, or the seconds to wait."""
        return self.charge(Kind.TYPING, session.id)

    # -- messages ------------------------------------------------------------

    def charge_message(self, session: Client, room: Room | None) -> Awaitable[None] | None:
        """Take one message token or raise ``rate-limited`` (with ``retry_ms``).

        None when decided at once; with a shared store, an awaitable that
        raises the same way once the cluster answered (await it before asking
        for the message's id: a refused message takes none).
        """
        user = session.user
        assert user is not None
        holder = self.holder(user)
        # The bucket message_bucket names, without making a Charge: every message runs this.
        if room is None or ROOM_RATE not in room.settings:
            wait = self._store.take_shared(MESSAGE, holder, self._message_rate,
                                           self._message_burst)
        else:
            wait = self._store.take_shared(Kind.ROOM_MESSAGE, (room.id, holder),
                                           room.settings[ROOM_RATE], room.settings[ROOM_BURST])
        if isinstance(wait, float):
            if wait:
                self.refuse_message(session, user, room, wait)
            return None
        return self._message_answered(session, user, room, wait)

    def message_bucket(self, user: User, room: Room | None) -> Charge:
        """The bucket a message of ``user`` (to ``room``) is charged to: theirs, or
        theirs in a room with its own rate."""
        holder = self.holder(user)
        if room is None or ROOM_RATE not in room.settings:
            return Charge(MESSAGE, holder, self._message_rate, self._message_burst)
        return Charge(Kind.ROOM_MESSAGE, (room.id, holder), room.settings[ROOM_RATE],
                      room.settings[ROOM_BURST])

    def message_charge(self, session: Client, room: Room) -> Charge:
        """The bucket a cluster's poster charges a message of ``session`` to, in one
        call with its id and its place in the log (:class:`~chatd.domain.ports.Poster`);
        ``rate-limited`` at once when the bucket is known to be empty."""
        user = session.user
        assert user is not None
        charge = self.message_bucket(user, room)
        wait = self._store.wait(*charge)
        if wait:
            self.refuse_message(session, user, room, wait)
        return charge

    async def _message_answered(self, session: Client, user: User, room: Room | None,
                                answer: Awaitable[float]) -> None:
        wait = await answer
        if wait:
            self.refuse_message(session, user, room, wait)

    def refuse_message(self, session: Client, user: User, room: Room | None,
                       wait: float) -> NoReturn:
        """A message of ``user`` found its bucket empty (here, or after the fact in a
        poster's answer, when the session may have logged out meanwhile): counted
        towards flooding, and ``rate-limited``."""
        self._refused(session, user, room)
        raise rate_limited("too many messages", wait)

    def message_wait(self, user: User, room: Room | None) -> float:
        """Seconds until ``user`` may send a message, taking nothing; 0.0 in a
        room with its own rate, whose bucket is only known by charging it."""
        if room is not None and ROOM_RATE in room.settings:
            return 0.0
        return self._store.wait(MESSAGE, self.holder(user), self._message_rate,
                                self._message_burst)

    def refuse_spent(self, user: User, room: Room | None) -> None:
        """Raise ``rate-limited``, taking nothing, when ``user`` could not send a
        message now: for a post that comes after costly work (an upload's data and
        preview), which must not run while the post would be refused."""
        wait = self.message_wait(user, room)
        if wait > 0:
            raise rate_limited("too many messages", wait)

    def room_rate_changed(self, room: Room) -> None:
        """Forget the room's buckets so the new rate applies at once."""
        self._store.forget(Kind.ROOM_MESSAGE, room.id)

    def _refused(self, session: Client, user: User, room: Room | None) -> None:
        limits = self.config.limits
        # Counted as the messages are: a guest that connects again floods on.
        holder = self.holder(user)
        flood = self._floods.get(holder)
        if flood is None:
            flood = self._floods[holder] = FloodDetector(
                limits.flood_threshold, limits.flood_window, self._clock)
        if flood.record():
            self._on_flood(session, user, room)

    def _on_flood(self, session: Client, user: User, room: Room | None) -> None:
        limits = self.config.limits
        log.warning("flood", extra={"fields": {"session": session.id, "user": user.name,
                                               "room": room.name if room else None,
                                               "action": limits.flood_action}})
        if limits.flood_action == "mute" and room is not None:
            self._spawn(self._moderation.mute_for_flood(room, user, limits.flood_mute))
            return
        session.send(events.FloodDisconnected(user.name))
        session.close("flood")
        # An HTTP API request has no connection to close (it stays open after close):
        # it is answered 429, and its entry says that rather than a disconnection.
        action = FLOOD_DISCONNECT if session.closing else FLOOD_REFUSED
        self._spawn(self._audit.record(action, None, user.name, room, "flooding"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run an async consequence of a synchronous refusal, keeping a reference.
        Nobody awaits it: a failure (a cluster's room lock that stays busy, a
        database away) is logged here, not left as an unretrieved exception.
        The daemon's stop awaits what is left of them (:meth:`settled`)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def settled(self) -> None:
        """Until every consequence spawned so far has ended: a login charge given
        back to a cluster's shared store (lost, the name would have one failure
        fewer left for a while on every node), a flood's sanction and its audit
        entry. The stop awaits it, bounded, before it lets the stores go."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- logins ----------------------------------------------------------------

    async def admit_login(self, peer: str, name: str | None) -> None:
        """Refuse a login attempt while the address's or the account name's bucket
        of failures is empty.

        The name's token is taken first, so guesses at one account checked at
        once cannot all pass on the tokens left (:meth:`login_ended` gives it
        back unless the attempt failed). The address's is only looked at: many
        people behind one address log in at once, and only a failure costs the
        address (charged by :meth:`login_ended`). A shared store looks at what this
        process knows of it (emptied by another node, it is known empty here once
        a charge of this node's is refused).
        """
        address, *named = self._login_charges(peer, name)
        wait = self._store.wait(*address)
        if not wait and named:
            taken = self._store.take_all(named)
            wait = taken if isinstance(taken, float) else await taken
        if wait:
            # The real wait: a client (and HTTP's Retry-After) retries when a
            # failure's token is back.
            raise rate_limited("too many failed logins", wait)

    def login_ended(self, peer: str, name: str | None, *, failed: bool) -> None:
        """The attempt :meth:`admit_login` let through ended: a failure costs the
        address a token; any other outcome gives the name's back."""
        if not failed and name is None:
            return  # (a token log-in's usual end: nothing was taken, nothing to give back)
        address, *named = self._login_charges(peer, name)
        if failed:
            self._settle(self._store.take_all([address]))
        elif named:
            self._settle(self._store.give_back(named))

    def registering(self, peer: str) -> AbstractAsyncContextManager[None]:
        """Around the making of an account by ``/register`` from ``peer``: a token of
        the address's registrations (limits.registrations), or ``rate-limited``.
        Every account is held in memory for good: one address must not make them
        without end."""
        return self._making(Kind.REGISTRATION, self.address_of(peer),
                            "too many accounts made from your address")

    def creating_room(self, user: User) -> AbstractAsyncContextManager[None]:
        """Around the creation of a room by ``user``: a token of their creations
        (limits.room_creations; server admins have no limit), or ``rate-limited``.
        A room ended is kept for good (its audit, its name's history): creating
        and leaving rooms in a loop must not add rows at the pace of commands. An
        IRC guest's count is its address's (:meth:`holder`)."""
        if user.is_admin:
            return contextlib.nullcontext()
        return self._making(Kind.ROOM_CREATION, self.holder(user), "too many rooms created")

    @contextlib.asynccontextmanager
    async def _making(self, kind: Kind, key: Hashable, what: str) -> AsyncIterator[None]:
        """One token of ``kind``'s bucket for ``key``, taken before the body runs and
        given back when it raises (nothing was made); no bucket when its count is 0."""
        rate, burst = self.rate(kind)
        if not burst:
            yield
            return
        answer = self._store.take_shared(kind, key, rate, burst)
        wait = answer if isinstance(answer, float) else await answer
        if wait:
            raise rate_limited(what, wait)
        try:
            yield
        except BaseException:
            self._settle(self._store.give_back([Charge(kind, key, rate, burst)]))
            raise

    def _settle(self, answer: float | Awaitable[Any] | None) -> None:
        """A shared store's answer is awaited aside: nothing waits for it."""
        if answer is not None and not isinstance(answer, float):
            self._spawn(_awaited(answer))

    def _login_charges(self, peer: str, name: str | None) -> list[Charge]:
        rate, burst = self.rate(Kind.LOGIN_ADDRESS)
        keys = _auth_keys(self.address_of(peer), name)
        return [Charge(kind, key, rate, burst) for kind, key in keys]

    def holder(self, user: User) -> Hashable:
        """Whose buckets ``user``'s messages and room creations take from: an
        account's own (its id: every connection of the account shares them); for a
        user without an account (an IRC guest) its address's, by
        limits.ipv6_prefix as log-ins count. A guest is new at each connection:
        buckets of its own were full again each time it connected, and as many
        guests at once had as many of them."""
        if user.has_account or user.address is None:
            return user.id
        return f"guests@{address_key(user.address, self.config.limits.ipv6_prefix)}"

    def address_of(self, peer: str) -> str:
        """The key the limits of ``peer`` (written ``address:port``) count under: its
        address, or an IPv6 address's network (limits.ipv6_prefix)."""
        return address_key(peer.rpartition(":")[0], self.config.limits.ipv6_prefix)

    def sweep(self) -> None:
        """Drop buckets that have refilled and flood detectors with nothing in
        their window: they no longer hold anything."""
        self._store.sweep()
        for holder in [h for h, flood in self._floods.items() if flood.idle]:
            del self._floods[holder]


async def _awaited(work: Awaitable[Any]) -> None:
    """``work`` as a coroutine; a store that cannot answer loses nothing worth a log."""
    # A token not given back only delays the next attempt, at worst.
    with contextlib.suppress(ChatError):
        await work


def rate_limited(what: str, wait: float) -> ChatError:
    """``rate-limited`` for a bucket that has a token again in ``wait`` seconds: the
    wait as ``retry_ms``, rounded up (a client retrying then finds the token back,
    not a guess before it), and said in the unit a person waits in."""
    retry_ms = max(1, math.ceil(wait * 1000))
    said = f"{retry_ms} ms" if retry_ms < 1000 else f"{math.ceil(retry_ms / 1000)} s"
    return ChatError(Code.RATE_LIMITED, f"{what}; wait {said} and try again.",
                     retry_ms=retry_ms)


def _auth_keys(address: str, name: str | None) -> list[tuple[Kind, str]]:
    """The IP address's key, and the account name's when a name was given."""
    keys = [(Kind.LOGIN_ADDRESS, address)]
    if name is not None:
        keys.append((Kind.LOGIN_NAME, name_key(name)))
    return keys


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("a consequence of a refusal (a flood sanction, a login charge) "
                    "failed", exc_info=exc)
