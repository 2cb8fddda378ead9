"""README.md tells a newcomer the truth: its one-minute tour is what the server says,
and the files and directories it names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from chatd.cli import _parser as chatd_arguments
from chatd.ops.chatctl import _parser as chatctl_arguments
from tests.helpers import Clients

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# What a server line starts with; any other line of the tour is typed by the user.
SERVER_LINE = re.compile(r"^[*!<{]")


def _tour() -> list[str]:
    """The lines of the tour's transcript after its `nc` command."""
    start = README.index("## A one-minute tour")
    block = README[README.index("```text\n", start) + len("```text\n"):]
    lines = block[:block.index("```")].splitlines()
    assert lines[0].startswith("$ nc ")
    return lines[1:]


def _shows(expected: str, got: str) -> bool:
    """``got`` is the line ``expected`` shows, where "..." in it stands for more."""
    first, *middle, last = expected.split("...") if "..." in expected else (expected, "")
    if "..." not in expected:
        return got == expected
    rest = got[len(first):] if got.startswith(first) else None
    for part in middle:
        if rest is None or part not in rest:
            return False
        rest = rest[rest.index(part) + len(part):]
    return rest is not None and rest.endswith(last)


async def test_the_one_minute_tour_is_what_the_server_says(clients: Clients) -> None:
    person = await clients.raw()
    for line in _tour():
        if SERVER_LINE.match(line):
            got = await person.line()
            assert _shows(line, got), (line, got)
        else:
            person.send(line)


# Paths the README names, in backquotes, as link targets or in its shell examples,
# relative to the checkout.
_PATH = re.compile(r"(?:`|\]\()((?:scripts|docs|conf|examples|chatd|commands|storage|tests)"
                   r"/[\w./-]*?)(?:`|\)|#)")
_SCRIPT = re.compile(r"\bscripts/[\w-]+")
# A row of the layout table: a directory, then the modules it says are in it.
_LAYOUT_ROW = re.compile(r"^\| `([\w/]+/)` \|(.*)\|$", re.MULTILINE)
_MODULE = re.compile(r"`([\w/]+\.py)`")


def test_the_paths_the_readme_names_exist() -> None:
    named = set(_PATH.findall(README)) | set(_SCRIPT.findall(README))
    assert {"scripts/serve", "scripts/test", "docs/PROTOCOL.md"} <= named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing


def test_the_modules_of_the_layout_table_are_where_it_says() -> None:
    rows = _LAYOUT_ROW.findall(README)
    assert any(folder == "chatd/app/" for folder, _ in rows)
    for folder, what in rows:
        for module in _MODULE.findall(what):
            assert list((ROOT / folder).rglob(module)), f"{folder}: {module}"


def _program(word: str) -> str | None:
    """``chatd`` or ``chatctl`` when ``word`` runs one (``.venv/bin/chatd`` too)."""
    name = Path(word).name
    return name if name in ("chatd", "chatctl") else None


def _command_lines() -> list[list[str]]:
    """The chatd and chatctl command lines of the README's shell examples, as
    words: its comments dropped, ``[--strict]`` given, ``users | rooms`` as two."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line.partition("#")[0].replace("[", "").replace("]", ""))
            if words[:1] == ["sudo"]:
                words = words[1:]
            if words and _program(words[0]) is None and "|" in words:  # echo "$PW" | chatctl
                words = words[words.index("|") + 1:]
            program = _program(words[0]) if words else None
            if program is not None:
                rest = words[1:]
                while "|" in rest:  # alternatives: chatctl users | rooms
                    found.append([program, *rest[:rest.index("|")]])
                    rest = rest[rest.index("|") + 1:]
                found.append([program, *rest])
    return found


@pytest.mark.parametrize("words", _command_lines(), ids=" ".join)
def test_the_readmes_command_lines_are_ones_chatd_and_chatctl_take(words: list[str]) -> None:
    parse = {"chatd": chatd_arguments, "chatctl": chatctl_arguments}[words[0]]
    parse().parse_args(words[1:])  # exits on a command or option it does not know
