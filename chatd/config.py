"""Configuration: typed sections with defaults, loaded from YAML and validated.

The defaults here are the embedded configuration: chatd runs without any
file. ``conf/chatd.yaml`` documents every key with the same defaults (a test
keeps the two in step). A bad key or value raises :class:`ConfigError`
naming it, so start-up (or a reload) stops with a clear message.

A relative path in a configuration file is taken relative to that file's
directory, so the file means the same from any working directory; paths given
as overrides (command-line flags) stay relative to the working directory.
``RELOAD_POLICY`` says, for every key, whether a reload applies it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import socket
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NewType, Protocol, get_args, get_origin

import yaml

from chatd.domain.names import parse_duration

# A duration field accepts seconds as a number or a string like "30s", "7d".
Seconds = NewType("Seconds", float)
_T = typing.TypeVar("_T")


class ConfigError(ValueError):
    """The configuration names an unknown key or holds a bad value."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    name: str = "chatd"
    motd: str = ""


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 7777
    max_line: int = 4096
    # Seconds output may wait for more before it is written, while messages
    # fan out steadily to the same connections (0: never; it goes at the end
    # of the event loop's turn): the messages of that moment then share one
    # write per connection (chatd.net.connection.FlushScheduler and
    # docs/PERFORMANCE.md, "Writes a moment late").
    # None: DEFAULT_FLUSH_DELAY on a single node, 0 on a cluster node (see
    # effective_flush_delay).
    flush_delay: float | None = None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 7778
    cert: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class ControlConfig:
    enabled: bool = True
    # Unix socket for chatctl; empty: the database path plus ".sock" (chatd.db.sock).
    path: str = ""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: str = "chatd.db"
    flush_interval: Seconds = Seconds(0.1)
    max_batch: int = 10000
    # Messages acknowledged and not written yet, at most: past it posts are refused
    # with busy (a database that cannot keep up, a full disk).
    max_pending: int = 1_000_000


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    registration: Literal["open", "admin"] = "open"
    bcrypt_cost: int = 12
    # Connections without an account may take a free nick and use open rooms
    # (only on the IRC listener in this version); nothing of a guest persists
    # except their messages and audit entries.
    guests: bool = False
    # How long a resume token (a login again without bcrypt) stays valid.
    resume_ttl: Seconds = Seconds(30 * 86400)
    # The most users one account may block (/block).
    max_blocks: int = 1000
    # The most session tokens (the web client's, one per tab logged in) one account
    # keeps; not counted among its 100 API tokens. One more revokes the least
    # recently used. At least 2: a tab renewing its own token keeps it meanwhile.
    max_session_tokens: int = 20


@dataclass(frozen=True, slots=True)
class RoomsConfig:
    page_size: int = 20
    history_default: int = 20
    history_max: int = 200
    # The most messages one /resume replays; past it, it says "more" and the
    # client asks again from the last id replayed.
    resume_max: int = 10_000
    # The most direct messages sent while a user was away that a log-in replays
    # (the newest); older ones are marked delivered, left to /resume (IRC: CHATHISTORY).
    offline_replay_max: int = 200
    invitation_ttl: Seconds = Seconds(7 * 86400)
    # Who may create rooms: "accounts" only, or "everyone", IRC guests included
    # (a guest then owns the rooms it creates for as long as they live).
    creation: Literal["accounts", "everyone"] = "accounts"
    # The most rooms one user may own when creating another (server admins: any).
    max_owned: int = 100


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    message_rate: float = 5.0
    message_burst: float = 10.0
    command_rate: float = 20.0
    command_burst: float = 40.0
    # Bounds within which a room's owner may set the room's own message rate.
    room_message_rate_max: float = 20.0
    room_message_burst_max: float = 40.0
    # Sustained flooding: this many refused messages within flood_window...
    flood_threshold: int = 20
    flood_window: Seconds = Seconds(10)
    # ...mutes the sender in that room for flood_mute, or disconnects them.
    flood_action: Literal["mute", "disconnect"] = "mute"
    flood_mute: Seconds = Seconds(60)
    # Failed logins allowed per IP address and per account name, per auth_window.
    auth_failures: int = 5
    auth_window: Seconds = Seconds(60)
    # Accounts /register may make from one IP address per registration_window
    # (0: no limit): every account is held in memory.
    registrations: int = 10
    registration_window: Seconds = Seconds(3600)
    # Rooms one user may create per room_creation_window (0: no limit; server
    # admins: any): an ended room's row is kept for good.
    room_creations: int = 10
    room_creation_window: Seconds = Seconds(3600)
    # Typing indicators per second per connection (they are never stored).
    typing_rate: float = 1.0
    output_buffer: int = 1024 * 1024
    input_queue: int = 200
    login_timeout: Seconds = Seconds(60)
    # A logged-in connection that sends nothing for this long is closed (0: never).
    idle_timeout: Seconds = Seconds(0)
    # TCP keepalive probes detect peers that vanished without closing.
    keepalive: bool = True
    max_connections: int = 10000
    max_connections_per_ip: int = 20
    # The bits of an IPv6 address that name one client for the limits per address
    # (connections, failed logins, registrations): its /64 network by default.
    ipv6_prefix: int = 64
    # The most notifications a user keeps: a new one past it deletes the oldest.
    max_notifications: int = 1000


