"""Room messages, direct messages and history.

Posting is synchronous on purpose: the message gets an id from the sequencer
(a method call, see ``chatd.domain.ports.Sequencer``), is queued for the
batched writer, formatted once per output style and appended to every member
connection's buffer, all without awaiting anything. A cluster's sequencer
answers later (a shared counter): then a post returns an awaitable that sends
the message once its id came (the rules were checked before it was asked for;
the cluster's reader checks sanctions again where the order is decided).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, overload

from chatd.domain.events import ROOM_KEY, Message, Typing, bot_marked
from chatd.domain.limits import RateRefused
from chatd.domain.permissions import refuse_muted, refuse_silenced, refuse_unvoiced
from chatd.domain.ports import settled
from chatd.errors import ChatError, Code, Remedy, Step
from storage.api import OverQuota, Unavailable
from storage.records import DirectBacklog, MessageRecord

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from chatd.config import Config
    from chatd.domain.accounts import User
    from chatd.domain.clock import Clock
    from chatd.domain.notifications import Notifier
    from chatd.domain.ports import Bus, CountedStore, Endpoint, Id, Poster, Sequencer, Tail
    from chatd.domain.protection import Protection
    from chatd.domain.room import Room
    from chatd.domain.stats import Stats
    from storage.api import Storage
    from storage.quotas import Quota
    from storage.writer import Writer

log = logging.getLogger(__name__)


class AccountGone(Exception):
    """The account being logged in is no longer in the database (deleted, on
    another node of a cluster a moment ago)."""


class Messaging:
    """Sends messages and reads them back."""

    def __init__(self, storage: Storage, writer: Writer, bus: Bus, notifier: Notifier,
                 clock: Clock, protection: Protection, stats: Stats,
                 sequencer: Sequencer) -> None:
        self._protection = protection
        self._stats = stats
        self._storage = storage
        self._writer = writer
        self._bus = bus
        self._notifier = notifier
        self._clock = clock
        self._ids = sequencer
        # Users who may have direct messages they have not seen: a login of
        # anyone else skips the flush and the query of replay_direct.
        self._unseen_by: set[int] = set()
        # On a cluster's node a direct message may have been sent through another
        # node: a login always asks storage (_unseen_by knows only this node's).
        self.shared = False
        # Acknowledged messages not stored yet, merged into history (a cluster's log).
        self.tail: Tail | None = None
        # Charges, numbers and publishes a room message in one step (a cluster's).
        self.poster: Poster | None = None
        # Stores a direct message with the count it is limited by (a cluster's).
        self.counted: CountedStore | None = None
        # A single process counts a limited direct message and sends it under this
        # lock, so that two at once cannot both take the last place.
        self._counting = asyncio.Lock()
        # The most direct messages a log-in replays, the newest (rooms.offline_replay_max):
        # set from the configuration, at start and reload.
        self.replay_max = 200

    def reconfigure(self, config: Config) -> None:
        self.replay_max = config.rooms.offline_replay_max

    async def load(self) -> None:
        self._unseen_by = set(await self._storage.recipients_of_undelivered())

    def post(self, session: Endpoint, room: Room, text: str, action: bool = False,
             label: str | None = None) -> Id:
        """Send ``text`` to every connection of every member of ``room``."""
        return self.post_kind(session, room, text, "action" if action else "text", {}, label)

    def post_kind(self, session: Endpoint, room: Room, text: str, kind: str,
                  extra: dict[str, Any], label: str | None = None) -> Id:
        """Send a message of any kind (text, action, file, sticker, e2e) to a room.

        ``extra`` holds the kind's fields (``file``, ``sticker``, ``envelope``),
        stored with the message and carried by its event. The message's id, or
        an awaitable of it when the sequencer's id comes later.
        """
        user = session.user
        assert user is not None
        self.refuse_post(room, user, kind)
        extra = _as_sent_by(user, extra)
        poster = self.poster
        if poster is not None and poster.ready():
            return self._post_in_one(poster, session, user, room, text, kind, extra, label)
        charged = self._protection.charge_message(session, room)
        if charged is not None:
            return self._to_room_charged(session, user, room, charged, text, kind, extra,
                                         label)
        number = self._ids.for_room(room.id)
        if isinstance(number, int):
            return self._to_room(session, user, room, number, text, kind, extra, label)
        return self._to_room_later(session, user, room, number, text, kind, extra, label)

    def refuse_post(self, room: Room, user: User, kind: str) -> None:
        """Raise what refuses a message of ``kind`` from ``user`` to ``room`` now:
        not a member (of a room that takes no message from outside), banned, muted,
        without voice in a moderated room, or plain text to an end-to-end room. One
        decision for every way a message comes in (a member's, a webhook's for
        its creator), so that none can say more than its sender may."""
        if user.id not in room.members:
            self._refuse_outsider(room, user)
        elif user.id in room.mutes:
            refuse_muted(room, user, self._clock.time())
        if room.modes.moderated:
            refuse_unvoiced(room, user)
        if kind != "e2e":
            refuse_plain(room)

    def _post_in_one(self, poster: Poster, session: Endpoint, user: User, room: Room,
                     text: str, kind: str, extra: dict[str, Any],
                     label: str | None) -> asyncio.Future[int]:
        """A post charged, numbered and published in one step by ``poster``: its
        record and event are made before the id exists (the readers number them).

        Its id once placed, as a future the poster's answer settles through a
        callback, not a task: a node posts thousands of messages a second, and a
        task per post (made, stepped twice, finished) was a tenth of its CPU."""
        charge = self._protection.message_charge(session, room)
        msg = MessageRecord(0, user.id, user.name, text, self._clock.time(),
                            room_id=room.id, kind=kind, extra=extra)
        skip = session if label is not None else None
        placed = poster.post(room, Message.of(msg, room=room.name), msg, charge, skip, label)
        posted: asyncio.Future[int] = placed.get_loop().create_future()
        placed.add_done_callback(partial(self._placed, posted, session, user, room))
        return posted

    def _placed(self, posted: asyncio.Future[int], session: Endpoint, user: User, room: Room,
                placed: asyncio.Future[int]) -> None:
        """``placed`` settled: its post counted, or refused (an empty bucket through
        the flood accounting, as on one node). Whatever goes wrong here settles the
        post too: a post never settled would hold its connection's next command
        (and a stop) for good."""
        try:
            self._settle_post(posted, session, user, room, placed)
        except BaseException as exc:
            if posted.done():
                raise
            posted.set_exception(exc)

    def _settle_post(self, posted: asyncio.Future[int], session: Endpoint, user: User,
                     room: Room, placed: asyncio.Future[int]) -> None:
        if placed.cancelled():
            posted.cancel()
            return
        failure = placed.exception()
        if failure is None:
            stats = self._stats
            stats.messages += 1
            stats.deliveries += len(self._bus.in_room(room))
            if not posted.done():
                posted.set_result(placed.result())
            return
        if posted.done():
            return  # its asker gave up (a command cancelled with its connection)
        if isinstance(failure, RateRefused):
            try:
                self._protection.refuse_message(session, user, room, failure.wait)
            except ChatError as refusal:
                failure = refusal
        posted.set_exception(failure)

    async def _to_room_charged(self, session: Endpoint, user: User, room: Room,
                               charged: Awaitable[None], text: str, kind: str,
                               extra: dict[str, Any], label: str | None) -> int:
        """A post charged to a bucket the cluster shares: its id is asked for
        once the charge is answered, so a refused message leaves no gap in the order."""
        await charged
        number = self._ids.for_room(room.id)
        if isinstance(number, int):
            return self._to_room(session, user, room, number, text, kind, extra, label)
        return await self._to_room_later(session, user, room, number, text, kind, extra,
                                         label)

    async def _to_room_later(self, session: Endpoint, user: User, room: Room,
                             number: Awaitable[int], text: str, kind: str,
                             extra: dict[str, Any], label: str | None) -> int:
        """A post on a shared log: sent once numbered, acknowledged once the log's
        order placed it. Its entry carries it to be stored (the writer hands it to
        the log), and a sanction ordered before it drops it, on every node and
        from history alike."""
        msg = MessageRecord(await number, user.id, user.name, text,
                            self._clock.time(), room_id=room.id, kind=kind, extra=extra)
        self._writer.submit(msg)
        self._send_to_room(session, room, msg, label)
        placing = self._bus.placed(msg.id)
        if placing is not None:
            await placing
        return msg.id

    def _to_room(self, session: Endpoint, user: User, room: Room, number: int, text: str,
                 kind: str, extra: dict[str, Any], label: str | None) -> int:
        msg = MessageRecord(number, user.id, user.name, text,
                            self._clock.time(), room_id=room.id, kind=kind, extra=extra)
        self._writer.submit(msg)
        return self._send_to_room(session, room, msg, label)

    def _send_to_room(self, session: Endpoint, room: Room, msg: MessageRecord,
                      label: str | None) -> int:
        event = Message.of(msg, room=room.name)
        if label is None:
            delivered = self._bus.to_room(room, event)
        else:
            # The sender's own copy carries the label: it is their acknowledgement.
            delivered = self._bus.to_room(room, event, skip=session, label=label)
        stats = self._stats
        stats.messages += 1
        stats.deliveries += delivered
        return msg.id

    async def post_bot(self, room: Room, creator: User, name: str, text: str,
                       extra: dict[str, Any]) -> int:
        """Post ``text`` to ``room`` as a bot named ``name`` (an incoming webhook),
        stored under ``creator`` (who made the bot), who must be able to post there
        now as a member would (:meth:`refuse_post`). The caller has checked the rest
        of the bot's right to post and charged its own rate limit.

        On a shared log it is answered once the log's order placed it, as a
        member's post is: a sanction of ``creator`` ordered before it (decided on
        another node meanwhile) drops it everywhere, and refuses it here."""
        self.refuse_post(room, creator, "bot")
        number = await settled(self._ids.for_room(room.id))
        msg = MessageRecord(number, creator.id, name, text,
                            self._clock.time(), room_id=room.id, kind="bot", extra=extra)
        self._writer.submit(msg)
        self._stats.messages += 1
        self._stats.deliveries += self._bus.to_room(room, Message.of(msg, room=room.name))
        placing = self._bus.placed(msg.id)
        if placing is not None:
            await placing
        return msg.id

    def typing(self, endpoint: Endpoint, room: Room) -> None:
        """Tell ``room``'s other members that ``endpoint``'s user is typing (never
        stored). The caller has checked membership, :meth:`refuse_silenced` and the
        typing limit: the line protocol refuses in words, IRC drops silently."""
        assert endpoint.user is not None
        self._bus.to_room(room, Typing(room.name, endpoint.user.name), skip=endpoint)

    def refuse_spent(self, room: Room, user: User) -> None:
        """``rate-limited`` now, taking nothing, if ``user`` could not post in ``room``
        (Protection.refuse_spent): asked before an upload's costly part."""
        self._protection.refuse_spent(user, room)

    def refuse_silenced(self, room: Room, user: User) -> None:
        """Raise ``muted`` or ``moderated`` when ``user`` may not speak in ``room``
        now (:func:`chatd.domain.permissions.refuse_silenced`): a muted member must
        not be seen typing to a room that never gets the text."""
        refuse_silenced(room, user, self._clock.time())

    def _refuse_outsider(self, room: Room, user: User) -> None:
        """A message from outside the room: refused unless the room takes external
        messages (IRC's ``-n``) and does not ban the sender."""
        if room.modes.no_external:
            raise ChatError(Code.NOT_IN_ROOM, f"you are not in #{room.name}.",
                            remedy=room.way_in())
        ban = room.banned(user.id, self._clock.time())
        if ban is not None:
            raise ChatError(Code.BANNED, f"you are banned from #{room.name}.", until=ban.until)

    async def direct(self, session: Endpoint, target: User, text: str,
                     label: str | None = None, kind: str = "text",
                     extra: dict[str, Any] | None = None) -> int:
        """Send ``text`` (or an end-to-end envelope, in ``extra``) to every connection
        of ``target`` and of the sender; an offline target finds it at next login.
        Refused with ``blocked`` when ``target`` blocks the sender."""
        sent = self.send_direct(session, target, text, label, kind, extra)
        return sent if isinstance(sent, int) else await sent

    def send_direct(self, session: Endpoint, target: User, text: str,
                    label: str | None = None, kind: str = "text",
                    extra: dict[str, Any] | None = None) -> int | Awaitable[int]:
        """:meth:`direct` without a coroutine when nothing has to wait (in one process,
        to a user online: the usual case): the message's id, else an awaitable of it.
        IRC's PRIVMSG to a nick sends this way (a coroutine and a task each were most
        of a direct message's cost)."""
        user = session.user
        assert user is not None
        _refuse_blocked(user, target)
        extra = _as_sent_by(user, extra)
        if kind != ROOM_KEY:
            # A sender key is handed to each member once per chain: the command
            # bucket bounds it, the message bucket is for what people read.
            charged = self._protection.charge_message(session, None)
            if charged is not None:
                return self._direct_charged(charged, session, user, target, text, label, kind,
                                            extra)
        number = self._ids.for_direct(target.id)
        if not isinstance(number, int):
            return self._direct_numbered(number, session, user, target, text, label, kind,
                                         extra)
        return self._direct_sent(number, session, user, target, text, label, kind, extra)

    # The sender is the one who sent it: its connection may log out or close while
    # the charge or the id is awaited, and the numbered message must still go out
    # (on a shared log, every node waits for an id that was taken).

    async def _direct_charged(self, charged: Awaitable[None], session: Endpoint, user: User,
                              target: User, text: str, label: str | None, kind: str,
                              extra: dict[str, Any] | None) -> int:
        await charged
        number = await settled(self._ids.for_direct(target.id))
        return await settled(self._direct_sent(number, session, user, target, text, label,
                                               kind, extra))

    async def _direct_numbered(self, number: Id, session: Endpoint, user: User, target: User,
                               text: str, label: str | None, kind: str,
                               extra: dict[str, Any] | None) -> int:
        return await settled(self._direct_sent(await settled(number), session, user, target,
                                               text, label, kind, extra))

    def _direct_sent(self, number: int, session: Endpoint, user: User, target: User,
                     text: str, label: str | None, kind: str,
                     extra: dict[str, Any] | None) -> int | Awaitable[int]:
        """Store and deliver the direct message numbered ``number``; its id, or an
        awaitable of it when the sender's echo or the offline target's notice waits."""
        msg = MessageRecord(number, user.id, user.name, text,
                            self._clock.time(), recipient_id=target.id, kind=kind,
                            extra=extra or {}, delivered=target.online)
        return self._record_sent(msg, session, user, target, label)

    def _record_sent(self, msg: MessageRecord, session: Endpoint, user: User, target: User,
                     label: str | None) -> int | Awaitable[int]:
        online = msg.delivered
        self._writer.submit(msg)
        event = Message.of(msg, to=target.name)
        # The sender's connection is sent its own copy (its acknowledgement when
        # labelled) by the bus, in its place among the connection's messages.
        self._bus.to_users((target,) if target is user else (target, user), event, skip=session,
                           echo=True, label=label)
        placing = self._bus.placed(msg.id)
        if placing is not None:
            return self._direct_placed(placing, target, msg)
        if online:
            return msg.id
        # At once, not when the notice is sent: a log-in meanwhile must replay it.
        self._unseen_by.add(target.id)
        if msg.kind == ROOM_KEY:
            return msg.id  # kept for their next login; nothing for them to read
        return self._notify_offline(target, msg)

    async def _direct_placed(self, placing: Awaitable[None], target: User,
                             msg: MessageRecord) -> int:
        await placing  # a shared log: acknowledged once it holds the message
        if msg.delivered:
            return msg.id
        self._unseen_by.add(target.id)
        if msg.kind == ROOM_KEY:
            return msg.id
        return await self._notify_offline(target, msg)

    async def _notify_offline(self, target: User, msg: MessageRecord) -> int:
        """The target was offline: a notification tells it of the message it will read
        at its next login."""
        what = "an end-to-end encrypted message" if msg.kind == "e2e" else "a direct message"
        await self._notifier.notify(target, "direct-message",
                                    f"{msg.sender_name} sent you {what}.",
                                    sender=msg.sender_name, message_id=msg.id)
        return msg.id

    async def kept_direct(self, session: Endpoint, target: User, quota: Quota,
                          label: str | None, kind: str, extra: dict[str, Any]) -> int:
        """Send a direct message (no text: ``extra`` carries it) to ``target``, who is
        offline, while what ``quota`` counts leaves room for it; ``OverQuota`` when
        it does not. The count and the message are one decision: a cluster stores
        the message in the transaction that counts (``counted``), under a lock every
        node's counts of that holder wait for; a single process counts what its
        writer wrote, under its own lock, and sends before it lets the next count."""
        if self.counted is not None:
            return await self._kept_counted(session, target, quota, label, kind, extra)
        async with self._counting:
            await self._writer.flush()
            held = await self._storage.held(quota)
            if quota.passed_by(held):
                raise OverQuota(quota, held)
            return await self.direct(session, target, "", label, kind, extra)

    async def _kept_counted(self, session: Endpoint, target: User, quota: Quota,
                            label: str | None, kind: str, extra: dict[str, Any]) -> int:
        user = session.user
        assert user is not None and self.counted is not None
        _refuse_blocked(user, target)
        extra = _as_sent_by(user, extra)

        async def numbered() -> MessageRecord:
            number = await settled(self._ids.for_direct(target.id))
            return MessageRecord(number, user.id, user.name, "", self._clock.time(),
                                 recipient_id=target.id, kind=kind, extra=extra,
                                 delivered=False)

        msg = await self.counted([quota], numbered)
        return await settled(self._record_sent(msg, session, user, target, label))

    async def replay_direct(self, session: Endpoint, user: User,
                            label: str | None = None) -> tuple[int, int, int]:
        """Show a user who logs in the direct messages sent while they were away, as
        lines of the login's reply (labelled ``label``, as every line a command causes):
        the newest ``replay_max`` of them, all marked delivered. How many were shown,
        how many older ones were not (they are in the history, and /resume's), and
        the id /resume replays them after (0 when none were left out):
        others could send a user who stays away any number of them, and a log-in
        read them all into memory and sent them in one reply.

        Raises :class:`AccountGone` when the database no longer holds the account
        (asked in the same statement): on a cluster's node, which asks at every
        log-in, a deletion another node committed is seen here before its
        announcement arrives."""
        if user.id not in self._unseen_by and not self.shared:
            return 0, 0, 0
        await self._writer.flush()
        try:
            backlog = await self._storage.direct_backlog(user.id, self.replay_max)
        except Unavailable:
            if not self.shared:
                raise
            # A cluster's node while the database is away: they wait for a later log-in.
            log.warning("direct messages not replayed at a log-in: the database does not "
                        "answer")
            return 0, 0, 0
        if backlog is None:
            if user.has_account:
                raise AccountGone(user.name)
            backlog = DirectBacklog([])  # (an IRC guest: never an account, no stored backlog)
        if session.user is not user:
            return 0, 0, 0  # the connection went away meanwhile: keep them for next time
        pending = backlog.messages
        for msg in pending:
            session.send(Message.of(msg, to=user.name, offline=True), label)
        # Before the await: a message sent once this connection is gone again
        # adds the user back.
        self._unseen_by.discard(user.id)
        if not pending:
            return 0, 0, 0
        await self._storage.mark_direct_delivered(user.id, pending[-1].id)
        # The older ones as this connection's read counted them, not as many as its
        # marking found undelivered still: another connection of the user logging
        # in at once may have marked them first, and this one was shown the same
        # newest ones, so it is told of the same older ones. Where /resume starts
        # to replay them: the id before the oldest.
        skipped = backlog.left_out
        after = backlog.oldest - 1 if skipped and backlog.oldest is not None else 0
        return len(pending), skipped, after

    async def history(self, room: Room, limit: int,
                      before_id: int | None = None) -> list[Message]:
        await self._writer.flush()
        stored = await self._stored(self._storage.room_history(room.id, limit, before_id),
                                    before_id)
        if self.tail is not None:
            stored = _merged(stored, await self.tail.room(room.id, before_id), limit)
        return [Message.of(m, room=room.name, history=True) for m in stored]

    async def conversation(self, user: User, other: User, limit: int,
                           before_id: int | None = None) -> list[Message]:
        """The last ``limit`` direct messages between ``user`` and ``other`` (below
        ``before_id``), either way, oldest first. Sender keys (``e2e-key``) are left
        out: there is nothing in them to read."""
        await self._writer.flush()
        stored = await self._stored(self._storage.direct_history(
            user.id, other.id, limit, before_id, hidden_kind=ROOM_KEY), before_id)
        if self.tail is not None:
            unstored = await self.tail.direct(user.id, other.id, before_id)
            stored = _merged(stored, [m for m in unstored if m.kind != ROOM_KEY], limit)
        return [Message.of(m, to=user.name if m.recipient_id == user.id else other.name,
                           history=True) for m in stored]

    async def _stored(self, reading: Awaitable[list[MessageRecord]],
                      before_id: int | None) -> list[MessageRecord]:
        """What storage holds; on a cluster's node while the database does not
        answer, nothing: the newest page then shows what the log's tail holds (the
        messages the persisters could not store yet). An older page stays refused
        (busy): an empty one would read as the start of history."""
        try:
            return await reading
        except Unavailable:
            if self.tail is None or before_id is not None:
                raise
            log.warning("history from the log alone: the database does not answer")
            return []

    async def partners(self, user: User) -> list[tuple[int, float]]:
        """The ids of those ``user`` exchanged direct messages with, and the time of
        the newest message with each, newest first."""
        await self._writer.flush()
        return await self._storage.direct_partners(user.id, hidden_kind=ROOM_KEY)


