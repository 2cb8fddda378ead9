"""Log formatting for the journal: one line per event, as key=value or JSON.

Structured data travels as ``extra={"fields": {...}}`` on the logging call::

    log.info("listening", extra={"fields": {"host": "127.0.0.1", "port": 7777}})

``KeyValueFormatter`` then writes
``level=info logger=chatd.net.listener msg="listening" host=127.0.0.1 port=7777`` and
``JsonFormatter`` writes one JSON object. Either way an event is exactly one
line, whatever newlines its message, fields or traceback contain, so journald
and log shippers never split or interleave it.

Pure formatting plus ``configure_logging``; no import from the rest of chatd.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Final, cast

from chatd.domain.clock import iso_ts

__all__ = ["JsonFormatter", "KeyValueFormatter", "configure_logging", "under_journal"]

# Keys every line has; a field with one of these names gets a "_" prefix so it
# cannot hide or duplicate the real one.
_RESERVED: Final = frozenset({"time", "ts", "level", "logger", "msg", "exc", "stack"})

# Characters that force a value into quotes: whitespace (which separates
# pairs), the quote and backslash (used by escapes), "=" (separates key from
# value), and every control character.
_NEEDS_QUOTES: Final = re.compile('[\\s"=\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
# Characters escaped inside quotes. Line breaks and other controls are
# escaped so that one event is always one physical line.
_ESCAPE: Final = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_SHORT_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BAD_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9_.\-]")


def _escape_char(match: re.Match[str]) -> str:
    """The escape sequence for one character."""
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _quote(value: str) -> str:
    """Double-quote ``value`` with escapes."""
    return '"' + _ESCAPE.sub(_escape_char, value) + '"'


def _kv_value(value: object) -> str:
    """Render a field value, quoting it only when needed."""
    kind = type(value)
    if kind is int:
        return str(value)  # digits and a sign: never quoted (the common case, first)
    if kind is str:
        text = cast(str, value)
        return _quote(text) if not text or _NEEDS_QUOTES.search(text) else text
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    else:
        text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return _quote(text)
    return text


def _field_key(key: object) -> str:
    """A safe key: no spaces, quotes or "="; reserved names get a "_" prefix."""
    safe = _SAFE_KEYS.get(key) if type(key) is str else None
    if safe is None:
        text = _BAD_KEY_CHARS.sub("_", str(key)) or "_"
        safe = "_" + text if text in _RESERVED else text
        if type(key) is str and len(_SAFE_KEYS) < _KEPT:
            _SAFE_KEYS[key] = safe
    return safe


# The keys of fields are the code's own few names: each is made safe once (a
# log line's keys were a tenth of its formatting). Bounded all the same.
_SAFE_KEYS: Final[dict[str, str]] = {}
_KEPT: Final = 512


def _fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    """The record's structured fields (from ``extra={"fields": ...}``), keys made safe."""
    fields = getattr(record, "fields", None)
    if fields is None:
        return []
    if not isinstance(fields, Mapping):
        # Someone passed a non-mapping; show it rather than lose it.
        return [("fields", fields)]
    return [(_field_key(key), value) for key, value in fields.items()]