@dataclass(frozen=True, slots=True)
class HousekeepingConfig:
    interval: Seconds = Seconds(3600)
    notification_retention: Seconds = Seconds(30 * 86400)
    association_retention: Seconds = Seconds(30 * 86400)
    # Messages of terminated rooms are deleted this long after termination.
    history_retention: Seconds = Seconds(90 * 86400)
    # Audit entries are deleted this long after they were made (0: kept for good).
    audit_retention: Seconds = Seconds(0)
    # Blobs no file uses (left by a failure between an upload's put and its row) are
    # deleted once older than this; a pass looks at orphan_batch blobs (0: none).
    orphan_grace: Seconds = Seconds(3600)
    orphan_batch: int = 1000


@dataclass(frozen=True, slots=True)
class BackupConfig:
    # Seconds between automatic backups; 0 turns them off.
    interval: Seconds = Seconds(0)
    # Where they go; empty: a "backups" directory beside the database.
    dir: str = ""
    keep: int = 7


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9777


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["kv", "json"] = "kv"


@dataclass(frozen=True, slots=True)
class FilesConfig:
    # Where uploaded files live: "local" (a directory) or "s3" (an object store).
    backend: Literal["local", "s3"] = "local"
    # The local blob directory (also where uploads are staged); empty: "files"
    # beside the database.
    dir: str = ""
    # Largest file in bytes, and the total bytes one user may have uploaded.
    max_size: int = 10 * 1024 * 1024
    quota: int = 100 * 1024 * 1024
    # The most files one user may have uploaded (as a quota of bytes does not
    # count empty ones).
    max_files: int = 10_000
    # Previews: ASCII-art width in columns, and the caps of the preview process.
    preview_width: int = 60
    preview_timeout: Seconds = Seconds(10)
    preview_max_pixels: int = 50_000_000
    preview_memory: int = 512 * 1024 * 1024
    # The S3-compatible object store (backend: s3).
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = ""
    s3_prefix: str = "chatd/"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_url_ttl: Seconds = Seconds(7 * 86400)


@dataclass(frozen=True, slots=True)
class StickersConfig:
    # A directory of extra <name>.txt stickers (read at start and on reload).
    dir: str = ""
    # Whether the stickers shipped with chatd are offered too.
    builtin: bool = True


@dataclass(frozen=True, slots=True)
class CryptoConfig:
    # /encrypt and /decrypt: the most bytes of input (text, or armored data).
    max_input: int = 16384
    # chatd-crypt subprocesses running at once; further requests wait their turn...
    max_concurrent: int = 2
    # ...unless this many are already waiting: then they get rate-limited.
    max_waiting: int = 32
    # Subprocess starts per second, server-wide: a burst waits its turn.
    spawn_rate: int = 10
    # A chatd-crypt subprocess still running after this long is killed.
    timeout: Seconds = Seconds(30)
    # The largest end-to-end envelope /emsg relays, in bytes once decoded.
    max_envelope: int = 65536
    # The most sender keys (/ekey) one member may leave waiting for another who is
    # offline; one more is quota-exceeded until that member logs in.
    max_pending_keys: int = 100


@dataclass(frozen=True, slots=True)
class IrcConfig:
    # A second listener speaking IRC (RFC 1459/2812 with IRCv3 capabilities)
    # over the same accounts, rooms and rules.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 6667
    # A TLS listener for IRC (usually 6697) with the tls: certificate; None: none.
    tls_port: int | None = None
    # The server name IRC clients see as the source of server replies.
    server_name: str = "chatd.local"


