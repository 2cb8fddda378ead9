"""chatd-client's logic, without a terminal: commands, messages, encryption.

:class:`ClientSession` sits on a :class:`chatd.client.ChatClient` (JSON mode)
and turns what the user types into protocol lines, and what the server sends
into :class:`~chatd.client.tui.lines.Line` values for a view to draw. In a room
marked end-to-end (``/keys room`` says so) or one the user asked to secure,
plain lines are encrypted before they leave; ``message`` records carrying an
envelope are decrypted and checked before they are shown.

Commands the client handles itself (they never reach the server as typed):
``/emsg <room|@user> <text>`` (encrypt and send), ``/trust <user>``,
``/fingerprint [user]`` and ``/secure on|off`` (always encrypt in this room);
``/upload`` is refused (its data lines are for raw clients).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chatd.client import ChatClient, ClientError, Reply
from chatd.client.logins import password_login, resume_login, resume_token_of, token_login
from chatd.client.tui import lines, told
from chatd.client.tui.keyring import Keyring
from chatd.client.tui.lines import Line, error, notice, warning
from chatd.client.tui.secure import MissingKey, Secure
from chatd.crypto import CryptError
from chatd.crypto.envelope import EnvelopeError, NotForYou, PublicKey, b64

log = logging.getLogger(__name__)

LOGINS = ("login", "register", "auth")
# Room of the ok reply becomes the current room after these commands.
ENTERS = ("join", "create", "switch")
# Our labels ("@c123 ") count against the server's line limit too.
LABEL_ROOM = 16
# Events after which a room's member no longer is one.
DEPARTURES = ("leave", "kick", "ban")
# Handing our key to a large room may meet the command rate limit: wait and retry.
PACED_TRIES = 20
PACED_WAIT_MS = 5000.0
# Room messages kept while their key has not arrived.
MAX_WAITING = 256


class ClientSession:
    """One user's conversation with a chatd server, end-to-end encryption included."""

    def __init__(self, client: ChatClient, keyring: Keyring, aead: str = "aes-256-gcm",
                 pq: bool = True, max_line: int = 4096) -> None:
        self.client = client
        self.secure = Secure(keyring, aead, pq)
        self.max_line = max_line
        self.user: str | None = None
        self.current_room: str | None = None
        # The resume token of the last login: kept in memory only, never written down.
        self.resume_token: str | None = None
        self.always_encrypt: set[str] = set()
        # Room messages that came before the chain they need, by (sender, chain id).
        self._waiting: dict[tuple[str, bytes], list[dict[str, Any]]] = {}
        # The account's colour, timestamps and theme, as the login said (and /set changed).
        self.settings: dict[str, Any] = {}
        self._rooms_at_login: list[str] = []
        self._local: dict[str, Callable[[str], Awaitable[list[Line]]]] = {
            "emsg": self._emsg, "trust": self._trust, "fingerprint": self._fingerprint,
            "secure": self._secure, "upload": self._upload}

    # -- logging in -----------------------------------------------------------------

    async def login(self, name: str, password: str | None = None, token: str | None = None,
                    register: bool = False) -> list[Line]:
        """Log in (or register) and publish this client's public key.

        A login asks for a resume token, for :meth:`relogin` (a registration
        gives none: the first reconnection then uses the password).
        """
        if token is not None:
            line = token_login(name, token)
        elif register:
            line = f"/register {name} {password}"
        else:
            line = password_login(name, str(password))
        return await self.command(line)

    async def relogin(self, name: str, password: str | None = None,
                      token: str | None = None) -> list[Line]:
        """Log in again on a new connection (:attr:`client` replaced).

        With the resume token when there is one: the server checks no password,
        which is what lets everyone come back at once after a restart. When it
        is refused (used, expired, revoked), as at the start. The current room
        stays current if we are still in it.
        """
        room = self.current_room
        # Both set again by a login that succeeds.
        self.user, self._rooms_at_login = None, []
        shown = await self._resumed()
        if shown is None:
            shown = await self.login(name, password, token)
        if room in self._rooms_at_login:
            self.current_room = room
        return shown

    @property
    def rooms_at_login(self) -> list[str]:
        """The rooms the last login said the account is in."""
        return list(self._rooms_at_login)

    async def _resumed(self) -> list[Line] | None:
        """The Lines of a login with the resume token; None without one, or refused."""
        secret, self.resume_token = self.resume_token, None  # each works once
        if secret is None:
            return None
        reply = await self.client.command(resume_login(secret), check=False)
        if not reply.ok:
            log.info("resume token refused: %s", reply.final.get("code"))
            return None
        return await self._answer(reply)

    async def publish_key(self) -> list[Line]:
        """Make sure the server holds this client's public key."""
        assert self.user is not None
        identity = self.secure.keyring.identity
        current = await self.client.command(f"/keys get {self.user}", check=False)
        mine = b64(identity.x25519_public)
        pq = identity.mlkem_public
        if current.ok and current["keys"][0]["key"] == mine and (
                current["keys"][0].get("pq_key") == (b64(pq) if pq else None)):
            return [notice(f"your key: {self.secure.fingerprint}")]
        said = []
        if current.ok:
            said.append(warning("the server held another key for you (another device?); "
                                "replacing it with this client's."))
        reply = await self.client.command(
            " ".join(["/keys publish", mine, *([b64(pq)] if pq else [])]), check=False)
        if not reply.ok:
            return [*said, error(f"could not publish your key: {reply.get('message')}")]
        return [*said, notice(f"published your key: {self.secure.fingerprint}")]

    # -- what the user types --------------------------------------------------------------

    async def input(self, text: str) -> list[Line]:
        """Handle one typed line: a message, a local command or a server command."""
        if text.startswith("//") or not text.startswith("/"):
            return await self.send_text(text[1:] if text.startswith("//") else text)
        name, _, rest = text[1:].partition(" ")
        local = self._local.get(name.lower())
        if local is not None:
            return await local(rest.strip())
        if _served(text)[:1] == ["/upload"]:  # /quote upload: refused as /upload is
            return await self._upload("")
        if _changes_format(text):
            # The client reads JSON: in another format its reading would stop, and
            # the session with it.
            return [error("this client talks to the server in JSON; the format cannot "
                          "change here.")]
        return await self.command(text)

    async def command(self, line: str) -> list[Line]:
        """Send a server command; the Lines of its reply."""
        return await self._answer(await self.client.command(line, check=False))

    async def _answer(self, reply: Reply) -> list[Line]:
        """The Lines of a reply, after noting what it changed (who we are, the room)."""
        final = reply.final
        login = reply.ok and final.get("command") in LOGINS
        kept: list[Line] = []
        if login:
            # First: the login's own lines, the direct messages kept for us, are read
            # (and decrypted) as the user it logged in, with the identity on disk.
            self._logged_in(final)
            kept = self._keep_identity()
        shown = await self._reply_lines(reply)
        if login:
            shown += kept
            if not self.secure.keyring.unsaved:
                shown += await self.publish_key()
        elif reply.ok:
            self._track(final)
        return shown

    def _keep_identity(self) -> list[Line]:
        """Write a new identity now that a login reached the account: before, a
        mistyped server or a refused password would leave a key for no account."""
        keyring = self.secure.keyring
        try:
            if keyring.keep_identity():
                return [notice(f"made your end-to-end identity in {keyring.directory}")]
        except (OSError, CryptError) as exc:
            # Not published either: the server would hold a key that dies with us.
            return [error(f"cannot keep your end-to-end identity in {keyring.directory}: "
                          f"{getattr(exc, 'strerror', None) or exc}")]
        return []

    def _logged_in(self, final: dict[str, Any]) -> None:
        self.user = final.get("user")
        rooms = final.get("rooms") or []
        self._rooms_at_login = [str(room) for room in rooms]
        self.current_room = rooms[0] if len(rooms) == 1 else None
        self.settings = dict(final.get("settings") or {})
        self.resume_token = resume_token_of(final)

    def _track(self, final: dict[str, Any]) -> None:
        command, room = final.get("command"), final.get("room")
        if command in ENTERS and room and not final.get("requested"):
            self.current_room = room
        elif command == "leave":
            if self.user is not None and room:
                self.secure.member_gone(self.user, room, self.user)
            if room == self.current_room:
                self.current_room = None
        elif command == "set":
            self.settings[str(final.get("setting"))] = final.get("value")
        elif command == "logout":
            self.user = self.current_room = None
            self.resume_token = None  # the server revoked it

    async def send_text(self, text: str, room: str | None = None) -> list[Line]:
        """A plain line: encrypted in end-to-end (or secured) rooms, plain elsewhere."""
        room = room or self.current_room
        if room is None:
            return [error("you are in no room: /join <room> or /create <room> first.")]
        keys = await self._room_keys(room)
        if keys.get("code") == "not-in-room":
            # The refusal speaks of listing keys, which is how a line starts here:
            # the person sent a message, and wants to know why it did not go.
            return [error(f"not sent: you are not in #{room} (/join {room}).")]
        if not keys.ok:
            return await self._reply_lines(keys)
        if keys.get("e2e") or keys["room"] in self.always_encrypt:
            return await self._send_sealed(f"#{keys['room']}", text, keys)
        line = f"/say {room} {text}"
        if len(line.encode()) + LABEL_ROOM > self.max_line:
            # The server would drop it as too long, and no reply would come.
            return [error(f"that line is {len(line.encode())} bytes, over the server's line "
                          f"limit ({self.max_line}); send less text.")]
        return await self.command(line)

    async def _send_sealed(self, context: str, text: str, keys: Reply) -> list[Line]:
        if self.user is None:
            return [error("log in first.")]
        recipients, said = self.secure.recipients(self.user, keys["keys"],
                                                  keys.get("missing") or [])
        if context.startswith("#"):
            return [*said, *await self._send_to_room(context[1:], text, recipients)]
        if context.startswith("@") and len(recipients) < 2 \
                and context[1:].casefold() != self.user.casefold():
            return [*said, error(f"{context[1:]} has no key you can encrypt to.")]
        sealed = self.secure.seal(self.user, context, text, recipients)
        line = f"/emsg {context} {sealed}"
        if len(line.encode()) + LABEL_ROOM > self.max_line:
            return [*said, error(f"the encrypted message is {len(line)} bytes, over the "
                                 f"server's line limit ({self.max_line}); send less text, or "
                                 "start the client with --no-pq in large rooms.")]
        return [*said, *await self.command(line)]

    async def _send_to_room(self, room: str, text: str, members: list[PublicKey]) -> list[Line]:
        """Hand our chain to the members who lack it, then send one envelope for all."""
        assert self.user is not None
        size = self.secure.room_line_size(self.user, room, text)
        if size + LABEL_ROOM > self.max_line:
            return [error(f"the encrypted message is {size} bytes, over the server's line "
                          f"limit ({self.max_line}); send less text.")]
        said, reached = [], []
        for handing in self.secure.handouts(self.user, room, members):
            name = handing.member.user
            reply = await self._paced(f"/ekey {room} {name} {handing.envelope}")
            if reply.ok:
                reached.append(handing.member)
            else:
                said.append(warning(f"{name} cannot read your messages in #{room}: your key "
                                    f"did not reach them ({reply.get('message')})."))
        self.secure.handed(room, reached)
        sealed = self.secure.seal_room(self.user, room, text)
        return [*said, *await self._reply_lines(await self._paced(f"/emsg #{room} {sealed}"))]

    async def _room_keys(self, room: str) -> Reply:
        """``/keys room``'s reply for every member of ``room``: the server lists a room
        a page of members at a time, and a message sealed for the first page alone
        would leave the others out; so a room of several pages is read whole."""
        # A lone number is a page: a room named by its id takes its page after it.
        numbered = room.isascii() and room.isdigit()
        first = await self._paced(f"/keys room {room} 1" if numbered else f"/keys room {room}")
        if not first.ok or int(first.get("pages", 1)) <= 1:
            return first
        try:
            walked = await self.client.walk(f"/keys room #{first['room']}", keys="user",
                                            missing="user")
        except ClientError as exc:
            return Reply(exc.reply)
        return Reply(first.final | walked, first.lines)

    async def _paced(self, line: str) -> Reply:
        """A command that may be refused for going too fast (handing a key to every
        member of a large room): waits as the server says, a bounded number of times."""
        for _ in range(PACED_TRIES):
            reply = await self.client.command(line, check=False)
            if reply.get("code") != "rate-limited":
                break
            await asyncio.sleep(min(float(reply.get("retry_ms") or 100), PACED_WAIT_MS) / 1000)
        return reply

    # -- local commands ----------------------------------------------------------------------

    async def _emsg(self, rest: str) -> list[Line]:
        target, _, text = rest.partition(" ")
        if not target or not text.strip():
            return [error("usage: /emsg <room|@user> <text>")]
        if not target.startswith("@"):
            keys = await self._room_keys(target)
            if not keys.ok:
                return await self._reply_lines(keys)
            return await self._send_sealed(f"#{keys['room']}", text, keys)
        keys = await self.client.command(f"/keys get {target[1:]}", check=False)
        if not keys.ok:
            return await self._reply_lines(keys)
        return await self._send_sealed(f"@{keys['user']}", text, keys)

    async def _trust(self, rest: str) -> list[Line]:
        if not rest:
            return [error("usage: /trust <user>")]
        reply = await self.client.command(f"/keys get {rest}", check=False)
        if not reply.ok:
            return await self._reply_lines(reply)
        entry = reply["keys"][0]
        self.secure.keyring.known.trust(entry)
        return [notice(f"you now trust {entry['user']}'s key {entry['fingerprint']}.")]

    async def _fingerprint(self, rest: str) -> list[Line]:
        if not rest:
            return [notice(f"your key: {self.secure.fingerprint}")]
        pinned = self.secure.keyring.known.get(rest)
        if pinned is None:
            return [notice(f"you have not seen a key for {rest} yet.")]
        return [notice(f"{pinned.user}: {pinned.fingerprint} (trusted)")]

    async def _secure(self, rest: str) -> list[Line]:
        room = self.current_room
        if room is None or rest not in ("on", "off"):
            return [error("usage (in a room): /secure on|off")]
        if rest == "on":
            self.always_encrypt.add(room)
            return [notice(f"lines you type in #{room} are now encrypted end to end.")]
        self.always_encrypt.discard(room)
        return [notice(f"lines you type in #{room} are sent as the room wants again.")]

    async def _upload(self, rest: str) -> list[Line]:
        # The protocol's upload takes the file as base64 data lines up to a lone ".":
        # typed by hand, every later line would be taken as data, and each command would
        # wait for an answer that comes only after that ".". So it never leaves.
        return [error("/upload is not sent from chatd-client: the file would have to follow "
                      "as base64 lines typed by hand. Upload from a raw connection (telnet, "
                      "a script) or the web client; files shared in a room show here.")]

    # -- what the server sends ------------------------------------------------------------------

    async def _reply_lines(self, reply: Reply) -> list[Line]:
        final = reply.final
        # A room decision's event, labelled as its command, says what its reply would.
        event = told.told_by(final, reply.lines)
        shown: list[Line] = []
        for record in reply.lines:
            shown += await self.show(told.with_reply(record, final) if record is event
                                     else record)
        if not reply.ok:
            return [*shown, error(f"{final.get('code')}: {final.get('message')}")]
        for record in final.get("messages") or []:
            shown += await self.show(record)
        if told.reply_needed(final, event, self.current_room):
            shown += lines.from_ok(final)
        return shown

    async def show(self, record: dict[str, Any]) -> list[Line]:
        """The Lines for one record the server sent (an event, a message ...)."""
        if record.get("type") != "message":
            self._watch(record)
            line = lines.from_record(record)
            return [line] if line is not None else []
        if not record.get("e2e"):
            return [lines.plain_message(record)]
        if record.get("room_key"):
            return await self._receive_key(record)
        return await self._decrypt(record)

    def _watch(self, record: dict[str, Any]) -> None:
        """A member who leaves or is removed must not read what we send next."""
        if record.get("type") == "event" and record.get("event") in DEPARTURES \
                and self.user is not None and record.get("room") and record.get("user"):
            self.secure.member_gone(self.user, str(record["room"]), str(record["user"]))

    async def _receive_key(self, record: dict[str, Any]) -> list[Line]:
        """A member's chain for a room: kept, and the messages that waited for it shown."""
        sender, room = str(record.get("from", "?")), record.get("room_key")
        if self.user is None:
            return []
        try:
            chain_id = self.secure.receive_key(self.user, record)
        except NotForYou:
            return []  # our own handout to someone else, echoed to our other connections
        except EnvelopeError as exc:
            return [warning(f"a key from {sender} for #{room} cannot be used: {exc}.", room)]
        shown: list[Line] = []
        for waiting in self._waiting.pop((sender.casefold(), chain_id), []):
            shown += await self._decrypt(waiting)
        return shown

    async def _decrypt(self, record: dict[str, Any]) -> list[Line]:
        sender, room = str(record.get("from", "?")), record.get("room")
        if self.user is None:
            return [warning(f"an encrypted message from {sender}: log in to read it.", room)]
        try:
            received = self.secure.open(self.user, record)
        except MissingKey as exc:
            return self._wait_for_key(record, exc)
        except NotForYou:
            return [_not_for_you(sender, room)]
        except EnvelopeError as exc:
            return [warning(f"an encrypted message from {sender} cannot be shown: {exc}.", room)]
        verified = await self._verified(sender, received.sender_key)
        said = []
        if received.replayed:
            said.append(warning(f"the server sent an old message from {sender} again.", room))
        if not verified:
            said.append(warning(f"the next message is NOT verified: {sender}'s key is not the "
                                "one you trust (/fingerprint, /trust).", room))
        text = received.plaintext.decode("utf-8", errors="replace")
        return [*said, Line("message", lines.clean(text), room=room, sender=sender,
                            to=record.get("to"), ts=str(record.get("ts", "")), encrypted=True,
                            verified=verified, message_id=record.get("id"),
                            bot=bool(record.get("bot")))]

    def _wait_for_key(self, record: dict[str, Any], missing: MissingKey) -> list[Line]:
        """A live message may overtake its key: keep it (a bounded number) until the
        key comes. One from history was sent before we were given the chain."""
        sender, room = missing.sender, record.get("room")
        if record.get("history") or sum(map(len, self._waiting.values())) >= MAX_WAITING:
            return [_not_for_you(sender, room)]
        self._waiting.setdefault((sender.casefold(), missing.chain_id), []).append(record)
        return [Line("notice", f"an encrypted message from {sender} was not encrypted for you, "
                     "or its key has not come yet (it is shown if it comes).", room=room)]

    async def _verified(self, sender: str, key: bytes) -> bool:
        assert self.user is not None
        try:
            trusted = self.secure.trusts(self.user, sender, key)
            if trusted is None:  # first message from them: pin what the server says
                reply = await self.client.command(f"/keys get {sender}", check=False)
                if reply.ok:
                    self.secure.keyring.known.check(reply["keys"][0])
                    trusted = self.secure.trusts(self.user, sender, key)
        except EnvelopeError:  # a pinned or published key that is not base64
            return False
        return bool(trusted)


def _not_for_you(sender: str, room: Any) -> Line:
    return Line("notice", f"an encrypted message from {sender} was not encrypted for you "
                "(sent before you joined, or before your key was known).", room=room)


def _served(text: str) -> list[str]:
    """The words of the command the server runs for ``text``: /quote looked through."""
    words = text.split()
    while len(words) > 1 and words[0].lower() == "/quote":
        words = [f"/{words[1].lstrip('/')}", *words[2:]]
    return [word.lower() for word in words]


def _changes_format(text: str) -> bool:
    """Whether ``text`` is /format or /set format (through /quote too)."""
    words = _served(text)
    return bool(words) and (words[0] == "/format" or words[:2] == ["/set", "format"])