def _merged(stored: list[MessageRecord], unstored: list[MessageRecord],
            limit: int) -> list[MessageRecord]:
    """The last ``limit`` of two lists of messages by id, each message once (one
    may be stored meanwhile), oldest first."""
    if not unstored:
        return stored
    by_id = {m.id: m for m in stored}
    by_id.update((m.id, m) for m in unstored)
    return [by_id[i] for i in sorted(by_id)[-limit:]] if limit > 0 else []


def refuse_plain(room: Room) -> None:
    """Raise ``e2e-required`` if ``room`` takes end-to-end envelopes only."""
    if room.settings.get("e2e"):
        raise ChatError(Code.E2E_REQUIRED, f"#{room.name} is end-to-end encrypted: send "
                        "from a client that encrypts (chatd-client).",
                        remedy=Remedy(Step.ENCRYPT, room.name))


@overload
def _as_sent_by(user: User, extra: dict[str, Any]) -> dict[str, Any]: ...


@overload
def _as_sent_by(user: User, extra: dict[str, Any] | None) -> dict[str, Any] | None: ...


def _as_sent_by(user: User, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """A message's ``extra`` as ``user`` sends it: a bot's marked, so that its
    readers (other bots) can tell not to answer. The one decision of the mark for
    every way a message is sent (to a room, directly, kept counted for an offline
    member on a cluster's node), so that no path forgets it."""
    return bot_marked(extra) if user.is_bot else extra


def _refuse_blocked(user: User, target: User) -> None:
    """Refuse a direct message to ``target``, who blocks ``user``: before anything is
    stored, counted or shown, so the target never sees it."""
    if user.id in target.blocked:
        raise ChatError(Code.BLOCKED, f"{target.name} does not accept direct messages "
                        "from you.")
