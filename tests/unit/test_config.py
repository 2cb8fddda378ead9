"""The configuration: defaults, the documented file, validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from chatd.config import (
    DEFAULT_FLUSH_DELAY,
    PATH_KEYS,
    PORT_KEYS,
    RELOAD_POLICY,
    Config,
    ConfigError,
    all_keys,
    as_dict,
    effective_flush_delay,
    held_for_restart,
    load_config,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "chatd.yaml"


def test_documented_file_matches_the_embedded_defaults() -> None:
    """Every key of conf/chatd.yaml exists with the built-in default, and no key is missing."""
    documented = load_config(CONF)
    # The file's relative storage.path is taken relative to the file's directory.
    assert documented.storage.path == str(CONF.parent / "chatd.db")
    defaults = load_config(None, {"storage.path": documented.storage.path})
    assert as_dict(documented) == as_dict(defaults)
    raw = yaml.safe_load(CONF.read_text(encoding="utf-8"))
    assert _keys(raw) == _keys(as_dict(Config()))


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            found |= _keys(value, f"{prefix}{key}.")
        else:
            found.add(prefix + key)
    return found


def test_every_documented_key_has_a_comment() -> None:
    lines = CONF.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or not line.startswith("  "):
            continue
        above = [item.strip() for item in lines[max(0, number - 6):number]]
        assert any(item.startswith("#") for item in above), f"no comment near: {line}"


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()


@pytest.mark.parametrize(("text", "named"), [
    ("listen:\n  prot: 1\n", "listen.prot"),
    ("nosuchsection: {}\n", "nosuchsection"),
    ("listen:\n  port: seven\n", "listen.port"),
    ("accounts:\n  registration: maybe\n", "accounts.registration"),
    ("limits:\n  login_timeout: soon\n", "limits.login_timeout"),
    ("limits:\n  login_timeout: -5\n", "limits.login_timeout"),
    ("accounts:\n  bcrypt_cost: 3\n", "accounts.bcrypt_cost"),
    ("tls:\n  enabled: true\n", "tls.enabled"),
    ("listen:\n  max_line: 10\n", "listen.max_line"),
    ("- a list\n", "top level"),
    ("listen: [1, 2]\n", "listen"),
    ("logging:\n  level: loud\n", "logging.level"),
    ("limits:\n  keepalive: 1\n", "limits.keepalive"),
    ("irc:\n  server_name: ''\n", "irc.server_name"),
    ("listen:\n  flush_delay: 0.5\n", "listen.flush_delay"),
    ("listen:\n  flush_delay: true\n", "listen.flush_delay"),
    ("listen:\n  flush_delay: -1\n", "listen.flush_delay"),
    ("irc:\n  server_name: my server\n", "irc.server_name"),
    ("irc:\n  server_name: ':x'\n", "irc.server_name"),
])
def test_bad_values_are_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=named.split(".", maxsplit=1)[0]):
        load_config(path)


def test_durations_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rooms:\n  invitation_ttl: 2d\nlimits:\n  flood_window: 30\n",
                    encoding="utf-8")
    config = load_config(path, {"listen.port": 9000, "storage.path": "x.db"})
    assert config.rooms.invitation_ttl == 2 * 86400
    assert config.limits.flood_window == 30.0
    assert config.listen.port == 9000 and config.storage.path == "x.db"


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("listen: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("listen: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="listen: must be a mapping"):
        load_config(scalar, {"listen.port": 1})


def test_every_key_declares_its_reload_policy() -> None:
    assert sorted(RELOAD_POLICY) == sorted(all_keys())
    assert set(RELOAD_POLICY.values()) == {"applied", "restart"}
    for key in ("listen.port", "storage.path", "irc.port", "metrics.port", "control.path"):
        assert RELOAD_POLICY[key] == "restart"


def test_a_reload_keeps_restart_only_keys_and_names_them() -> None:
    running = load_config(None, {"listen.port": 7000, "server.motd": "old"})
    loaded = load_config(None, {"listen.port": 7001, "irc.port": 6668, "server.motd": "new"})
    kept, changed = held_for_restart(running, loaded)
    assert changed == ["listen.port", "irc.port"]
    assert (kept.listen.port, kept.irc.port, kept.server.motd) == (7000, 6667, "new")
    assert held_for_restart(running, running) == (running, [])


@given(key=st.sampled_from(PORT_KEYS),
       port=st.integers().filter(lambda n: not 0 <= n <= 65535))
def test_a_port_outside_0_to_65535_is_refused_by_name(key: str, port: int) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: {port} is not a port \(0 to 65535\)$"):
        load_config(None, {key: port})


@given(key=st.sampled_from(PORT_KEYS), port=st.integers(0, 65535))
def test_a_port_from_0_to_65535_is_accepted(key: str, port: int) -> None:
    section, _, name = key.partition(".")
    pem = {"tls.cert": "cert.pem", "tls.key": "key.pem"}  # irc.tls_port needs them
    assert getattr(getattr(load_config(None, {key: port, **pem}), section), name) == port


def _numbers() -> list[str]:
    """The keys whose default is a number (durations included), ports aside."""
    defaults = as_dict(Config())
    return [key for key in all_keys() if key not in PORT_KEYS
            and type(defaults[key.split(".")[0]][key.split(".")[1]]) in (int, float)]


@given(key=st.sampled_from(_numbers()), value=st.integers(max_value=-1))
def test_a_negative_number_is_refused_by_name(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        load_config(None, {key: value})


@pytest.mark.parametrize(("key", "value"), [
    ("limits.max_connections", 0), ("limits.max_connections_per_ip", 0),
    ("limits.input_queue", 0), ("storage.max_batch", 0), ("rooms.page_size", 0),
    ("crypto.spawn_rate", 0), ("limits.message_rate", float("inf")),
    ("limits.command_rate", float("nan")), ("web.max_body", 0), ("housekeeping.interval", 0),
    ("limits.login_timeout", 0), ("accounts.resume_ttl", "5s"), ("accounts.resume_ttl", 0),
    ("accounts.resume_ttl", "3651d"), ("web.request_timeout", 0), ("files.preview_timeout", 0),
    ("crypto.timeout", 0), ("rooms.max_owned", 0), ("rooms.offline_replay_max", 0),
    ("limits.max_notifications", 0), ("accounts.max_blocks", 0), ("files.max_files", 0),
])
def test_numbers_that_cannot_work_are_refused_by_name(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        load_config(None, {key: value})


@pytest.mark.parametrize("value", [0, 1])
def test_an_account_keeps_at_least_two_session_tokens(value: int) -> None:
    # One for the token a tab renewing its own keeps, one for the new one.
    with pytest.raises(ConfigError, match=rf"^accounts.max_session_tokens: {value} must be "
                                          r"at least 2$"):
        load_config(None, {"accounts.max_session_tokens": value})
    assert load_config(None, {"accounts.max_session_tokens": 2}).accounts \
        .max_session_tokens == 2


@pytest.mark.parametrize(("value", "seconds"), [(400_000_000, "400000000"), ("5s", "5"),
                                                (0.5, "0.5")])
def test_a_bounded_duration_is_refused_in_the_files_words(value: str | float,
                                                          seconds: str) -> None:
    # "must be 30 to 3.1536e+08 seconds" read as neither the file nor a person writes.
    with pytest.raises(ConfigError, match=rf"^accounts.resume_ttl: {seconds} seconds is "
                                          r"outside 30s to 3650d$"):
        load_config(None, {"accounts.resume_ttl": value})


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "chatd.yaml"
    sections: dict[str, dict[str, str]] = {}
    for key in PATH_KEYS:
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = f"sub/{name}"
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    config = load_config(path)
    for key in PATH_KEYS:
        section, _, name = key.partition(".")
        assert getattr(getattr(config, section), name) == str(folder / "sub" / name), key
    # Absolute paths stay; empty ones keep meaning "beside the database"; the
    # command line's --db (an override) stays relative to the working directory.
    path.write_text("storage:\n  path: /srv/chat.db\nfiles:\n  dir: ''\n", encoding="utf-8")
    assert load_config(path).storage.path == "/srv/chat.db"
    assert load_config(path).files.dir == ""
    assert load_config(path, {"storage.path": "here.db"}).storage.path == "here.db"


@pytest.mark.parametrize(("text", "delay"), [
    ("", DEFAULT_FLUSH_DELAY),
    ("listen:\n  flush_delay: null\n", DEFAULT_FLUSH_DELAY),
    ("listen:\n  flush_delay: 0\n", 0.0),
    ("listen:\n  flush_delay: 0.01\n", 0.01),
])
def test_a_single_nodes_write_delay_defaults_to_two_milliseconds(
        tmp_path: Path, text: str, delay: float) -> None:
    path = tmp_path / "chatd.yaml"
    path.write_text(text, encoding="utf-8")
    assert effective_flush_delay(load_config(path)) == delay


def test_a_file_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b'server:\n  name: "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1\.yaml is not UTF-8 text"):
        load_config(str(path))


@pytest.mark.parametrize(("key", "text"), [("server.motd", "Welcome\n\x1b[5mblink"),
                                           ("server.motd", "over\rwritten"),
                                           ("server.name", "chat\x9b31m")])
def test_the_banner_holds_no_control_character(key: str, text: str) -> None:
    """Every connection reads the banner as written: an escape sequence in it would
    reach a text-mode client that never turned colour on."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, {key: text})
    assert load_config(None, {"server.motd": "two\tlines\nof text"}).server.motd


