"""Tab completion for the full-screen client: commands, nicks and rooms.

The command names and their usage lines come from the server's own ``/help``
(so a command added to the server completes without a client release), plus
the commands the client handles itself. A command's usage line also says what
each argument is: after ``/kick `` Tab offers nicks, after ``/join `` rooms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

# Handled by the client (session and screen), so the server's /help does not list them.
LOCAL_COMMANDS = {
    "emsg": "/emsg <room|@user> <text>", "trust": "/trust <user>",
    "fingerprint": "/fingerprint [user]", "secure": "/secure on|off",
    "query": "/query <user>", "close": "/close", "quit": "/quit",
}
# Refused by the client (the session says why): not offered.
REFUSED_COMMANDS = frozenset({"upload"})
_PARAM = re.compile(r"[<\[]([^>\]]+)[>\]]")
# Between the forms of a usage line: "  |  " (older servers wrote "  or  " for /login).
_FORMS = re.compile(r" {2}(?:\||or) {2}")
USER_PARAMS = {"user", "room|@user", "@user"}
ROOM_PARAMS = {"room", "room|id", "room|@user"}


def params_of(usage: str) -> list[str]:
    """The parameter names of a usage line: ``/kick <user> [room]`` gives user, room."""
    return _PARAM.findall(_FORMS.split(usage, maxsplit=1)[0])


class Vocabulary:
    """What can be completed; the controller teaches it as the server tells."""

    def __init__(self) -> None:
        self.usages: dict[str, str] = dict(LOCAL_COMMANDS)
        self.nicks: set[str] = set()
        self.rooms: set[str] = set()

    def learn_commands(self, commands: Iterable[dict[str, Any]]) -> None:
        """The ``commands`` field of ``/help``'s ok: names, aliases, usage lines."""
        for entry in commands:
            usage = str(entry.get("usage", ""))
            for name in [entry.get("name"), *(entry.get("aliases") or [])]:
                if isinstance(name, str) and name and name.lower() not in REFUSED_COMMANDS:
                    self.usages.setdefault(name.lower(), usage)

    def learn_nicks(self, names: Iterable[str]) -> None:
        self.nicks.update(n for n in names if n)

    def learn_rooms(self, names: Iterable[str]) -> None:
        self.rooms.update(n for n in names if n)

    def param(self, command: str, index: int) -> str | None:
        """The name of argument ``index`` (0 = first) of ``command``, if known."""
        found = params_of(self.usages.get(command.lower(), ""))
        return found[index] if index < len(found) else None


class ChatCompleter(Completer):
    """Completes the word before the cursor from a :class:`Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        words = before.split()
        index = len(words) - (0 if before.endswith(" ") or not words else 1)
        if before.startswith("/") and index == 0:
            yield from self._matches(word, [f"/{name}" for name in self.vocabulary.usages])
        elif word.startswith("#"):
            yield from self._matches(word, [f"#{room}" for room in self.vocabulary.rooms])
        elif word.startswith("@"):
            yield from self._matches(word, [f"@{nick}" for nick in self.vocabulary.nicks])
        elif before.startswith("/"):
            yield from self._argument(words[0][1:], index - 1, word)
        else:
            suffix = ": " if index == 0 else " "
            yield from self._matches(word, sorted(self.vocabulary.nicks), suffix)

    def _argument(self, command: str, index: int, word: str) -> Iterator[Completion]:
        param = self.vocabulary.param(command, index) or ""
        choices: list[str] = []
        if param in USER_PARAMS:
            choices += sorted(self.vocabulary.nicks)
        if param in ROOM_PARAMS:
            choices += sorted(self.vocabulary.rooms)
        yield from self._matches(word, choices)

    @staticmethod
    def _matches(word: str, choices: Iterable[str], suffix: str = " ") -> Iterator[Completion]:
        folded = word.casefold()
        for choice in sorted(set(choices), key=str.casefold):
            if choice.casefold().startswith(folded):
                yield Completion(choice + suffix, start_position=-len(word), display=choice)
