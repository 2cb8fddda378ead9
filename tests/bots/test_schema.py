"""/schema: every command described from the table the dispatcher enforces, and the
command tables of docs/PROTOCOL.md checked against it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import commands
from chatd.client import LineClient
from chatd.domain.scopes import Scope
from chatd.errors import Code
from chatd.protocol.registry import FORMS_SEPARATOR, Need
from chatd.protocol.schema import SCHEMA_VERSION, describe, schema
from tests.helpers import ChatServer, Clients, error_of, text_client, text_run

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
TABLE = commands.load()
CODES = {code.value for code in Code}
PARAM_KEYS = {"name", "type", "optional", "rest"}
COMMAND_KEYS = {"name", "aliases", "group", "summary", "usage", "params", "needs",
                "server_admin", "role", "scope", "data_lines", "errors"}


async def test_every_registered_command_is_described_completely(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.command("/schema")
    assert reply["version"] == SCHEMA_VERSION
    assert reply["scopes"] == ["read", "post", "moderate", "admin"]
    described = {c["name"]: c for c in reply["commands"]}
    assert sorted(described) == [cmd.name for cmd in TABLE.all()]
    for cmd in TABLE.all():
        entry = described[cmd.name]
        assert set(entry) == COMMAND_KEYS, cmd.name
        assert entry["summary"] and entry["usage"].startswith(f"/{cmd.name}")
        assert entry["scope"] in reply["scopes"]
        assert entry["needs"] in {need.value for need in Need}
        assert set(entry["errors"]) <= CODES and "rate-limited" in entry["errors"]
        for param in entry["params"]:
            assert set(param) >= PARAM_KEYS and param["type"], (cmd.name, param)
        # The very records the dispatcher uses, whole.
        assert entry == json.loads(json.dumps(describe(cmd)))


def test_the_description_follows_the_declarations() -> None:
    kick = describe(_cmd("kick"))
    assert kick["role"] == "admin" and kick["scope"] == "moderate"
    assert [p["type"] for p in kick["params"]] == ["user", "room", "text"]
    assert kick["params"][1] == {"name": "room", "type": "room", "optional": True,
                                 "rest": False, "default": "current-room"}
    assert {"no-such-user", "no-such-room", "no-room", "not-permitted", "not-in-room",
            "not-logged-in", "scope"} <= set(kick["errors"])
    history = describe(_cmd("history"))["params"][1]
    assert (history["type"], history["min"], history["optional"]) == ("integer", 1, True)
    ban = describe(_cmd("ban"))["params"][2]
    assert (ban["type"], ban["min"], ban["max"], ban["unit"]) == (
        "duration", 1, 3650 * 86400, "seconds")
    create = describe(_cmd("create"))["params"][1]
    assert create["choices"] == ["open", "request", "private"]
    login = describe(_cmd("login"))
    assert [p["type"] for p in login["params"]] == ["word", "secret", "secret", "flag"]
    assert "already-logged-in" in login["errors"] and "not-logged-in" not in login["errors"]
    assert "scope" not in login["errors"]
    upload = describe(_cmd("upload"))
    assert [p["name"] for p in upload["params"]] == ["filename", "size", "sha256", "room"]
    assert upload["data_lines"] is True
    token = describe(_cmd("token"))["params"][2]
    assert token["type"] == "scopes" and token["choices"] == [s.value for s in Scope]
    useradd = describe(_cmd("useradd"))
    assert useradd["server_admin"] is True and useradd["scope"] == "admin"
    assert schema(TABLE)["commands"][0]["name"] == TABLE.all()[0].name


async def test_schema_of_one_command_and_of_an_unknown_one(clients: Clients) -> None:
    client = await clients.anonymous()
    one = await client.command("/schema /KICK")
    assert one["schema"] == describe(_cmd("kick")) and one["version"] == SCHEMA_VERSION
    assert (await client.command("/schema part"))["schema"]["name"] == "leave"
    unknown = await error_of(client, "/schema kik")
    assert unknown["code"] == "unknown-command" and unknown["suggestion"] == "kick"


async def test_schema_in_text_mode(clients: Clients, server: ChatServer) -> None:
    person = await text_client(clients)
    lines = await text_run(person, "/schema ban")
    assert lines[0] == "  /ban <user> [room] [duration] [reason]"
    assert "  duration: duration, optional, min 1, max 315360000, unit seconds" in lines
    assert lines[-2].startswith("  scope: moderate; errors: ")
    overview = await text_run(person, "/schema")
    assert overview[-1].startswith(f"* {len(TABLE.all())} commands")


# -- docs/PROTOCOL.md's command tables ------------------------------------------------

def _documented() -> dict[str, dict[str, Any]]:
    """The rows of the §7 tables: the command each row is about, its scope, its errors."""
    text = PROTOCOL.read_text()
    section = text[text.index("## 7. Commands"):text.index("## 8. Error codes")]
    rows: dict[str, dict[str, Any]] = {}
    header: list[str] = []
    previous: list[str] = []
    group = ""
    for line in section.splitlines():
        if line.startswith("### "):
            group = line.removeprefix("### ").strip()
        if not line.startswith("|"):
            header = previous = []
            continue
        if line.startswith("|---"):
            header = previous  # the line above a table's rule is its header
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        previous = cells
        if not header or header[0] != "command":
            continue  # another table (the schema's fields, say)
        row = dict(zip(header, cells, strict=True))
        name = re.findall(r"`/([a-z0-9-]+)", row["command"])[0]
        codes = set(re.findall(r"`([a-z0-9-]+)`", row["typical errors"])) & CODES
        assert name not in rows, f"/{name} has two rows"
        rows[name] = {"scope": row["scope"], "errors": codes, "usage": row["command"],
                      "needs": row["needs"], "group": group}
    return rows


async def test_codes_answered_in_odd_corners_are_declared(clients: Clients) -> None:
    owner, member = await clients.user("alice"), await clients.user("bob")
    await clients.user("carol")
    await owner.command("/create den")
    await member.command("/join den")
    await owner.command("/mode +m den")
    answered = {
        "mode": await error_of(owner, "/mode +v carol den"),
        "encrypt": await error_of(member, "/encrypt --file fernet low pw hello"),
        "quote": await error_of(member, "/quote nosuchcommand"),
    }
    armored = (await member.command("/encrypt fernet low pw hello"))["result"]
    await member.command("/leave den")
    answered["decrypt"] = await error_of(member, f"/decrypt --file pw {armored}")
    for name, error in answered.items():
        assert error["code"] in describe(_cmd(name))["errors"], (name, error)
    assert [answered[n]["code"] for n in ("mode", "encrypt", "quote", "decrypt")] == [
        "not-in-room", "moderated", "unknown-command", "no-room"]


def test_the_docs_command_tables_match_the_schema() -> None:
    documented = _documented()
    described = {c["name"]: c for c in schema(TABLE)["commands"]}
    assert sorted(documented) == sorted(described), "a command is missing from the docs"
    for name, row in documented.items():
        entry = described[name]
        assert row["scope"] == entry["scope"], f"/{name}: scope"
        missing = row["errors"] - set(entry["errors"])
        assert not missing, f"/{name} documents errors it does not declare: {missing}"


def test_every_error_code_has_a_row_in_the_docs_table_of_codes() -> None:
    """§8 is the list of codes a client may meet: every code the server answers has
    its row there, in the one table (a blank line would end it)."""
    text = PROTOCOL.read_text()
    section = text[text.index("## 8. Error codes"):text.index("## 9. Names")]
    table = section[section.index("| code |"):section.index("\n\n", section.index("| code |"))]
    rows = set(re.findall(r"^\| `([a-z0-9-]+)`", table, re.M))
    assert rows == CODES


def test_every_command_lists_the_codes_every_command_may_answer() -> None:
    """§7's list of what every command can also fail with is in each command's
    errors: the conditional ones where their condition holds."""
    text = PROTOCOL.read_text()
    start = text.index("Every command can also fail with:\n\n") + 35
    listed = re.findall(r"^- `([a-z-]+)`", text[start:text.index("\n\n", start)], re.M)
    assert {"busy", "rate-limited", "bad-arguments", "internal-error"} <= set(listed)
    only_for = {"not-logged-in": Need.LOGIN, "already-logged-in": Need.ANONYMOUS}
    for cmd in TABLE.all():
        codes = describe(cmd)["errors"]
        for code in listed:
            if code not in only_for or cmd.need is only_for[code]:
                assert code in codes, f"/{cmd.name} lacks {code}"


async def test_the_docs_schema_examples_are_what_the_server_sends(server: ChatServer) -> None:
    """PROTOCOL.md's /schema kick, one line, and BOTS.md's /schema ban, shown folded:
    unfolded, each is the server's line, byte for byte."""
    bots = (PROTOCOL.parent / "BOTS.md").read_text()
    folded = bots[bots.index("> /schema ban\n"):]
    folded = folded[:folded.index("```")].splitlines()[1:]
    examples = {"kick": PROTOCOL.read_text(), "ban": "".join(line.strip() for line in folded)}
    person = await LineClient.connect("127.0.0.1", server.port)
    try:
        person.send("/format json")
        await person.until(lambda line: line.startswith("{"))
        for name, doc in examples.items():
            person.send(f"/schema {name}")
            [line] = await person.until(lambda line: line.startswith("{"))
            assert f"< {line}" in doc, name
    finally:
        await person.close()