def _bound_at_start_in_the_file() -> set[str]:
    """The keys conf/chatd.yaml's header says a reload leaves for a restart, its
    shorthand expanded: ``tls.enabled/host/port``, ``storage.*``, ``files.s3_*``."""
    header = " ".join(line.lstrip("# ") for line in CONF.read_text(encoding="utf-8")
                      .split("\n\n")[0].splitlines())
    listed = header[header.index("bound at start:") + len("bound at start:"):]
    listed = listed[:listed.index(". ")].replace(" and ", ", ")
    keys: set[str] = set()
    for item in (part.strip() for part in listed.split(",")):
        section, _, names = item.partition(".")
        for name in names.split("/"):
            prefix = f"{section}.{name.rstrip('*')}"
            found = {key for key in all_keys()
                     if key == prefix or (name.endswith("*") and key.startswith(prefix))}
            assert found, f"{item}: no such key"
            keys |= found
    return keys


def test_the_files_list_of_keys_bound_at_start_is_the_reload_policys() -> None:
    bound = {key for key, policy in RELOAD_POLICY.items() if policy == "restart"}
    assert _bound_at_start_in_the_file() == bound


DOCS = [CONF.parents[1] / "README.md", *sorted((CONF.parents[1] / "docs").glob("*.md"))]
# A section.key written in prose: not part of a longer dotted name, a path or a call.
_DOTTED = re.compile(r"(?<![\w./-])([a-z_]+)\.([a-z_0-9]+)(?![\w(/-]|\.\w)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_key_the_docs_name_exists(doc: Path) -> None:
    """A key named in the documentation is one the loader knows (a renamed key
    leaves no stale name behind); ``storage.api`` and the like are modules."""
    keys = set(all_keys())
    sections = {key.partition(".")[0] for key in keys}
    root = CONF.parents[1]
    unknown = {f"{section}.{name}" for section, name in _DOTTED.findall(doc.read_text())
               if section in sections and f"{section}.{name}" not in keys
               and not (root / section / f"{name}.py").exists()
               and not (root / section / name).is_dir()
               and name not in ("py", "md", "db", "yaml", "sock")}
    assert not unknown
