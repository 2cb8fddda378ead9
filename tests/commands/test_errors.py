"""Error replies: the line protocol adds the next step (a slash command) to the
domain's sentence, in text and in JSON alike; labels come back on errors."""

from __future__ import annotations

import pytest

from chatd.errors import ChatError, Code, Remedy, Step
from chatd.protocol.hints import HINTS, line_message
from tests.commands.conftest import Chat


async def test_hints_in_text(chat: Chat) -> None:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    await alice.say("/create dev")
    assert await bob.say("/join nosuchroom") == [
        '! no-such-room: there is no room "nosuchroom". /rooms lists the rooms you can join.']
    assert await bob.say("/create dev") == ['! name-taken: a room named "dev" exists; /join dev?']
    assert await bob.say("/say dev hi") == ["! not-in-room: you are not in #dev; /join dev."]
    assert await bob.say("/unblock alice") == [
        "! bad-arguments: you do not block alice; /blocks lists whom you block. "
        "Usage: /unblock <user>"]


async def test_hints_and_labels_in_json(chat: Chat) -> None:
    alice = await chat.user("alice")
    bob = await chat.user("bob", json_format=True)
    await alice.say("/create dev")
    assert await bob.ask("@q1 /join nosuchroom") == [{
        "type": "error", "code": "no-such-room", "command": "join", "label": "q1",
        "message": 'there is no room "nosuchroom". /rooms lists the rooms you can join.'}]
    assert await bob.ask("@q2 /say dev hi") == [{
        "type": "error", "code": "not-in-room", "command": "say", "label": "q2",
        "message": "you are not in #dev; /join dev."}]
    assert await bob.ask("@q3 /nosuch") == [{
        "type": "error", "code": "unknown-command", "command": "nosuch", "label": "q3",
        "message": "there is no command /nosuch. /help lists them."}]


async def test_the_domain_sentence_names_no_command(chat: Chat) -> None:
    with pytest.raises(ChatError) as caught:
        chat.server.services.rooms.require("nosuchroom")
    assert caught.value.message == 'there is no room "nosuchroom".'
    assert caught.value.remedy == Remedy(Step.LIST_ROOMS)
    assert "/" not in caught.value.message


@pytest.mark.parametrize(("step", "neutral", "line"), [
    (Step.JOIN, "you are not in #dev.", "you are not in #dev; /join dev."),
    (Step.JOIN_EXISTING, 'a room named "dev" exists.', 'a room named "dev" exists; /join dev?'),
    (Step.TRANSFER, "bob is the owner of #dev; ownership changes hands by a transfer.",
     "bob is the owner of #dev; ownership changes hands with /transfer <user> dev."),
    (Step.ENCRYPT, "#dev is end-to-end encrypted: send from a client that encrypts "
     "(chatd-client).", "#dev is end-to-end encrypted: send with /emsg from a client that "
     "encrypts (chatd-client)."),
    (Step.REMOVE_FILES, "over your quota of 10.",
     "over your quota of 10; /myfiles lists yours, /rmfile some first."),
    (Step.REVOKE_TOKEN, 'you already have a token named "ci".',
     'you already have a token named "ci"; /token revoke it first.'),
    (Step.LIST_FILES, "there is no file 7.", "there is no file 7; /files lists a room's files."),
    (Step.LIST_TOKENS, 'you have no token named "x".',
     'you have no token named "x"; /token list shows yours.'),
])
def test_each_step_words_its_hint(step: Step, neutral: str, line: str) -> None:
    assert line_message(ChatError(Code.BAD_ARGUMENTS, neutral, remedy=Remedy(step, "dev"))) \
        == line


def test_every_step_has_a_hint() -> None:
    assert set(HINTS) == set(Step)


def test_a_sentence_worded_otherwise_keeps_its_words() -> None:
    exc = ChatError(Code.NO_SUCH_ROOM, "no room. Usage: /join <room>",
                    remedy=Remedy(Step.LIST_ROOMS))
    assert line_message(exc) == "no room. Usage: /join <room>"
    assert line_message(ChatError(Code.NO_SUCH_ROOM, "plain.")) == "plain."


async def test_an_encrypted_room_points_to_emsg(chat: Chat) -> None:
    alice = await chat.user("alice")
    await alice.say("/create vault")
    await alice.say("/e2e on")
    assert await alice.say("in the clear") == [
        "! e2e-required: #vault is end-to-end encrypted: send with /emsg from a client that "
        "encrypts (chatd-client)."]