def _iso_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds (the same format as the protocol's timestamps).

    The protocol's formatter, which formats each second's datetime once: at a
    wave of log-ins (two log lines each) a datetime per line was 7% of the
    daemon's samples."""
    return iso_ts(epoch)


class _OneLineFormatter(logging.Formatter):
    """Shared parts of the two formatters."""

    def _extras(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        """The traceback and stack, if any, as ``exc`` and ``stack`` fields."""
        extras = []
        if record.exc_info and not record.exc_text:
            # Cached on the record, as logging.Formatter.format does, so that
            # several handlers format a traceback only once.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            extras.append(("exc", record.exc_text))
        if record.stack_info:
            extras.append(("stack", self.formatStack(record.stack_info)))
        return extras


class KeyValueFormatter(_OneLineFormatter):
    """Format records as ``key=value`` lines (logfmt).

    ``level``, ``logger`` and ``msg`` (always quoted) come first, then the
    record's fields in order, then ``exc``/``stack`` when present. Values
    containing spaces, quotes, backslashes, ``=`` or control characters are
    double-quoted with backslash escapes.

    No timestamp by default: journald stamps every line itself, and a second,
    differently formatted time only adds noise. Pass ``with_time=True`` to
    start each line with ``time=...`` (ISO 8601 UTC); ``configure_logging``
    does so unless stderr goes to the journal.
    """

    def __init__(self, with_time: bool = False) -> None:
        """Create the formatter; ``with_time`` adds a leading ``time=`` field."""
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        """Format one record as one line."""
        parts = [f"time={_iso_time(record.created)}"] if self.with_time else []
        parts.append(_HEADS.get((record.levelname, record.name)) or _head(record))
        parts.append(f"msg={_quote(record.getMessage())}")
        for key, value in _fields(record):
            parts.append(f"{key}={_kv_value(value)}")
        if record.exc_info or record.exc_text or record.stack_info:
            parts.extend(f"{key}={_quote(text)}" for key, text in self._extras(record))
        return " ".join(parts)


def _head(record: logging.LogRecord) -> str:
    """``level=... logger=...``, made once per level and logger."""
    head = f"level={record.levelname.lower()} logger={_kv_value(record.name)}"
    if len(_HEADS) < _KEPT:
        _HEADS[record.levelname, record.name] = head
    return head


_HEADS: Final[dict[tuple[str, str], str]] = {}


class JsonFormatter(_OneLineFormatter):
    """Format records as one JSON object per line.

    Keys: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``, the record's
    fields, then ``exc``/``stack`` when present. Values JSON cannot represent
    are written as their ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format one record as one JSON line."""
        event: dict[str, object] = {
            "ts": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(_fields(record))
        event.update(self._extras(record))
        # json.dumps escapes newlines inside strings, so this is one line.
        return json.dumps(event, ensure_ascii=False, default=str)


_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FORMATS: Final = ("kv", "json")
# Marks the handler configure_logging installed, so a second call (on reload)
# replaces it and leaves handlers installed by anyone else alone.
_HANDLER_NAME: Final = "chatd-stderr"


def _skip_unused_record_fields() -> None:
    """Spare every log call what neither format shows: the thread and the process
    (switches the logging HOWTO's "Optimization" section names). The caller's
    file and line stay: without them ``stack_info=True`` would show no stack."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def under_journal(env: Mapping[str, str] | None = None) -> bool:
    """Whether stderr is the journal's stream, which stamps every line itself.

    systemd sets ``JOURNAL_STREAM`` to that stream's ``device:inode``. The
    variable is inherited by processes whose stderr goes elsewhere (a log file,
    a terminal), so it counts only when stderr is that very file.
    """
    device, colon, inode = (env if env is not None else os.environ).get(
        "JOURNAL_STREAM", "").partition(":")
    if not colon:
        return False
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return True  # no descriptor to compare: trust the variable
    return f"{status.st_dev}:{status.st_ino}" == f"{device}:{inode}"


# Loggers of libraries that log a failure they retry with its whole traceback (the
# PostgreSQL driver's pool, every few seconds while the database is away).
_DRIVERS: Final = ("asyncpg",)
# Loggers whose debug records carry the statements' parameters.
_QUIET_DEBUG: Final = ("aiosqlite", "asyncpg")


def _one_line_from_drivers(record: logging.LogRecord) -> bool:
    """A driver's warning with a traceback becomes one line naming the exception:
    the traceback says nothing an operator can act on, and it repeats."""
    if record.exc_info and record.levelno < logging.ERROR and \
            record.name.partition(".")[0] in _DRIVERS:
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
        record.args = None
        record.exc_info = record.exc_text = None
    return True


def configure_logging(level: str, fmt: str, *, with_time: bool | None = None) -> None:
    """Log to stderr at ``level`` ("debug" ... "critical") in format ``fmt`` ("kv" or "json").

    Installs one stderr handler on the root logger, replacing the one an
    earlier call installed, so it can be called again on reload. Raises
    ``ValueError`` for an unknown level or format, before changing anything.
    ``with_time`` adds timestamps to the kv format (JSON always has them);
    None: timestamps unless stderr goes to the journal (``under_journal``).
    """
    level_no = _LEVELS.get(level.strip().lower())
    if level_no is None:
        raise ValueError(
            f"unknown log level {level!r}: use debug, info, warning, error or critical"
        )
    formatter: logging.Formatter
    if fmt == "kv":
        stamped = not under_journal() if with_time is None else with_time
        formatter = KeyValueFormatter(with_time=stamped)
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}: use {' or '.join(_FORMATS)}")
    _skip_unused_record_fields()
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_one_line_from_drivers)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level_no)
    # The database drivers' debug records hold every statement with its parameters:
    # password hashes, token hashes, message bodies. Never logged, whatever the level.
    for driver in _QUIET_DEBUG:
        logging.getLogger(driver).setLevel(max(level_no, logging.INFO))
