"""The terminal client's catch-up after a drop, against a real daemon: where the
next resume starts when the server never issued the id the client held."""

from __future__ import annotations

from chatd.client.tui.catchup import Catchup
from tests.helpers import Clients


async def test_an_id_the_server_never_issued_is_replaced_by_its_latest(
        clients: Clients) -> None:
    """A database restored from an older backup: the client saw ids above every one
    the server issued. The server says the gap is unknown and names its latest id;
    the next resume goes on from that one, so a message said after it is replayed."""
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    await alice.command("/create general")
    await bob.command("/join general")
    latest = (await alice.say("before"))["id"]
    catchup = Catchup()
    catchup.last_id = latest + 1_000_000
    shown: list[int] = []

    async def show(records: list[dict[str, object]]) -> None:
        shown.extend(int(str(record["id"])) for record in records)

    first = await catchup.resume(bob, show)
    assert first.gap is not None and shown == []
    assert catchup.last_id == latest
    missed = (await alice.say("after the restore"))["id"]
    again = await catchup.resume(bob, show)
    assert again.gap is None and shown == [missed]
