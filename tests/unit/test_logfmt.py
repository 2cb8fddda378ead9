"""Tests for chatd.ops.logfmt: one line per event, quoting, JSON, configure_logging."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.ops.logfmt import JsonFormatter, KeyValueFormatter, configure_logging, under_journal

FAST = settings(max_examples=150, deadline=None)

# 2026-11-21T10:00:00.250Z
CREATED = 1795255200.25


def make_record(
    msg: str = "listening",
    fields: Any = None,
    *,
    level: int = logging.INFO,
    name: str = "chatd.app.server",
    args: tuple[object, ...] = (),
    exc: bool = False,
    stack: str | None = None,
) -> logging.LogRecord:
    """A record as a logging call with ``extra={"fields": fields}`` would make it."""
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    extra = None if fields is None else {"fields": fields}
    record = logging.getLogger(name).makeRecord(
        name, level, __file__, 1, msg, args, exc_info, extra=extra, sinfo=stack
    )
    record.created = CREATED
    return record


# A small logfmt parser, to prove the output is unambiguous.
PAIR_RE = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?: |$)')
UNESCAPE_RE = re.compile(r'\\(u[0-9a-f]{4}|["\\nrt])')
UNESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line: str) -> dict[str, str]:
    """Parse one logfmt line into a dict of unescaped values."""
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        match = PAIR_RE.match(line, pos)
        assert match is not None, f"unparsable at {pos}: {line[pos:]!r}"
        key, value = match.groups()
        if value.startswith('"'):
            value = UNESCAPE_RE.sub(_unescape, value[1:-1])
        pairs[key] = value
        pos = match.end()
    return pairs


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code[1:], 16)) if code.startswith("u") else UNESCAPES[code]


# ---------------------------------------------------------------------------
# KeyValueFormatter
# ---------------------------------------------------------------------------


def test_kv_example_from_the_docs() -> None:
    record = make_record(fields={"host": "127.0.0.1", "port": 7777})
    assert (
        KeyValueFormatter().format(record)
        == 'level=info logger=chatd.app.server msg="listening" host=127.0.0.1 port=7777'
    )


def test_kv_without_fields_and_with_args() -> None:
    record = make_record("user %s joined %d rooms", level=logging.WARNING, args=("bob", 3))
    assert (
        KeyValueFormatter().format(record)
        == 'level=warning logger=chatd.app.server msg="user bob joined 3 rooms"'
    )


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ("caf\u00e9", "caf\u00e9"),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("cr\rlf\n", '"cr\\rlf\\n"'),
        ("tab\there", '"tab\\there"'),
        ("esc\x1b[0m", '"esc\\u001b[0m"'),
        ("ls\u2028ps\u2029", '"ls\\u2028ps\\u2029"'),
        ("nbsp\u00a0", '"nbsp\u00a0"'),
        (["a", "b"], "\"['a', 'b']\""),
    ],
)
def test_kv_value_quoting(value: object, rendered: str) -> None:
    line = KeyValueFormatter().format(make_record("m", {"v": value}))
    assert line == f'level=info logger=chatd.app.server msg="m" v={rendered}'


def test_kv_message_is_always_quoted_and_escaped() -> None:
    line = KeyValueFormatter().format(make_record('evil\nlevel=error msg="x"'))
    assert "\n" not in line
    assert parse_logfmt(line)["msg"] == 'evil\nlevel=error msg="x"'
    assert parse_logfmt(line)["level"] == "info"


def test_kv_keys_are_made_safe() -> None:
    fields = {"msg": "shadow", "level": "x", "bad key": 1, 'q"=': 2, "": 3, "ok.key-1": 4}
    line = KeyValueFormatter().format(make_record("m", fields))
    assert line == (
        'level=info logger=chatd.app.server msg="m"'
        ' _msg=shadow _level=x bad_key=1 q__=2 _=3 ok.key-1=4'
    )


def test_kv_non_mapping_fields_are_shown() -> None:
    line = KeyValueFormatter().format(make_record("m", ["x", "y"]))
    assert line.endswith("fields=\"['x', 'y']\"")


def test_kv_exception_is_one_escaped_field() -> None:
    line = KeyValueFormatter().format(make_record("failed", {"peer": "1.2.3.4"}, exc=True))
    assert "\n" not in line
    pairs = parse_logfmt(line)
    assert pairs["peer"] == "1.2.3.4"
    assert pairs["exc"].startswith("Traceback (most recent call last):\n")
    assert pairs["exc"].endswith("RuntimeError: boom\nsecond line")
    assert list(pairs)[-1] == "exc"


def test_kv_stack_info() -> None:
    line = KeyValueFormatter().format(make_record("m", stack="Stack (most recent call last):\n  x"))
    assert parse_logfmt(line)["stack"] == "Stack (most recent call last):\n  x"


def test_kv_time_is_off_by_default_and_optional() -> None:
    record = make_record()
    assert "time=" not in KeyValueFormatter().format(record)
    line = KeyValueFormatter(with_time=True).format(record)
    assert line.startswith("time=2026-11-21T10:00:00.250Z level=info ")


RESERVED = frozenset({"time", "ts", "level", "logger", "msg", "exc", "stack"})
field_values = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats())


@FAST
@given(
    st.text(),
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), field_values),
)
def test_kv_is_one_line_and_parses_back(msg: str, fields: dict[str, object]) -> None:
    line = KeyValueFormatter().format(make_record(msg, fields))
    assert "\n" not in line
    assert "\r" not in line
    pairs = parse_logfmt(line)
    assert pairs["msg"] == msg
    for key, value in fields.items():
        # Names the formatter uses itself are kept apart with a "_" prefix.
        shown = "_" + key if key in RESERVED else key
        assert pairs[shown] == expected_text(value)


def expected_text(value: object) -> str:
    """How the kv formatter renders a field value, before quoting."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------------------
