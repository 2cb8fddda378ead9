"""Room governance through the real protocol: helpers shared by the scenario tests."""

from __future__ import annotations

from typing import Any

from chatd.client import ChatClient
from tests.helpers import PASSWORD, ChatServer, Clients
from tests.helpers import error_of as error_of
from tests.helpers import settle as settle

Event = dict[str, Any]




async def code_of(client: ChatClient, line: str) -> str:
    """``ok`` or the error code a command ends with."""
    reply = await client.command(line, check=False)
    return "ok" if reply.ok else str(reply.final["code"])




def events(received: list[Event], name: str) -> list[Event]:
    return [e for e in received if e.get("type") == "event" and e.get("event") == name]


def notes(received: list[Event], kind: str) -> list[Event]:
    """The live ``notification`` notices of one kind, as their notification object."""
    return [e["notification"] for e in received
            if e.get("type") == "notice" and e.get("notification", {}).get("kind") == kind]


async def users(clients: Clients, *names: str) -> list[ChatClient]:
    """One logged-in connection per name, in order."""
    return [await clients.user(name) for name in names]


async def server_admin(server: ChatServer, clients: Clients, name: str = "root") -> ChatClient:
    """A logged-in server admin."""
    await server.services.accounts.create(name, PASSWORD, is_admin=True)
    return await clients.user(name)


async def room_with(owner: ChatClient, room: str, *members: ChatClient,
                    mode: str = "open", admins: tuple[ChatClient, ...] = ()) -> int:
    """Create ``room`` (open while the members join, then ``mode``); returns its id.

    ``admins`` (among the members) are promoted by the owner.
    """
    created = await owner.command(f"/create {room}")
    for member in members:
        await member.command(f"/join {room}")
    for admin in admins:
        name = (await admin.command("/whoami"))["user"]
        await owner.command(f"/promote {name} {room}")
    if mode != "open":
        await owner.command(f"/mode {mode} {room}")
    return int(created["id"])


async def members_of(client: ChatClient, room: str) -> dict[str, str]:
    """``{user: role}`` of a room, as /who shows it."""
    reply = await client.command(f"/who {room}")
    return {m["user"]: m["role"] for m in reply["members"]}


async def listed(client: ChatClient) -> set[str]:
    """The names of the rooms /rooms shows this client."""
    return {r["name"] for r in (await client.command("/rooms"))["rooms"]}


async def my_rooms(client: ChatClient) -> set[str]:
    return {r["name"] for r in (await client.command("/myrooms"))["rooms"]}


async def drain(*clients: ChatClient) -> None:
    """Forget everything received so far (up to a /ping round trip on each)."""
    for client in clients:
        await settle(client)