def test_the_docs_needs_column_is_what_help_prints() -> None:
    for name, row in _documented().items():
        assert f"{row['needs']}." == _cmd(name).needs_text, f"/{name}: needs"


@pytest.mark.parametrize("name", ["token", "bot", "login", "schema"])
def test_the_docs_show_each_form_of_the_commands_of_this_issue(name: str) -> None:
    usage = _documented()[name]["usage"]
    for form in _cmd(name).usage.split("  "):
        if form.startswith("/"):
            assert f"`{form.replace('|', chr(92) + '|')}`" in usage, (name, form)


def test_each_docs_row_sits_in_its_help_group_and_shows_its_usage() -> None:
    """A row's forms are the usage /help prints, its aliases aside (/mode's one
    usage the docs write as its three forms), under the heading of its /help group."""
    for name, row in _documented().items():
        cmd = _cmd(name)
        assert row["group"] == cmd.group, f"/{name}: under {row['group']}"
        shown = {form.replace("\\|", "|") for form in re.findall(r"`(/[^`]+)`", row["usage"])}
        shown -= {f"/{alias}" for alias in cmd.aliases}
        if name != "mode":
            assert shown == set(cmd.usage.split(FORMS_SEPARATOR)), f"/{name}: {shown}"


def _cmd(name: str) -> Any:
    cmd = TABLE.get(name)
    assert cmd is not None
    return cmd