# JsonFormatter
# ---------------------------------------------------------------------------


def test_json_record() -> None:
    record = make_record(fields={"host": "127.0.0.1", "port": 7777})
    line = JsonFormatter().format(record)
    assert json.loads(line) == {
        "ts": "2026-11-21T10:00:00.250Z",
        "level": "info",
        "logger": "chatd.app.server",
        "msg": "listening",
        "host": "127.0.0.1",
        "port": 7777,
    }
    assert list(json.loads(line))[:4] == ["ts", "level", "logger", "msg"]


def test_json_exception_and_odd_values() -> None:
    fields = {"text": "two\nlines", "obj": object(), "msg": "shadow", 7: "int key"}
    line = JsonFormatter().format(make_record("a\nb", fields, exc=True))
    assert "\n" not in line
    event = json.loads(line)
    assert event["msg"] == "a\nb"
    assert event["text"] == "two\nlines"
    assert event["obj"].startswith("<object object")
    assert event["_msg"] == "shadow"
    assert event["7"] == "int key"
    assert event["exc"].endswith("RuntimeError: boom\nsecond line")


@FAST
@given(st.text(), st.dictionaries(st.text(), field_values))
def test_json_is_one_line(msg: str, fields: dict[str, object]) -> None:
    line = JsonFormatter().format(make_record(msg, fields))
    assert "\n" not in line
    event = json.loads(line)
    assert event["msg"] == msg


# ---------------------------------------------------------------------------
# configure_logging
# ---------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored to its previous handlers and level afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def ours(root: logging.Logger) -> list[logging.Handler]:
    """The handlers configure_logging installed."""
    return [h for h in root.handlers if h.get_name() == "chatd-stderr"]


def test_configure_logging_installs_one_handler(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "kv", with_time=False)
    assert len(ours(root_logger)) == 1
    assert root_logger.level == logging.INFO
    logging.getLogger("chatd.test").info("hello", extra={"fields": {"n": 1}})
    logging.getLogger("chatd.test").debug("hidden")
    assert capsys.readouterr().err == 'level=info logger=chatd.test msg="hello" n=1\n'


def test_configure_logging_again_replaces_handler(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "kv")
    configure_logging("DEBUG", "json")
    handlers = ours(root_logger)
    assert len(handlers) == 1
    assert isinstance(handlers[0].formatter, JsonFormatter)
    assert root_logger.level == logging.DEBUG
    logging.getLogger("chatd.test").debug("now visible")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert json.loads(err)["msg"] == "now visible"


def test_configure_logging_keeps_stack_info(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "kv", with_time=False)
    logging.getLogger("chatd.test").warning("where", stack_info=True)
    assert "stack=\"Stack (most recent call last):" in capsys.readouterr().err


def test_a_drivers_retried_failure_is_one_line_and_ours_keep_their_traceback(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "kv", with_time=False)
    for name in ("asyncpg.pool", "chatd.cluster"):
        try:
            raise ConnectionRefusedError("connect call failed")
        except OSError:
            logging.getLogger(name).warning("pool floor not restored", exc_info=True)
    driver, mine = capsys.readouterr().err.split("level=warning")[1:]
    assert driver == (' logger=asyncpg.pool msg="pool floor not restored '
                      '(ConnectionRefusedError: connect call failed)"\n')
    assert "Traceback" in mine


def test_configure_logging_with_time(root_logger: logging.Logger) -> None:
    configure_logging("warning", "kv", with_time=True)
    formatter = ours(root_logger)[0].formatter
    assert isinstance(formatter, KeyValueFormatter)
    assert formatter.with_time


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "kv"), ("", "kv"), ("info", "xml")])
def test_configure_logging_rejects_bad_arguments(
    root_logger: logging.Logger, level: str, fmt: str
) -> None:
    configure_logging("error", "kv")
    before = list(root_logger.handlers)
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt)
    assert root_logger.handlers == before
    assert root_logger.level == logging.ERROR


def test_under_journal_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stream", "w", encoding="utf-8") as stream, \
            open(tmp_path / "other", "w", encoding="utf-8") as other:
        monkeypatch.setattr(sys, "stderr", stream)
        mine, elsewhere = os.fstat(stream.fileno()), os.fstat(other.fileno())
        assert under_journal({"JOURNAL_STREAM": f"{mine.st_dev}:{mine.st_ino}"})
        assert not under_journal({"JOURNAL_STREAM": f"{elsewhere.st_dev}:{elsewhere.st_ino}"})
        assert not under_journal({})
        assert not under_journal({"JOURNAL_STREAM": "garbage"})


def test_configure_logging_stamps_lines_unless_under_the_journal(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    configure_logging("info", "kv")
    formatter = ours(root_logger)[0].formatter
    assert isinstance(formatter, KeyValueFormatter) and formatter.with_time


def test_debug_never_logs_the_database_drivers_statements(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", "kv", with_time=False)
    logging.getLogger("aiosqlite").debug("executing UPDATE users SET password_hash = ?")
    logging.getLogger("chatd.test").debug("ours")
    assert capsys.readouterr().err == 'level=debug logger=chatd.test msg="ours"\n'
