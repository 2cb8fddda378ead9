"""How the line protocol words an error: the domain's sentence, ended with the
slash command that is the user's next step (the error's remedy), and a refused
command's arguments with the command's usage.

The domain says what could be done (:class:`chatd.errors.Remedy`), not how;
IRC shows the sentence alone. Each step rewrites the end of the neutral
sentence, so a client of the line protocol reads what it always has.
"""

from __future__ import annotations

from typing import Final

from chatd.errors import ChatError, Code, Step

# step: (how the domain's sentence ends, how the line protocol ends it instead)
HINTS: Final[dict[Step, tuple[str, str]]] = {
    Step.LIST_ROOMS: (".", ". /rooms lists the rooms you can join."),
    Step.JOIN: (".", "; /join {room}."),
    Step.JOIN_EXISTING: (".", "; /join {room}?"),
    Step.TRANSFER: (" by a transfer.", " with /transfer <user> {room}."),
    Step.ENCRYPT: ("send from a client that encrypts (chatd-client).",
                   "send with /emsg from a client that encrypts (chatd-client)."),
    Step.REMOVE_FILES: (".", "; /myfiles lists yours, /rmfile some first."),
    Step.LIST_BLOCKS: (".", "; /blocks lists whom you block."),
    Step.REVOKE_TOKEN: (".", "; /token revoke it first."),
    Step.JOIN_WITH_KEY: (".", ": /join {room} <key>."),
    Step.LIST_FILES: (".", "; /files lists a room's files."),
    Step.LIST_TOKENS: (".", "; /token list shows yours."),
    Step.GET_INVITED: (".", "; it is private: /join {room} once an admin of it /invites you."),
}


def line_message(exc: ChatError, usage: str | None = None) -> str:
    """``exc``'s sentence as the line protocol sends it (text and JSON alike); a
    ``bad-arguments`` refusal of a command whose usage is ``usage`` ends with it (or
    with the narrower one the refusal names): here, once for every command, so that no
    refusal of arguments goes without saying how the command is written."""
    said = _remedied(exc)
    shown = exc.usage or usage
    if exc.code is Code.BAD_ARGUMENTS and shown:
        said = f"{said} Usage: {shown}"
    return said


def _remedied(exc: ChatError) -> str:
    """The sentence, ended with the remedy's slash command if it has one."""
    remedy = exc.remedy
    if remedy is None:
        return exc.message
    neutral_end, line_end = HINTS[remedy.step]
    if not exc.message.endswith(neutral_end):
        return exc.message  # worded otherwise (a caller rephrased it): left as it is
    return exc.message[:-len(neutral_end)] + line_end.format(room=remedy.room)