@dataclass(frozen=True, slots=True)
class WebConfig:
    # One HTTP listener: the browser client, /ws (the line protocol over
    # WebSocket), /irc (IRC over WebSocket), the HTTP API and webhooks.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 7780
    # Origins ("https://chat.example.org") whose pages may use /ws, /irc and the
    # API besides the server's own; empty: the page's own origin only.
    allowed_origins: tuple[str, ...] = ()
    # Addresses of reverse proxies whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()
    # The largest request body (JSON, webhooks); uploads may reach files.max_size.
    max_body: int = 65536
    # A request's head and body must arrive within this; an idle keep-alive
    # connection is closed after it too.
    request_timeout: Seconds = Seconds(10)
    # WebSocket pings keep proxies from closing quiet connections (0: none).
    ping_interval: Seconds = Seconds(20)
    # How long a signed download link (/api/v1/files/{id}/link) stays valid.
    download_ttl: Seconds = Seconds(300)
    # Posts per second (and burst) through one incoming webhook.
    webhook_rate: float = 1.0
    webhook_burst: float = 5.0
    # The most incoming webhooks one room may have.
    max_webhooks: int = 20


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    # Off: the embedded daemon, its state in SQLite (storage.path). On: the
    # state lives in the PostgreSQL database of ``postgres``, which the node
    # creates and migrates itself (see docs/CLUSTER.md).
    enabled: bool = False
    # This node's name, unique among the nodes of one cluster.
    node_id: str = ""
    # redis://host:port/db: what the nodes share (the log of every room, ids,
    # presence, rate limits). Empty: this node stays alone on its database.
    redis: str = ""
    # postgresql://user[:password]@host[:port]/database
    postgres: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    housekeeping: HousekeepingConfig = field(default_factory=HousekeepingConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    stickers: StickersConfig = field(default_factory=StickersConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    irc: IrcConfig = field(default_factory=IrcConfig)
    web: WebConfig = field(default_factory=WebConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


# The configuration sections every node of a cluster must share: who may
# register and how (accounts), what rooms allow (rooms), the rate and size
# limits (limits), where files live and their quotas (files), what
# housekeeping keeps (housekeeping). Two nodes that differ here treat the same
# client differently depending on where it connected. The one list both the
# hash below and every sentence naming the sections read.
SHARED_SECTIONS: Final = ("accounts", "files", "housekeeping", "limits", "rooms")


def shared_config_hash(config: Config) -> str:
    """A short hash of the shared sections: equal on nodes that agree."""
    shared = {name: dataclasses.asdict(getattr(config, name)) for name in SHARED_SECTIONS}
    text = json.dumps(shared, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# What a reload (SIGHUP, chatctl reload) does with each key. "applied": the new
# value takes effect at once (where a value is read per connection, for new
# connections). "restart": the value was bound at start-up (a listening socket,
# the database, the blob store, a pool size), so a reload keeps the running
# value and warns that the new one waits for a restart.
ReloadPolicy = Literal["applied", "restart"]


class Reconfigurable(Protocol):
    """A part of the running daemon that a reload reaches.

    Each registers at wiring time with the keys it reads (see
    :class:`chatd.app.reloads.Reloads`); a test checks that every "applied"
    key is read by one, so a key nobody applies fails a test instead of
    being silently ignored.
    """

    def reconfigure(self, config: Config) -> None: ...


def _each(section: str, policy: ReloadPolicy, *keys: str) -> dict[str, ReloadPolicy]:
    return {f"{section}.{key}": policy for key in keys}


RELOAD_POLICY: Final[dict[str, ReloadPolicy]] = {
    **_each("server", "applied", "name", "motd"),
    **_each("listen", "restart", "host", "port"),
    **_each("listen", "applied", "max_line", "flush_delay"),
    **_each("tls", "restart", "enabled", "host", "port"),
    # A renewed certificate serves new handshakes (Listeners.reconfigure).
    **_each("tls", "applied", "cert", "key"),
    **_each("storage", "restart", "path", "flush_interval", "max_batch", "max_pending"),
    **_each("control", "restart", "enabled", "path"),
    **_each("accounts", "applied", "registration", "bcrypt_cost", "guests", "resume_ttl",
            "max_blocks", "max_session_tokens"),
    **_each("rooms", "applied", "page_size", "history_default", "history_max", "resume_max",
            "invitation_ttl", "creation", "max_owned", "offline_replay_max"),
    **_each("limits", "applied", "message_rate", "message_burst", "command_rate",
            "command_burst", "room_message_rate_max", "room_message_burst_max",
            "flood_threshold", "flood_window", "flood_action", "flood_mute",
            "auth_failures", "auth_window", "registrations", "registration_window",
            "room_creations", "room_creation_window",
            "typing_rate", "output_buffer", "input_queue",
            "login_timeout", "idle_timeout", "keepalive", "max_connections",
            "max_connections_per_ip", "ipv6_prefix", "max_notifications"),
    **_each("housekeeping", "applied", "interval", "notification_retention",
            "association_retention", "history_retention", "audit_retention",
            "orphan_grace", "orphan_batch"),
    **_each("backup", "applied", "interval", "dir", "keep"),
    **_each("metrics", "restart", "enabled", "host", "port"),
    **_each("logging", "applied", "level", "format"),
    **_each("files", "restart", "backend", "dir", "s3_endpoint", "s3_bucket", "s3_region",
            "s3_prefix", "s3_access_key", "s3_secret_key", "s3_url_ttl"),
    **_each("files", "applied", "max_size", "quota", "max_files", "preview_width",
            "preview_timeout", "preview_max_pixels", "preview_memory"),
    **_each("stickers", "applied", "dir", "builtin"),
    **_each("crypto", "restart", "max_concurrent"),
    **_each("crypto", "applied", "max_input", "max_waiting", "spawn_rate", "timeout",
            "max_envelope", "max_pending_keys"),
    **_each("irc", "restart", "enabled", "host", "port", "tls_port"),
    **_each("irc", "applied", "server_name"),
    **_each("web", "restart", "enabled", "host", "port"),
    **_each("web", "applied", "allowed_origins", "trusted_proxies", "max_body",
            "request_timeout", "ping_interval", "download_ttl", "webhook_rate",
            "webhook_burst", "max_webhooks"),
    # Which database and which cluster a node belongs to is decided at start.
    **_each("cluster", "restart", "enabled", "node_id", "redis", "postgres"),
}

# Keys naming a file or directory: relative ones in a configuration file are
# resolved against the file's directory. Empty means "beside the database".
PATH_KEYS: Final = ("storage.path", "control.path", "backup.dir", "files.dir", "tls.cert",
                    "tls.key", "stickers.dir")
# TCP port keys: 0 (any free port) to 65535; a larger number would wrap silently.
PORT_KEYS: Final = ("listen.port", "tls.port", "metrics.port", "irc.port", "irc.tls_port",
                    "web.port")
# Every other number must not be negative; these must be at least 1 (0 would
# refuse every connection, queue without bound, or never make progress; or,
# for the counts one user may hold, refuse every block or upload, where 0 of
# the rate limits beside them means no limit at all).
AT_LEAST_ONE: Final = ("limits.max_connections", "limits.max_connections_per_ip",
                       "limits.input_queue", "storage.max_batch", "storage.max_pending",
                       "rooms.page_size", "rooms.max_owned", "rooms.offline_replay_max",
                       "limits.max_notifications", "accounts.max_blocks", "files.max_files",
                       "crypto.spawn_rate", "crypto.max_pending_keys", "web.max_body")
# Durations that must be more than 0 (0 would run housekeeping without a pause,
# drop every connection before it could log in, time out every HTTP request,
# kill every preview and every encryption as it starts, write messages in a
# loop without a pause, or divide the login allowance by nothing: every login
# an internal error).
ABOVE_ZERO: Final = ("housekeeping.interval", "limits.login_timeout", "web.request_timeout",
                     "files.preview_timeout", "crypto.timeout", "storage.flush_interval",
                     "limits.auth_window", "limits.registration_window",
                     "limits.room_creation_window")
_NODE_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
# SQLite's in-memory database: not a file, so never resolved against a directory.
_MEMORY: Final = ":memory:"


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (None: embedded defaults) and apply dotted ``overrides``.

    ``overrides`` maps ``"listen.port"``-style keys to values (command-line flags).
    Relative paths from the file are resolved against its directory; those in
    ``overrides`` are left as given (relative to the working directory).
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = _read(Path(path))
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section}: must be a mapping")
        data[section][key] = value
    config = _build(Config, data, "")
    _check_numbers(config)
    _check_ranges(config)
    _check_together(config)
    return config


def where_control(path: str) -> dict[str, Any]:
    """``storage.path`` and ``control.path`` of the file ``path`` alone (dotted, its
    relative paths resolved), whatever else the file holds: chatctl reaches a
    daemon by them even when another key was edited into a value a reload will
    refuse. ConfigError only when the file itself cannot be read."""
    # Leniently: a key given twice (which a reload refuses) must not lock chatctl out.
    data = _read(Path(path), loader=yaml.SafeLoader)
    found: dict[str, Any] = {}
    for dotted in ("storage.path", "control.path"):
        section, _, key = dotted.partition(".")
        values = data.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str):
            found[dotted] = values[key]
    return found


class _TwiceGiven(Exception):
    """A key given twice in one mapping of the file."""


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last one silently: a section appended at the end of the
    file ("listen:" again, to change the host) would replace the whole earlier
    one, every other key of it back to its default without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in first:
                raise _TwiceGiven(f"line {line}: {key_node.value!r} is given twice (first at "
                                  f"line {first[key_node.value]}); merge the two into one")
            first[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def _read(path: Path, loader: type[yaml.SafeLoader] = _UniqueKeys) -> dict[str, Any]:
    """The file's sections, its relative paths resolved against its directory."""
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a SafeLoader
    except _TwiceGiven as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    data: dict[str, Any] = loaded or {}
    base = path.resolve().parent
    for dotted in PATH_KEYS:
        section, _, key = dotted.partition(".")
        values = data.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        # Wrong types are left for _build to report with the key's name.
        if isinstance(value, str) and value not in ("", _MEMORY):
            values[key] = str(base / Path(value).expanduser())  # type: ignore[index]
    return data


def _check_numbers(config: Config) -> None:
    """Ports within 0-65535; no negative (or infinite) number; some at least 1."""
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        for key in dataclasses.fields(values):
            dotted, value = f"{section.name}.{key.name}", getattr(values, key.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if dotted in PORT_KEYS and not 0 <= value <= 65535:
                raise ConfigError(f"{dotted}: {value} is not a port (0 to 65535)")
            if not math.isfinite(value):
                raise ConfigError(f"{dotted}: {value} is not a finite number")
            if value < 0:
                raise ConfigError(f"{dotted}: {value} must not be negative")
            if dotted in AT_LEAST_ONE and value < 1:
                raise ConfigError(f"{dotted}: {value} must be at least 1")
            if dotted in ABOVE_ZERO and value <= 0:
                raise ConfigError(f"{dotted}: {value} must be more than 0")


def check_hosts(config: Config) -> None:
    """Every host a listener will bind resolves (a name, or an address)."""
    hosts = [("listen.host", config.listen.host, True),
             ("tls.host", config.tls.host, config.tls.enabled),
             ("metrics.host", config.metrics.host, config.metrics.enabled),
             ("irc.host", config.irc.host, config.irc.enabled),
             ("web.host", config.web.host, config.web.enabled)]
    for key, host, used in hosts:
        if not used:
            continue
        if not host.strip():
            # The event loop would bind every interface, IPv4 and IPv6: an unset
            # variable (--host "$HOST") must not open the daemon to the world.
            raise ConfigError(f"{key}: is empty: name an address (0.0.0.0 or :: to listen "
                              "on every interface)")
        try:
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (socket.gaierror, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
            raise ConfigError(f"{key}: cannot resolve {host!r}: {reason}") from exc


def held_for_restart(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """``loaded`` with the running values of the restart-only keys it changes,
    and those keys (in RELOAD_POLICY's order)."""
    changed = [dotted for dotted, policy in RELOAD_POLICY.items()
               if policy == "restart" and _value(loaded, dotted) != _value(running, dotted)]
    kept: dict[str, dict[str, Any]] = {}
    for dotted in changed:
        section, _, key = dotted.partition(".")
        kept.setdefault(section, {})[key] = _value(running, dotted)
    sections = {section: dataclasses.replace(getattr(loaded, section), **values)
                for section, values in kept.items()}
    return dataclasses.replace(loaded, **sections), changed


def _value(config: Config, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return getattr(getattr(config, section), key)


def all_keys() -> list[str]:
    """Every key of the configuration, dotted ("listen.port"), in definition order."""
    return [f"{name}.{key.name}" for name, section in typing.get_type_hints(Config).items()
            for key in dataclasses.fields(section)]


# The longest listen.flush_delay: a wait every reply and message pays.
FLUSH_DELAY_MAX: Final = 0.05
# A single node's listen.flush_delay when none is set: at a message a
# millisecond into a room of 100 it halves the CPU per delivery, for up to
# 2 ms of latency (docs/PERFORMANCE.md, "Writes a moment late").
DEFAULT_FLUSH_DELAY: Final = 0.002


def effective_flush_delay(config: Config) -> float:
    """``listen.flush_delay``, or when unset its default: a cluster node's deliveries
    already arrive in batches from the shared log, so there a delay only adds
    latency (docs/CLUSTER.md), and a single node's is DEFAULT_FLUSH_DELAY."""
    delay = config.listen.flush_delay
    if delay is not None:
        return delay
    return 0.0 if config.cluster.enabled else DEFAULT_FLUSH_DELAY

# One word of printable characters that does not start with a colon.
_IRC_WORD = re.compile(r"[^\s:\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*")


# Keys whose value must lie within a range (seconds): a resume token of a few
# seconds is no use, one of more than ten years a risk.
# Durations with bounds: the least and most seconds, and the bounds as the file writes them.
RANGES: Final = {"accounts.resume_ttl": (30, 3650 * 86400, "30s to 3650d")}


def _check_ranges(config: Config) -> None:
    for dotted, (low, high, said) in RANGES.items():
        value = _value(config, dotted)
        if not low <= value <= high:
            # Whole seconds in full: 315446400, not the 3.15446e+08 of :g.
            seconds = f"{value:.0f}" if value == int(value) else f"{value:g}"
            raise ConfigError(f"{dotted}: {seconds} seconds is outside {said}")
    if config.accounts.max_session_tokens < 2:
        # One place for the token a tab renewing its own keeps, one for the new one.
        raise ConfigError(f"accounts.max_session_tokens: {config.accounts.max_session_tokens} "
                          "must be at least 2")
    if not 1 <= config.limits.ipv6_prefix <= 128:
        raise ConfigError(f"limits.ipv6_prefix: {config.limits.ipv6_prefix} must be 1 to 128 "
                          "(the bits of an IPv6 address that name one client)")


def _check_together(config: Config) -> None:
    """Rules that span several keys."""
    if not config.storage.path.strip():
        # Often an unset variable (--db "$DB"): refused here by name, where opening
        # it would only say "No such file or directory: ''".
        raise ConfigError("storage.path: is empty: name the database file (such as chatd.db)")
    if config.tls.enabled and not (config.tls.cert and config.tls.key):
        raise ConfigError("tls.enabled: needs tls.cert and tls.key (PEM file paths)")
    if config.irc.tls_port is not None and not (config.tls.cert and config.tls.key):
        raise ConfigError("irc.tls_port: needs tls.cert and tls.key (PEM file paths)")
    if not _IRC_WORD.fullmatch(config.irc.server_name):
        # It is the source of every server reply: a space or a leading colon
        # would change what the line says, and an empty one would drop it.
        raise ConfigError(f"irc.server_name: {config.irc.server_name!r} must be one word "
                          "(such as chat.example.org): no spaces, not starting with ':'")
    if min(config.crypto.max_concurrent, config.crypto.max_input,
           config.crypto.max_envelope) < 1:
        raise ConfigError("crypto: max_concurrent, max_input and max_envelope must be at least 1")
    if not 4 <= config.accounts.bcrypt_cost <= 31:
        raise ConfigError("accounts.bcrypt_cost: must be from 4 to 31")
    if config.listen.max_line < 64:
        raise ConfigError(f"listen.max_line: {config.listen.max_line} is out of range")
    if effective_flush_delay(config) > FLUSH_DELAY_MAX:
        raise ConfigError(f"listen.flush_delay: {config.listen.flush_delay} is more than "
                          f"{FLUSH_DELAY_MAX} s, which every reply would wait")
    _check_banner(config)
    _check_cluster(config)
    _check_ports_apart(config)


# Hosts that bind every address: a port on one of them is taken on every host.
_EVERY_ADDRESS: Final = ("0.0.0.0", "::")


def _listeners(config: Config) -> list[tuple[str, str, int]]:
    """The TCP listeners in use: (key of the port, host, port)."""
    irc = config.irc
    listeners = [("listen.port", config.listen.host, config.listen.port)]
    if config.tls.enabled:
        listeners.append(("tls.port", config.tls.host, config.tls.port))
    if irc.enabled:
        listeners.append(("irc.port", irc.host, irc.port))
        if irc.tls_port is not None:
            listeners.append(("irc.tls_port", irc.host, irc.tls_port))
    if config.web.enabled:
        listeners.append(("web.port", config.web.host, config.web.port))
    if config.metrics.enabled:
        listeners.append(("metrics.port", config.metrics.host, config.metrics.port))
    return listeners


def _check_ports_apart(config: Config) -> None:
    """No two listeners on one port of one host: the second would fail to bind with
    "address already in use", which sends an operator looking for another program."""
    seen: list[tuple[str, str, int]] = []
    for key, host, port in _listeners(config):
        for other_key, other_host, other_port in seen:
            if port and port == other_port and (
                    host == other_host or host in _EVERY_ADDRESS
                    or other_host in _EVERY_ADDRESS):
                raise ConfigError(f"{key}: {port} is {other_key} too: each listener needs "
                                  "a port of its own (0: any free one)")
        seen.append((key, host, port))


# What a terminal obeys without showing it: the C0 controls but TAB and the line end
# that separates a MOTD's lines, DEL and the C1 controls (ESC, CSI ...).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _check_banner(config: Config) -> None:
    """The banner's words reach every connection as they are written: none may hold a
    control character, so that the text format carries no escape sequence unless the
    client turns colour on (and a user's lines never do: the protocol removes them)."""
    for dotted, text in (("server.name", config.server.name),
                         ("server.motd", config.server.motd)):
        found = _CONTROL.search(text)
        if found is not None:
            raise ConfigError(f"{dotted}: holds the control character "
                              f"U+{ord(found.group()):04X}, which a terminal would obey; "
                              "write plain text (colours belong to the client)")


def _check_cluster(config: Config) -> None:
    """The cluster's keys: well-formed when given, complete when the cluster is on."""
    cluster = config.cluster
    if cluster.node_id and not _NODE_ID_RE.fullmatch(cluster.node_id):
        raise ConfigError(f"cluster.node_id: {cluster.node_id!r} must be 1-32 letters, "
                          "digits, '_' or '-'")
    _check_url("cluster.postgres", cluster.postgres, ("postgresql", "postgres"))
    _check_url("cluster.redis", cluster.redis, ("redis", "rediss", "unix"))
    if not cluster.enabled:
        return
    missing = [key for key in ("node_id", "postgres") if not getattr(cluster, key)]
    if missing:
        raise ConfigError(f"cluster.enabled: needs cluster.{' and cluster.'.join(missing)}")
    if config.backup.interval > 0:
        raise ConfigError("backup.interval: scheduled backups copy the SQLite database; "
                          "in cluster mode back up PostgreSQL with pg_dump (set it to 0)")


def _check_url(key: str, url: str, schemes: tuple[str, ...]) -> None:
    if not url:
        return
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise ConfigError(f"{key}: expected a URL like {schemes[0]}://host/..., "
                          f"got {_redacted(url)!r}")


def secrets_held(config: Config) -> list[str]:
    """The keys of ``config`` that hold a secret: a password in a database's URL,
    the S3 secret key. A file holding any should be readable by the service alone."""
    held = [key for key, url in (("cluster.postgres", config.cluster.postgres),
                                 ("cluster.redis", config.cluster.redis))
            if _redacted(url) != url or "password=" in url.lower()]
    if config.files.s3_secret_key:
        held.append("files.s3_secret_key")
    return held


def _redacted(url: str) -> str:
    """The URL without a password it may hold (error messages end up in logs)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{place}"


def _build(cls: type[_T], data: Any, where: str) -> _T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'configuration'}: expected a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown key")
    values = {key: _convert(hints[key], value, f"{where}{key}") for key, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, where + ".")
    if hint is Seconds:
        return _seconds(value, where)
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            choices = ", ".join(str(a) for a in get_args(hint))
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if get_origin(hint) is tuple:
        return _strings(value, where)
    if get_origin(hint) in (types.UnionType, typing.Union):
        if value is None and type(None) in get_args(hint):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings (YAML's sequence), kept as an immutable tuple."""
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of strings, got {value!r}")


def _seconds(value: Any, where: str) -> Seconds:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return Seconds(float(value))
    if isinstance(value, str):
        try:
            return Seconds(parse_duration(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    raise ConfigError(f"{where}: expected a duration like 30s, 10m, 2h or 7d, got {value!r}")


def as_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain data (for logging and for the docs test)."""
    return dataclasses.asdict(config)
